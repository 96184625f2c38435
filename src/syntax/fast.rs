//! A fast, strict KDL v2 parser for the documents bkc actually sees.
//!
//! The kdl crate parses at about 1.5 MB/s, which alone would spend our whole `bkc build` budget on
//! a topology of 10,000 jobs. This parser builds the very same [`KdlDocument`] (names, values,
//! entry names, types and every span lowering reads) in one linear pass over the bytes, without
//! backtracking.
//!
//! It is a fast path, not a second implementation of the language: whenever it meets something it
//! is not sure about, an error or a construct it chose not to support, it returns `None`, and the
//! caller parses the text again with the kdl crate, which then produces the diagnostics. So
//! nothing here reports errors; it only has to be exactly right on what it accepts. The
//! differential test (tests/kdl_differential.rs) holds it to that against the kdl crate.
//!
//! Falls back on: multi-line strings that contain a backslash (escapes interact with dedenting),
//! bare `true`/`false`/`null`/`inf`/`-inf`/`nan`,
//! two slashdashes in a row, a slashdash not preceded by whitespace inside a node, and nesting
//! deeper than [`DEPTH_LIMIT`].
//!
//! Spans follow kdl 6.7 exactly, which differs from what one might guess:
//! - a node's span starts at its type annotation or name (not at leading whitespace or
//!   comments) and ends after the whitespace that follows it, before its terminator (`;`,
//!   newline, `//` comment, `}` or the end);
//! - an entry's span starts at its key (or type annotation) and ends with its value;
//! - a children block's span covers its nodes only: from the first node to the end of the last,
//!   without braces and without the last terminator; an empty block has an empty span where its
//!   nodes would start.

use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

/// Children blocks nested deeper than this fall back. mod.rs bounds nesting before parsing; this
/// keeps the recursion bounded on its own, whoever calls us.
const DEPTH_LIMIT: usize = 100;

/// Parse `text`, or `None` when the kdl crate has to decide.
pub(crate) fn parse(text: &str) -> Option<KdlDocument> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    // kdl skips a leading byte order mark; spans still count its three bytes.
    if text.starts_with('\u{FEFF}') {
        p.i = 3;
    }
    p.nodes(false)
}

/// Byte classes of ASCII, so that the hot loops do one table lookup per byte.
const IDENT: u8 = 1; // may appear in a bare identifier
const STR: u8 = 2; // may appear literally in a quoted string

const fn ascii_classes() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        // Control characters other than tab are newlines or disallowed code points.
        let control = b < 0x20 && b != b'\t';
        if !control {
            t[c] |= STR;
        }
        let special = matches!(
            b,
            b'\\' | b'/' | b'(' | b')' | b'{' | b'}' | b'[' | b']' | b';' | b'"' | b'#' | b'='
        );
        if !control && !special && b != b' ' && b != b'\t' {
            t[c] |= IDENT;
        }
        c += 1;
    }
    t[b'\\' as usize] &= !STR;
    t[b'"' as usize] &= !STR;
    t
}

static ASCII: [u8; 128] = ascii_classes();

fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Single newline characters; CRLF is handled where newlines are consumed.
fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\r' | '\n' | '\u{85}' | '\u{0B}' | '\u{0C}' | '\u{2028}' | '\u{2029}'
    )
}

/// Code points KDL forbids anywhere outside comments.
fn is_disallowed(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}'
        | '\u{E}'..='\u{1F}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

fn is_ident_char(c: char) -> bool {
    if c.is_ascii() {
        return ASCII[c as usize] & IDENT != 0;
    }
    !(is_unicode_space(c) || is_newline(c) || is_disallowed(c))
}

fn span(start: usize, end: usize) -> SourceSpan {
    SourceSpan::new(start.into(), end - start)
}

#[derive(Clone, Copy, PartialEq)]
enum After {
    /// Arguments and properties may still follow.
    Entries,
    /// A slashdashed children block was seen: only children blocks may follow.
    SdChildren,
    /// The children block was seen: only slashdashed children blocks may follow.
    Children,
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    /// Always on a char boundary: every loop advances over whole characters.
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    /// The char at byte `j`, which must be a char boundary.
    fn char_at(&self, j: usize) -> Option<char> {
        self.s.get(j..)?.chars().next()
    }

