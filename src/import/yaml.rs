//! Reading a YAML file against a fixed schema, with a diagnostic at the exact key or value for
//! every mistake: a syntax error, an unknown key (with a "did you mean"), a missing key, a value
//! of the wrong type. saphyr gives every node its position, which is what makes this possible.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

/// What a reader expected where a value of another type stood, for the help line.
#[derive(Clone, Copy)]
enum Want {
    Text,
    Number,
    List,
    Mapping,
}

use miette::SourceSpan;

use crate::diag::{Code, Diagnostic, Diagnostics, did_you_mean};
use crate::syntax::ast::Spanned;

pub type Node<'a> = MarkedYaml<'a>;

/// Collections nested deeper than this are refused before parsing: a config needs four levels,
/// and a deep enough `[[[[…` would otherwise exhaust the stack while the tree is dropped.
const MAX_DEPTH: usize = 64;

pub struct Reader<'a> {
    pub text: &'a str,
    pub d: Diagnostics,
}

/// A mapping whose keys have been checked against the schema.
pub struct Fields<'n, 'a> {
    span: SourceSpan,
    entries: Vec<(&'n str, &'n Node<'a>)>,
}

impl<'n, 'a> Fields<'n, 'a> {
    pub fn span(&self) -> SourceSpan {
        self.span
    }

