//! Reading one KDL node against what it may contain.
//!
//! Each lowering function asks a [`Reader`] for the arguments and properties it knows; whatever it
//! did not ask for is, at [`Reader::finish`], an unknown property (with a "did you mean") or an
//! unexpected argument. The schema of a node is therefore the code that lowers it, in one place,
//! and no entry of the file can be silently ignored.

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::ast::{Spanned, Str};
use crate::diag::{Code, Diagnostic, Diagnostics, did_you_mean};

pub(crate) struct Reader<'a> {
    node: &'a KdlNode,
    used: Vec<bool>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(node: &'a KdlNode) -> Reader<'a> {
        Reader {
            node,
            used: vec![false; node.entries().len()],
        }
    }

    pub(crate) fn name(&self) -> &'a str {
        self.node.name().value()
    }

    pub(crate) fn span(&self) -> SourceSpan {
        self.node.span()
    }

    pub(crate) fn name_span(&self) -> SourceSpan {
        self.node.name().span()
    }

    /// All positional arguments from index `from` on, marked as read.
    pub(crate) fn rest(&mut self, from: usize) -> Vec<&'a KdlEntry> {
        let mut out = Vec::new();
        let mut pos = 0;
        for (i, e) in self.node.entries().iter().enumerate() {
            if e.name().is_none() {
                if pos >= from {
                    self.used[i] = true;
                    out.push(e);
                }
                pos += 1;
            }
        }
        out
    }

    fn arg(&mut self, idx: usize) -> Option<&'a KdlEntry> {
        let (i, e) = self
            .node
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.name().is_none())
            .nth(idx)?;
        self.used[i] = true;
        Some(e)
    }

    fn prop(&mut self, key: &str) -> Option<&'a KdlEntry> {
        // KDL lets the rightmost of repeated properties win; so do we.
        let (i, e) = self
            .node
            .entries()
            .iter()
            .enumerate()
            .rfind(|(_, e)| e.name().is_some_and(|n| n.value() == key))?;
        self.used[i] = true;
        Some(e)
    }

    /// The node lacks a required value; `example` shows it written correctly.
    pub(crate) fn missing(&self, what: &str, example: &str) -> Diagnostic {
        Diagnostic::error(
            Code::MissingValue,
            format!("`{}` needs {what}", self.name()),
        )
        .label(self.span(), format!("{what} missing"))
        .help(format!("write it as: {example}"))
    }

    /// A required string argument. `example` shows the node written correctly.
    pub(crate) fn req_str(
        &mut self,
        d: &mut Diagnostics,
        idx: usize,
        what: &str,
        example: &str,
    ) -> Option<Str> {
        match self.arg(idx) {
            Some(e) => string(d, e, what),
            None => {
                d.push(self.missing(what, example));
                None
            }
        }
    }

    pub(crate) fn req_int(
        &mut self,
        d: &mut Diagnostics,
        idx: usize,
        what: &str,
        example: &str,
    ) -> Option<Spanned<i128>> {
        match self.arg(idx) {
            Some(e) => integer(d, e, what),
            None => {
                d.push(self.missing(what, example));
                None
            }
        }
    }

    /// A flag such as `persistent #false`; bare `persistent` means `#true`.
    pub(crate) fn flag(&mut self, d: &mut Diagnostics) -> Option<Spanned<bool>> {
        match self.arg(0) {
            None => Some(Spanned::new(true, self.span())),
            Some(e) => match e.value() {
                KdlValue::Bool(b) => Some(Spanned::new(*b, e.span())),
                _ => {
                    d.push(wrong_type(e, "#true or #false"));
                    None
                }
            },
        }
    }

    pub(crate) fn prop_str(&mut self, d: &mut Diagnostics, key: &str) -> Option<Str> {
        self.prop(key).and_then(|e| string(d, e, key))
    }

    pub(crate) fn prop_bool(&mut self, d: &mut Diagnostics, key: &str) -> Option<Spanned<bool>> {
        let e = self.prop(key)?;
        match e.value() {
            KdlValue::Bool(b) => Some(Spanned::new(*b, value_span(e))),
            _ => {
                d.push(wrong_type(e, "#true or #false"));
                None
            }
        }
    }

    pub(crate) fn prop_int(&mut self, d: &mut Diagnostics, key: &str) -> Option<Spanned<i128>> {
        self.prop(key).and_then(|e| integer(d, e, key))
    }

    /// A duration property: a string such as "5m", or a whole number of seconds.
    pub(crate) fn prop_duration(&mut self, d: &mut Diagnostics, key: &str) -> Option<Str> {
        let e = self.prop(key)?;
        match e.value() {
            KdlValue::String(s) => Some(Spanned::new(s.clone(), value_span(e))),
            KdlValue::Integer(i) => Some(Spanned::new(i.to_string(), value_span(e))),
            _ => {
                d.push(wrong_type(
                    e,
                    "a duration such as \"5m\" or a number of seconds",
                ));
                None
            }
        }
    }

    /// Report every entry nobody asked for, and a children block where none belongs.
    pub(crate) fn finish(self, d: &mut Diagnostics, props: &[&str], takes_children: bool) {
        for (i, e) in self.node.entries().iter().enumerate() {
            if self.used[i] {
                continue;
            }
            match e.name() {
                Some(key) => {
                    let mut diag = Diagnostic::error(
                        Code::UnknownProperty,
                        format!("`{}` has no property `{}`", self.name(), key.value()),
                    )
                    .label(e.span(), "unknown property");
                    diag = match did_you_mean(key.value(), props.iter().copied()) {
                        Some(s) => diag.help(format!("did you mean `{s}`?")),
                        None if props.is_empty() => {
                            diag.help(format!("`{}` takes no properties", self.name()))
                        }
                        None => diag.help(format!("`{}` knows: {}", self.name(), props.join(", "))),
                    };
                    d.push(diag);
                }
                None => d.push(
                    Diagnostic::error(
                        Code::UnexpectedArgument,
                        format!("`{}` has too many arguments", self.name()),
                    )
                    .label(e.span(), "not expected here")
                    .help("remove it, or quote the whole value as one string"),
                ),
            }
        }
        if !takes_children && let Some(children) = self.node.children() {
            d.push(
                Diagnostic::error(
                    Code::UnexpectedChildren,
                    format!("`{}` takes no `{{ … }}` block", self.name()),
                )
                .label(children.span(), "not expected here")
                .help("move these settings to the enclosing node"),
            );
        }
    }
}

