//! Text -> KDL document -> AST with spans.
//!
//! Before the kdl crate sees a file, a cheap scan bounds what would make it misbehave: a file
//! over [`MAX_BYTES`], braces nested deeper than [`MAX_DEPTH`] (kdl 6 recurses per level and
//! overflows the stack near 10,000), and `/-{` blocks nested more than [`MAX_SLASHDASH_DEPTH`]
//! deep (kdl-org/kdl-rs#177: each level multiplies the parse time by four, so 20 levels would
//! take hours). A topology needs three levels of braces; the limits are far above that.

pub mod ast;
mod fast;
mod lower;
mod reader;

use miette::SourceSpan;

use crate::diag::{Code, Diagnostic, Diagnostics};

pub const MAX_BYTES: usize = 16 * 1024 * 1024;
pub const MAX_DEPTH: usize = 64;
pub const MAX_SLASHDASH_DEPTH: usize = 6;

/// Parse and lower a topology. Syntax errors end the stage (the AST would be guesswork); errors
/// in the shape of nodes do not, so that `analyze` can still report everything else.
pub fn parse(text: &str, d: &mut Diagnostics) -> Option<ast::File> {
    if !within_limits(text, d) {
        return None;
    }
    // The kdl crate parses at about 1.5 MB/s, too slow for large topologies; `fast` builds the
    // same document an order of magnitude faster but only for input it is sure about. Anything
    // else, every error included, goes through kdl, which also writes the diagnostics.
    let doc = match fast::parse(text) {
        Some(doc) => doc,
        None => kdl_document(text, d)?,
    };
    Some(lower::file(&doc, d))
}

/// The KDL document of a topology as the kdl crate reads it, keeping every comment and the
/// original formatting (what `bkc fmt` works on), or the syntax errors that keep it from being
/// read.
pub fn document(text: &str, d: &mut Diagnostics) -> Option<kdl::KdlDocument> {
    if !within_limits(text, d) {
        return None;
    }
    kdl_document(text, d)
}

/// Refuse input that would make the parser misbehave (see the module comment).
fn within_limits(text: &str, d: &mut Diagnostics) -> bool {
    if text.len() > MAX_BYTES {
        d.push(
            Diagnostic::error(
                Code::FileTooLarge,
                format!(
                    "the file is {} bytes; bkc reads at most {MAX_BYTES}",
                    text.len()
                ),
            )
            .help("split the topology, or check that this is the file you meant"),
        );
        return false;
    }
    if let Some(diag) = scan(text) {
        d.push(diag);
        return false;
    }
    true
}

fn kdl_document(text: &str, d: &mut Diagnostics) -> Option<kdl::KdlDocument> {
    match text.parse::<kdl::KdlDocument>() {
        Ok(doc) => Some(doc),
        Err(err) => {
            // kdl's diagnostics carry their own unnamed copy of the text; rebuild each one on
            // ours so that it renders with the file name.
            for k in err.diagnostics {
                let message = k.message.unwrap_or_else(|| "syntax error".into());
                let label = k.label.unwrap_or_else(|| "here".into());
                let help = k
                    .help
                    .unwrap_or_else(|| "see docs/SCHEMA.md for the KDL syntax bkc reads".into());
                d.push(
                    Diagnostic::error(Code::Syntax, message)
                        .label(clamp(k.span, text.len()), label)
                        .help(help),
                );
            }
            None
        }
    }
}

/// The fast parser alone, for the differential test against the kdl crate.
#[doc(hidden)]
pub fn parse_fast(text: &str) -> Option<kdl::KdlDocument> {
    fast::parse(text)
}

fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let start = span.offset().min(len);
    SourceSpan::new(start.into(), span.len().min(len - start))
}

/// Bound brace nesting and `/-{` nesting before the parser runs. The scan knows KDL's strings
/// and comments so that braces inside them do not count.
fn scan(text: &str) -> Option<Diagnostic> {
    let b = text.as_bytes();
    let mut i = 0;
    // For each open brace: whether it was slashdashed.
    let mut stack: Vec<bool> = Vec::new();
    let mut slashed = 0usize;
    let mut pending_slashdash = false;
    while i < b.len() {
        if let Some(end) = comment_end(b, i) {
            i = end;
            continue;
        }
        if b[i..].starts_with(b"/-") {
            pending_slashdash = true;
            i += 2;
            continue;
        }
        if let Some(end) = string_end(b, i) {
            i = end;
            pending_slashdash = false;
            continue;
        }
        match b[i] {
            b'{' => {
                stack.push(pending_slashdash);
                if pending_slashdash {
                    slashed += 1;
                }
                if stack.len() > MAX_DEPTH || slashed > MAX_SLASHDASH_DEPTH {
                    return Some(too_deep(i, stack.len() > MAX_DEPTH));
                }
            }
            b'}' => slashed -= usize::from(stack.pop() == Some(true)),
            // A run of `#` that opens no raw string is the parser's to refuse.
            b'#' if b.get(i + 1) == Some(&b'#') => {}
            c if !c.is_ascii_whitespace() => pending_slashdash = false,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end of a `//` line comment or a nested `/* */` comment that starts at `i`.
fn comment_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b[i..].starts_with(b"//") {
        while i < b.len() && b[i] != b'\n' {
            i += 1;
        }
        return Some(i);
    }
    if !b[i..].starts_with(b"/*") {
        return None;
    }
    let mut depth = 0usize;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if b[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                break;
            }
        } else {
            i += 1;
        }
    }
    Some(i)
}

/// The end of a quoted or raw (`#"…"#`) string that starts at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b[i] == b'"' {
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        return Some(i + 1);
    }
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    if hashes == 0 || b.get(i + hashes) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    i += hashes + 1;
    while i < b.len() && !b[i..].starts_with(&close) {
        i += 1;
    }
    Some(i + close.len())
}

/// The diagnostic for the brace at `at`: too deep as a block, or as a `/-{` inside `/-{`.
fn too_deep(at: usize, blocks: bool) -> Diagnostic {
    let (what, limit) = if blocks {
        ("blocks", MAX_DEPTH)
    } else {
        ("commented-out `/-{` blocks", MAX_SLASHDASH_DEPTH)
    };
    Diagnostic::error(
        Code::Nesting,
        format!("{what} are nested more than {limit} deep"),
    )
    .label(SourceSpan::new(at.into(), 1), "too deep")
    .help("a topology needs three levels; delete the commented-out blocks or flatten the file")
}
