//! Text from a stranger made safe for a terminal. Whatever a host sends back (paths, unit
//! states, stderr, journal lines, file contents shown in a diff) may hold escape sequences that
//! write the clipboard (OSC 52), move the cursor to hide lines of a plan, or reorder text
//! (bidirectional overrides). Every such string passes through [`printable`] before it is
//! printed; JSON output escapes on its own.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` may reach a terminal as it is: line breaks and tabs yes, every other control
/// character (C0, DEL, C1) and the invisible formatting characters that reorder or hide text no.
fn shown_as_is(c: char) -> bool {
    if c == '\n' || c == '\t' {
        return true;
    }
    !(c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' // zero-width characters, left-to-right and right-to-left marks
            | '\u{2028}' | '\u{2029}' // line and paragraph separators: line breaks to KDL
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}'))
}

/// `s` with every character that could act on a terminal written as a visible escape (`\x1b`,
/// `\u{202e}`); `s` itself when it has none.
pub fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().all(shown_as_is) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if shown_as_is(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `s` with every character [`printable`] would escape replaced by one `?` per byte, so each
/// byte offset into it still points at the same place: for source text that diagnostics point
/// into by offset. A carriage return stays (CRLF files).
pub fn masked(s: &str) -> Cow<'_, str> {
    let shown = |c: char| c == '\r' || shown_as_is(c);
    if s.chars().all(shown) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if shown(c) {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        }
    }
    Cow::Owned(out)
}

/// One line of text from a stranger: as [`printable`], and a line break is escaped too, so it
/// cannot start a line of its own that looks like bkc's.
pub fn printable_line(s: &str) -> Cow<'_, str> {
    match printable(s) {
        Cow::Borrowed(b) if !b.contains('\n') => Cow::Borrowed(b),
        p => Cow::Owned(p.replace('\n', "\\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_act_on_no_terminal() {
        let clipboard = "x\x1b]52;c;aGVsbG8=\x07y";
        assert_eq!(printable(clipboard), "x\\x1b]52;c;aGVsbG8=\\x07y");
        assert_eq!(printable("up\x1b[1A\rover"), "up\\x1b[1A\\x0dover");
        assert_eq!(printable("a\u{9b}31m"), "a\\x9b31m");
        assert_eq!(printable("abc\u{202E}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(printable("tab\tand\nline"), "tab\tand\nline");
        assert_eq!(printable_line("two\nlines"), "two\\nlines");
        assert!(matches!(printable("plain ünïcode"), Cow::Borrowed(_)));
        // KDL ends a `//` comment at any of these, so they never reach a written file as is.
        assert_eq!(
            printable_line("a\x0cb\u{85}c\u{2028}d"),
            "a\\x0cb\\x85c\\u{2028}d"
        );
    }

    #[test]
    fn masking_keeps_every_offset() {
        let s = "job \"a\u{202E}b\" {\r\n\x1b[2J}";
        let m = masked(s);
        assert_eq!(m.len(), s.len());
        assert_eq!(m, "job \"a???b\" {\r\n?[2J}");
        assert!(matches!(masked("plain\r\n"), Cow::Borrowed(_)));
    }
}