/// The span of an entry's value alone: for `key=value` the part after `=`.
fn value_span(e: &KdlEntry) -> SourceSpan {
    let span = e.span();
    match e.name() {
        Some(name) => {
            let skip = name.span().len() + 1;
            if span.len() > skip {
                SourceSpan::new((span.offset() + skip).into(), span.len() - skip)
            } else {
                span
            }
        }
        None => span,
    }
}

fn string(d: &mut Diagnostics, e: &KdlEntry, what: &str) -> Option<Str> {
    match e.value() {
        KdlValue::String(s) => Some(Spanned::new(s.clone(), value_span(e))),
        _ => {
            d.push(wrong_type(e, &format!("{what} as a string in quotes")));
            None
        }
    }
}

fn integer(d: &mut Diagnostics, e: &KdlEntry, what: &str) -> Option<Spanned<i128>> {
    match e.value() {
        KdlValue::Integer(i) => Some(Spanned::new(*i, value_span(e))),
        _ => {
            d.push(wrong_type(e, &format!("{what} as a whole number")));
            None
        }
    }
}

fn wrong_type(e: &KdlEntry, expected: &str) -> Diagnostic {
    let found = match e.value() {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a decimal number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    };
    Diagnostic::error(
        Code::WrongType,
        format!("expected {expected}, found {found}"),
    )
    .label(value_span(e), format!("this is {found}"))
    .help(format!("write {expected}"))
}