    pub fn get(&self, key: &str) -> Option<&'n Node<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            // `key:` with nothing after it is null: the same as leaving the key out.
            .filter(|v| !matches!(v.data, YamlData::Value(Scalar::Null)))
    }
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            d: Diagnostics::default(),
        }
    }

    /// Parse the file into its one document, or report why it cannot be.
    pub fn load(&mut self) -> Option<Node<'a>> {
        if let Some(at) = too_deep(self.text) {
            self.d.push(
                Diagnostic::error(
                    Code::YamlSyntax,
                    format!("collections are nested more than {MAX_DEPTH} deep"),
                )
                .label(SourceSpan::new(at.into(), 1), "too deep")
                .help(
                    "an rsync-director config needs four levels; check that this is the right file",
                ),
            );
            return None;
        }
        match MarkedYaml::load_from_str(self.text) {
            Ok(mut docs) if docs.len() == 1 => docs.pop(),
            Ok(docs) if docs.is_empty() => {
                self.d.push(
                    Diagnostic::error(Code::YamlSyntax, "the file is empty")
                        .label(SourceSpan::new(0.into(), 0), "nothing here")
                        .help("an rsync-director config has `cron_schedule` and `jobs`"),
                );
                None
            }
            Ok(docs) => {
                let span = self.span(&docs[1]);
                self.d.push(
                    Diagnostic::error(Code::YamlSyntax, "the file holds more than one document")
                        .label(span, "a second document")
                        .help("import one config per host: HOST=FILE for each"),
                );
                None
            }
            Err(e) => {
                let at = self.byte(e.marker().index());
                self.d.push(
                    Diagnostic::error(
                        Code::YamlSyntax,
                        format!("this is not valid YAML: {}", e.info()),
                    )
                    .label(SourceSpan::new(at.into(), 0), "here")
                    .help("fix the YAML; the old daemon could not have read it either"),
                );
                None
            }
        }
    }

    /// The byte offset of a character index (saphyr counts characters, miette bytes).
    fn byte(&self, chars: usize) -> usize {
        if self.text.is_ascii() {
            return chars.min(self.text.len());
        }
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(b, _)| b)
    }

    pub fn span(&self, node: &Node) -> SourceSpan {
        let start = self.byte(node.span.start.index());
        let end = self.byte(node.span.end.index()).max(start);
        // Block collections end where the next key starts; one line is enough to point at them.
        let end = match self.text[start..end].find('\n') {
            Some(nl) => start + nl,
            None => end,
        };
        SourceSpan::new(start.into(), end - start)
    }

    /// The keys of a mapping, each checked against `known`.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
        known: &[&str],
    ) -> Option<Fields<'n, 'a>> {
        let YamlData::Mapping(map) = &node.data else {
            self.wrong_type(
                node,
                &format!("{what} as a mapping (`key: value` lines)"),
                Want::Mapping,
            );
            return None;
        };
        let mut entries = Vec::new();
        for (k, v) in map {
            let Some(key) = scalar_str(k) else {
                self.wrong_type(k, "a key that is a plain name", Want::Text);
                continue;
            };
            if known.contains(&key) {
                entries.push((key, v));
                continue;
            }
            let mut diag =
                Diagnostic::error(Code::YamlUnknownKey, format!("{what} has no key `{key}`"))
                    .label(self.span(k), "unknown key");
            diag = match (key, did_you_mean(key, known.iter().copied())) {
                ("private_ssh_key", _) => diag.help(
                    "bkc uses one SSH identity for every job: set `identity` in `defaults` of the imported topology, and remove this key",
                ),
                (_, Some(s)) => diag.help(format!("did you mean `{s}`?")),
                (_, None) => diag.help(format!("{what} knows: {}", known.join(", "))),
            };
            self.d.push(diag);
        }
        Some(Fields {
            span: self.span(node),
            entries,
        })
    }

    /// A key that must be there.
    pub fn required<'n>(
        &mut self,
        f: &Fields<'n, 'a>,
        key: &str,
        what: &str,
        example: &str,
    ) -> Option<&'n Node<'a>> {
        let v = f.get(key);
        if v.is_none() {
            self.d.push(
                Diagnostic::error(Code::YamlMissingKey, format!("{what} has no `{key}`"))
                    .label(f.span, format!("`{key}` missing"))
                    .help(format!("add it: {example}")),
            );
        }
        v
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match scalar_str(node) {
            Some(s) => Some(Spanned::new(s.to_string(), self.span(node))),
            None => {
                self.wrong_type(node, &format!("{what} as a string"), Want::Text);
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    pub fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<Spanned<i64>> {
        match &node.data {
            YamlData::Value(Scalar::Integer(i)) if (min..=max).contains(i) => {
                Some(Spanned::new(*i, self.span(node)))
            }
            YamlData::Value(Scalar::Integer(i)) => {
                self.d.push(
                    Diagnostic::error(Code::YamlOutOfRange, format!("{what} {i} is out of range"))
                        .label(self.span(node), "out of range")
                        .help(format!("{what} is a whole number from {min} to {max}")),
                );
                None
            }
            _ => {
                self.wrong_type(node, &format!("{what} as a whole number"), Want::Number);
                None
            }
        }
    }

    /// The items of a sequence.
    pub fn list<'n>(&mut self, node: &'n Node<'a>, what: &str) -> &'n [Node<'a>] {
        match &node.data {
            YamlData::Sequence(items) => items,
            _ => {
                self.wrong_type(
                    node,
                    &format!("{what} as a list (`- item` lines)"),
                    Want::List,
                );
                &[]
            }
        }
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, want: Want) {
        let found = match &node.data {
            YamlData::Value(Scalar::Null) => "nothing",
            YamlData::Value(Scalar::Boolean(_)) => "a boolean",
            YamlData::Value(Scalar::Integer(_)) => "an integer",
            YamlData::Value(Scalar::FloatingPoint(_)) => "a decimal number",
            YamlData::Value(Scalar::String(_)) | YamlData::Representation(..) => "a string",
            YamlData::Sequence(_) => "a list",
            YamlData::Mapping(_) => "a mapping",
            YamlData::Tagged(..) => "a tagged value",
            YamlData::Alias(_) | YamlData::BadValue => "a value bkc cannot read",
        };
        let scalar = matches!(node.data, YamlData::Value(_));
        let help = match want {
            // A number or boolean where text belongs: quotes make it text.
            Want::Text if scalar => "write the value in quotes if it is meant as text",
            Want::Number => "write a whole number without quotes, such as 22",
            Want::List => "write one `- item` line per value",
            Want::Mapping => "write `key: value` lines, indented under this key",
            Want::Text => "see examples/rsyncdirector/ for the expected layout",
        };
        self.d.push(
            Diagnostic::error(
                Code::YamlWrongType,
                format!("expected {expected}, found {found}"),
            )
            .label(self.span(node), format!("this is {found}"))
            .help(help),
        );
    }
}

fn scalar_str<'n>(node: &'n Node) -> Option<&'n str> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        YamlData::Representation(s, ..) => Some(s),
        _ => None,
    }
}

/// The byte offset of the first bracket nested deeper than [`MAX_DEPTH`], counting `[` and `{`
/// outside quotes (and indentation cannot nest deeply within the size bkc reads).
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            (None, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if b == b'\n' {
            // A quote inside a plain scalar (`it's`) must not hide the rest of the file; a quoted
            // string over several lines only makes the count err on the safe side.
            quote = None;
        }
    }
    None
}