    /// Length of the newline at byte `j`, or 0.
    fn newline_len(&self, j: usize) -> usize {
        match self.b.get(j) {
            Some(b'\r') if self.b.get(j + 1) == Some(&b'\n') => 2,
            Some(b'\r' | b'\n' | 0x0B | 0x0C) => 1,
            Some(&c) if c >= 0x80 => match self.char_at(j) {
                Some(ch) if is_newline(ch) => ch.len_utf8(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// Length of the unicode space at byte `j`, or 0.
    fn space_len(&self, j: usize) -> usize {
        match self.b.get(j) {
            Some(b' ' | b'\t') => 1,
            Some(&c) if c >= 0x80 => match self.char_at(j) {
                Some(ch) if is_unicode_space(ch) => ch.len_utf8(),
                _ => 0,
            },
            _ => 0,
        }
    }

    /// `/* ... */`, nested, at the cursor.
    fn skip_block_comment(&mut self) -> Option<()> {
        self.i += 2;
        let mut depth = 1usize;
        while depth > 0 {
            match *self.b.get(self.i)? {
                b'*' if self.at(1) == Some(b'/') => {
                    depth -= 1;
                    self.i += 2;
                }
                b'/' if self.at(1) == Some(b'*') => {
                    depth += 1;
                    self.i += 2;
                }
                _ => self.i += 1,
            }
        }
        Some(())
    }

    /// `// ...` up to and including the newline (or to the end).
    fn skip_line_comment(&mut self) {
        self.i += 2;
        while self.i < self.b.len() {
            let n = match self.b[self.i] {
                b'\r' | b'\n' | 0x0B | 0x0C | 0xC2 | 0xE2 => self.newline_len(self.i),
                _ => 0,
            };
            if n > 0 {
                self.i += n;
                return;
            }
            self.i += 1;
        }
    }

    /// Whitespace and block comments (KDL's `ws*`).
    fn skip_ws(&mut self) -> Option<()> {
        loop {
            if self.peek() == Some(b'/') && self.at(1) == Some(b'*') {
                self.skip_block_comment()?;
                continue;
            }
            let n = self.space_len(self.i);
            if n == 0 {
                return Some(());
            }
            self.i += n;
        }
    }

    /// A line continuation: `\`, whitespace, then a newline, a `//` comment or the end.
    fn skip_escline(&mut self) -> Option<()> {
        self.i += 1;
        self.skip_ws()?;
        if self.peek() == Some(b'/') && self.at(1) == Some(b'/') {
            self.skip_line_comment();
        } else if self.i < self.b.len() {
            let n = self.newline_len(self.i);
            if n == 0 {
                return None;
            }
            self.i += n;
        }
        self.skip_ws()
    }

    /// KDL's `node-space*`: whitespace, block comments, line continuations. Says whether any
    /// was there; `None` on a backslash that is no line continuation.
    fn skip_node_space(&mut self) -> Option<bool> {
        let start = self.i;
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b'\\') {
                self.skip_escline()?;
            } else {
                return Some(self.i > start);
            }
        }
    }

    /// KDL's `line-space*`: node space, newlines and `//` comments.
    fn skip_line_space(&mut self) -> Option<()> {
        loop {
            self.skip_node_space()?;
            if self.peek() == Some(b'/') && self.at(1) == Some(b'/') {
                self.skip_line_comment();
                continue;
            }
            let n = self.newline_len(self.i);
            if n == 0 {
                return Some(());
            }
            self.i += n;
        }
    }

    /// Line space and slashdashed nodes before a node or the end of a block.
    fn skip_leading(&mut self) -> Option<()> {
        loop {
            self.skip_line_space()?;
            if self.peek() == Some(b'/') && self.at(1) == Some(b'-') {
                self.slashdash()?;
                // kdl has a children block here be an error, not a commented-out one.
                if self.peek() == Some(b'{') {
                    return None;
                }
                self.node()?;
                continue;
            }
            return Some(());
        }
    }

    /// `/-` and the line space after it. Falls back on a second slashdash right after, whose
    /// reach kdl resolves in surprising ways.
    fn slashdash(&mut self) -> Option<()> {
        self.i += 2;
        self.skip_line_space()?;
        if self.peek() == Some(b'/') && self.at(1) == Some(b'-') {
            return None;
        }
        Some(())
    }

    /// The nodes of the document or of a children block, up to the end or the closing brace
    /// (not consumed).
    fn nodes(&mut self, in_children: bool) -> Option<KdlDocument> {
        let mut doc = KdlDocument::new();
        self.skip_leading()?;
        let start = self.i;
        let mut end = start;
        loop {
            match self.peek() {
                None if in_children => return None,
                None => break,
                Some(b'}') if in_children => break,
                Some(b'}') => return None,
                _ => {}
            }
            let node = self.node()?;
            end = self.i;
            doc.nodes_mut().push(node);
            match self.peek() {
                None | Some(b'}') => {}
                Some(b';') => self.i += 1,
                Some(b'/') if self.at(1) == Some(b'/') => self.skip_line_comment(),
                _ => {
                    let n = self.newline_len(self.i);
                    if n == 0 {
                        return None;
                    }
                    self.i += n;
                }
            }
            self.skip_leading()?;
        }
        doc.set_span(span(start, end));
        Some(doc)
    }

    /// `{ nodes }` at the cursor.
    fn children(&mut self) -> Option<KdlDocument> {
        self.depth += 1;
        if self.depth > DEPTH_LIMIT {
            return None;
        }
        self.i += 1;
        let doc = self.nodes(true)?;
        self.i += 1; // the `}` nodes() stopped at
        self.depth -= 1;
        Some(doc)
    }

    /// One node, from its type or name to just before its terminator.
    fn node(&mut self) -> Option<KdlNode> {
        let start = self.i;
        let ty = if self.peek() == Some(b'(') {
            let ty = self.ty()?;
            self.skip_node_space()?;
            Some(ty)
        } else {
            None
        };
        let name_start = self.i;
        let name = self.string()??;
        let mut name = KdlIdentifier::from(name);
        name.set_span(span(name_start, self.i));
        let mut node = KdlNode::new(name);
        if let Some(ty) = ty {
            node.set_ty(ty);
        }
        let mut after = After::Entries;
        loop {
            let spaced = self.skip_node_space()?;
            match self.peek() {
                None | Some(b';' | b'}') => break,
                Some(b'/') if self.at(1) == Some(b'/') => break,
                Some(b'{') => {
                    if after == After::Children {
                        return None;
                    }
                    let children = self.children()?;
                    node.set_children(children);
                    after = After::Children;
                }
                Some(b'/') if self.at(1) == Some(b'-') => {
                    if !spaced {
                        return None;
                    }
                    self.slashdash()?;
                    if self.peek() == Some(b'{') {
                        self.children()?;
                        if after == After::Entries {
                            after = After::SdChildren;
                        }
                    } else {
                        if after != After::Entries {
                            return None;
                        }
                        self.entry()?;
                    }
                }
                _ if self.newline_len(self.i) > 0 => break,
                _ => {
                    if !spaced || after != After::Entries {
                        return None;
                    }
                    let entry = self.entry()?;
                    node.entries_mut().push(entry);
                }
            }
        }
        node.set_span(span(start, self.i));
        Some(node)
    }

    /// `(name)`: a type annotation, with the span of the name inside.
    fn ty(&mut self) -> Option<KdlIdentifier> {
        self.i += 1;
        self.skip_node_space()?;
        let start = self.i;
        let name = self.string()??;
        let mut ty = KdlIdentifier::from(name);
        ty.set_span(span(start, self.i));
        self.skip_node_space()?;
        if self.peek() != Some(b')') {
            return None;
        }
        self.i += 1;
        Some(ty)
    }

    /// An argument or a property.
    fn entry(&mut self) -> Option<KdlEntry> {
        let start = self.i;
        if self.peek() == Some(b'(') {
            let mut entry = self.typed_value()?;
            entry.set_span(span(start, self.i));
            return Some(entry);
        }
        let mut entry = match self.string()? {
            Some(s) => {
                let key_end = self.i;
                self.skip_node_space()?;
                if self.peek() == Some(b'=') {
                    self.i += 1;
                    self.skip_node_space()?;
                    let mut key = KdlIdentifier::from(s);
                    key.set_span(span(start, key_end));
                    let mut entry = self.typed_value()?;
                    entry.set_name(Some(key));
                    entry
                } else {
                    self.i = key_end;
                    KdlEntry::new(KdlValue::String(s))
                }
            }
            None => KdlEntry::new(self.value()?),
        };
        entry.set_span(span(start, self.i));
        Some(entry)
    }

    /// A value with an optional type annotation, as an unnamed entry without a span.
    fn typed_value(&mut self) -> Option<KdlEntry> {
        let ty = if self.peek() == Some(b'(') {
            let ty = self.ty()?;
            self.skip_node_space()?;
            Some(ty)
        } else {
            None
        };
        let value = match self.string()? {
            Some(s) => KdlValue::String(s),
            None => self.value()?,
        };
        let mut entry = KdlEntry::new(value);
        if let Some(ty) = ty {
            entry.set_ty(ty);
        }
        Some(entry)
    }

    /// A value that is not a string: a number or a keyword.
    fn value(&mut self) -> Option<KdlValue> {
        let v = match self.peek()? {
            b'#' => self.keyword()?,
            b'0'..=b'9' | b'+' | b'-' => self.number()?,
            _ => return None,
        };
        self.terminated(v)
    }

    /// What kdl checks after every value: the next character must be able to end it.
    fn terminated<T>(&self, v: T) -> Option<T> {
        let ok = match self.peek() {
            None => true,
            Some(b'=' | b')' | b'{' | b'}' | b';' | b'\\') => true,
            Some(b'/') => matches!(self.at(1), Some(b'/' | b'*')),
            Some(_) => self.space_len(self.i) > 0 || self.newline_len(self.i) > 0,
        };
        ok.then_some(v)
    }

    fn keyword(&mut self) -> Option<KdlValue> {
        let rest = &self.b[self.i + 1..];
        let (v, n) = if rest.starts_with(b"true") {
            (KdlValue::Bool(true), 4)
        } else if rest.starts_with(b"false") {
            (KdlValue::Bool(false), 5)
        } else if rest.starts_with(b"null") {
            (KdlValue::Null, 4)
        } else if rest.starts_with(b"nan") {
            (KdlValue::Float(f64::NAN), 3)
        } else if rest.starts_with(b"inf") {
            (KdlValue::Float(f64::INFINITY), 3)
        } else if rest.starts_with(b"-inf") {
            (KdlValue::Float(f64::NEG_INFINITY), 4)
        } else {
            return None;
        };
        self.i += 1 + n;
        Some(v)
    }

    /// A string at the cursor: `Some(None)` when the cursor is on something else (a number, a
    /// keyword), `None` when it is on a string we do not accept.
    fn string(&mut self) -> Option<Option<String>> {
        let s = match self.peek() {
            None => return Some(None),
            Some(b'"') => self.quoted()?,
            Some(b'#') => match self.at(1) {
                Some(b'"' | b'#') => self.raw()?,
                _ => return Some(None),
            },
            Some(b'0'..=b'9') => return Some(None),
            Some(b'+' | b'-') => match self.at(1) {
                Some(b'0'..=b'9') => return Some(None),
                // `-.5` is neither a number nor an identifier.
                Some(b'.') if self.at(2).is_some_and(|c| c.is_ascii_digit()) => return None,
                _ => self.bare()?,
            },
            Some(b'.') if self.at(1).is_some_and(|c| c.is_ascii_digit()) => return None,
            Some(_) => self.bare()?,
        };
        self.terminated(Some(s))
    }

    /// A bare identifier.
    fn bare(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            if c < 0x80 {
                if ASCII[c as usize] & IDENT == 0 {
                    break;
                }
                self.i += 1;
            } else {
                let ch = self.char_at(self.i)?;
                if !is_ident_char(ch) {
                    break;
                }
                self.i += ch.len_utf8();
            }
        }
        let s = &self.s[start..self.i];
        match s {
            // Keywords without their `#` are errors in KDL v2.
            "" | "true" | "false" | "null" | "inf" | "-inf" | "nan" => None,
            _ => Some(s.to_string()),
        }
    }

    /// `"..."` with escapes, or a multi-line `"""` string.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        if self.b[self.i..].starts_with(b"\"\"") {
            let n = self.newline_len(self.i + 2);
            if n == 0 {
                return None;
            }
            self.i += 2 + n;
            return self.multiline(0);
        }
        let mut out = String::new();
        let mut seg = self.i;
        loop {
            let c = *self.b.get(self.i)?;
            if c < 0x80 {
                if ASCII[c as usize] & STR != 0 {
                    self.i += 1;
                    continue;
                }
                match c {
                    b'"' => break,
                    b'\\' => {
                        out.push_str(&self.s[seg..self.i]);
                        self.escape(&mut out)?;
                        seg = self.i;
                    }
                    _ => return None, // a newline or a disallowed control character
                }
            } else {
                let ch = self.char_at(self.i)?;
                if is_newline(ch) || is_disallowed(ch) {
                    return None;
                }
                self.i += ch.len_utf8();
            }
        }
        let s = if out.is_empty() {
            self.s[seg..self.i].to_string()
        } else {
            out.push_str(&self.s[seg..self.i]);
            out
        };
        self.i += 1;
        Some(s)
    }

    /// The escape at the cursor (on its backslash), appended to `out`.
    fn escape(&mut self, out: &mut String) -> Option<()> {
        self.i += 1;
        let c = match self.peek()? {
            b'\\' => '\\',
            b'"' => '"',
            b'b' => '\u{8}',
            b'f' => '\u{C}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b's' => ' ',
            b'u' => {
                if self.at(1) != Some(b'{') {
                    return None;
                }
                let digits = self.b[self.i + 2..]
                    .iter()
                    .take(7)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                if !(1..=6).contains(&digits) || self.b.get(self.i + 2 + digits) != Some(&b'}') {
                    return None;
                }
                let hex = &self.s[self.i + 2..self.i + 2 + digits];
                let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                out.push(c);
                self.i += 3 + digits;
                return Some(());
            }
            _ => {
                // Whitespace escape: the backslash and all whitespace and newlines after it
                // vanish.
                let mut any = false;
                loop {
                    let n = self.space_len(self.i).max(self.newline_len(self.i));
                    if n == 0 {
                        break;
                    }
                    any = true;
                    self.i += n;
                }
                return any.then_some(());
            }
        };
        out.push(c);
        self.i += 1;
        Some(())
    }

    /// `#"..."#` and `#"""` multi-line raw strings, with any number of hashes.
    fn raw(&mut self) -> Option<String> {
        let hashes = self.b[self.i..].iter().take_while(|&&c| c == b'#').count();
        self.i += hashes;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        if self.b[self.i..].starts_with(b"\"\"") {
            let n = self.newline_len(self.i + 2);
            if n > 0 {
                self.i += 2 + n;
                return self.multiline(hashes);
            }
        }
        let start = self.i;
        let end = self.find_close(start, 1, hashes)?;
        while self.i < end {
            let c = self.b[self.i];
            if c < 0x80 {
                if c < 0x20 && c != b'\t' {
                    return None;
                }
                self.i += 1;
            } else {
                let ch = self.char_at(self.i)?;
                if is_newline(ch) || is_disallowed(ch) {
                    return None;
                }
                self.i += ch.len_utf8();
            }
        }
        let body = &self.s[start..end];
        self.i = end + 1 + hashes;
        // kdl refuses `#"""#`: a one-line raw string that looks like a multi-line one.
        (body != "\"").then(|| body.to_string())
    }

    /// Where the first `quotes` quotes followed by `hashes` hashes begin, from `from` on. One
    /// pass over the bytes, however many hashes the string has.
    fn find_close(&self, from: usize, quotes: usize, hashes: usize) -> Option<usize> {
        let mut j = from;
        loop {
            let q = j + self.b.get(j..)?.iter().position(|&c| c == b'"')?;
            let run = self.b[q..].iter().take_while(|&&c| c == b'"').count();
            if run < quotes {
                j = q + run;
                continue;
            }
            if hashes == 0 {
                return Some(q);
            }
            let after = &self.b[q + run..];
            let h = after
                .iter()
                .take(hashes)
                .take_while(|&&c| c == b'#')
                .count();
            if h == hashes {
                // Only the last quotes of the run are right before the hashes.
                return Some(q + run - quotes);
            }
            j = q + run + h;
        }
    }

    /// The body of a multi-line string from just after its opening newline: the lines up to
    /// the one holding the closing `"""` (and `hashes` hashes), with the whitespace before the
    /// closing quotes removed from each line. Bodies with a backslash fall back: in a quoted
    /// string escapes interact with dedenting, and in a raw one kdl treats a backslash before
    /// whitespace as an escape on blank lines.
    fn multiline(&mut self, hashes: usize) -> Option<String> {
        let start = self.i;
        let end = self.find_close(start, 3, hashes)?;
        let body = &self.b[start..end];
        if body.contains(&b'\\') {
            return None;
        }
        // The last line holds only the indentation that every other line must start with.
        let mut lines: Vec<(usize, usize)> = Vec::new();
        let mut line = start;
        let mut j = start;
        while j < end {
            let n = self.newline_len(j);
            if n > 0 {
                lines.push((line, j));
                j += n;
                line = j;
            } else {
                j += self.char_at(j).map_or(1, char::len_utf8);
            }
        }
        let prefix = &self.s[line..end];
        if !self.all_space(line, end) {
            return None;
        }
        let mut out = String::new();
        for (k, &(a, b)) in lines.iter().enumerate() {
            if k > 0 {
                out.push('\n');
            }
            if self.all_space(a, b) {
                continue;
            }
            let text = self.s[a..b].strip_prefix(prefix)?;
            if text.chars().any(is_disallowed) {
                return None;
            }
            out.push_str(text);
        }
        self.i = end + 3 + hashes;
        Some(out)
    }

    fn all_space(&self, mut a: usize, b: usize) -> bool {
        while a < b {
            let n = self.space_len(a);
            if n == 0 {
                return false;
            }
            a += n;
        }
        true
    }

    /// An integer (decimal, `0x`, `0o`, `0b`, with `_` separators) or a decimal float.
    fn number(&mut self) -> Option<KdlValue> {
        let start = self.i;
        let negative = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                true
            }
            Some(b'+') => {
                self.i += 1;
                false
            }
            _ => false,
        };
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        let radix = match (self.peek(), self.at(1)) {
            (Some(b'0'), Some(b'x' | b'X')) => 16,
            (Some(b'0'), Some(b'o' | b'O')) => 8,
            (Some(b'0'), Some(b'b' | b'B')) => 2,
            _ => 10,
        };
        if radix != 10 {
            self.i += 2;
            let magnitude = self.digits(radix)?;
            let v = if negative { -magnitude } else { magnitude };
            return Some(KdlValue::Integer(v));
        }
        let magnitude = self.digits(10)?;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits(10)?;
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.digits(10)?;
            float = true;
        }
        if !float {
            return Some(KdlValue::Integer(if negative {
                -magnitude
            } else {
                magnitude
            }));
        }
        // kdl hands the text without separators to Rust's float parser; so do we.
        let text = &self.s[start..self.i];
        let f = if text.contains('_') {
            text.replace('_', "").parse::<f64>().ok()?
        } else {
            text.parse::<f64>().ok()?
        };
        Some(KdlValue::Float(f))
    }

    /// Digits in `radix` with `_` separators, the first one a digit. Falls back when the value
    /// does not fit an i128: kdl parses every part of a number, even a float's, as one.
    fn digits(&mut self, radix: u32) -> Option<i128> {
        let first = char::from(self.peek()?).to_digit(radix)?;
        let mut v = i128::from(first);
        self.i += 1;
        while let Some(c) = self.peek() {
            if c == b'_' {
                self.i += 1;
                continue;
            }
            let Some(d) = char::from(c).to_digit(radix) else {
                break;
            };
            v = v
                .checked_mul(i128::from(radix))?
                .checked_add(i128::from(d))?;
            self.i += 1;
        }
        Some(v)
    }
}
