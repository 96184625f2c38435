//! Splitting a string into words the way the old daemon's shell did.
//!
//! rsync-director joined each sync's options, source and destination with spaces and ran the line
//! through bash. To carry a config over, bkc needs the very words bash would have passed to rsync.
//! Quoting is reproduced exactly (single quotes, double quotes, backslashes); anything bash would
//! have expanded or interpreted (variables, globs, command substitution, redirections, `;`) has
//! no faithful equivalent in an argv, so it is refused with the position of the character.

use std::ops::Range;

#[derive(Debug, PartialEq, Eq)]
pub struct ShellError {
    /// Byte range in the input of the offending part.
    pub range: Range<usize>,
    pub message: String,
}

/// Characters that make bash do something other than quote removal when unquoted.
const SPECIAL: &[char] = &[
    '$', '`', '|', '&', ';', '<', '>', '(', ')', '*', '?', '[', '{', '}',
];

/// The words of `line`, each with the byte offset where it starts.
pub fn split(line: &str) -> Result<Vec<(String, usize)>, ShellError> {
    let mut words = Vec::new();
    let mut word: Option<(String, usize)> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                words.extend(word.take());
                continue;
            }
            '#' | '~' if word.is_none() => {
                let what = if c == '#' {
                    "starts a comment"
                } else {
                    "is your home directory"
                };
                return Err(refuse(i, c, what));
            }
            _ => {}
        }
        let w = &mut word.get_or_insert_with(|| (String::new(), i)).0;
        match c {
            '\'' => loop {
                match chars.next() {
                    Some((_, '\'')) => break,
                    Some((_, x)) => w.push(x),
                    None => return Err(unclosed(i, line, "single")),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        // Inside double quotes a backslash escapes only these; elsewhere it stays.
                        Some((_, x @ ('$' | '`' | '"' | '\\'))) => w.push(x),
                        Some((_, '\n')) => {}
                        Some((_, x)) => {
                            w.push('\\');
                            w.push(x);
                        }
                        None => return Err(unclosed(i, line, "double")),
                    },
                    Some((j, x @ ('$' | '`'))) => {
                        return Err(refuse(j, x, "is expanded even inside double quotes"));
                    }
                    Some((_, x)) => w.push(x),
                    None => return Err(unclosed(i, line, "double")),
                }
            },
            '\\' => match chars.next() {
                Some((_, '\n')) => {}
                Some((_, x)) => w.push(x),
                None => {
                    return Err(ShellError {
                        range: i..i + 1,
                        message: "a backslash at the end escapes nothing".into(),
                    });
                }
            },
            c if SPECIAL.contains(&c) => {
                return Err(refuse(i, c, "is interpreted by the shell when unquoted"));
            }
            c => w.push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn refuse(at: usize, c: char, what: &str) -> ShellError {
    ShellError {
        range: at..at + c.len_utf8(),
        message: format!(
            "`{c}` {what}, so the old daemon's shell did not pass it to rsync as written"
        ),
    }
}

fn unclosed(at: usize, line: &str, kind: &str) -> ShellError {
    ShellError {
        range: at..line.len(),
        message: format!("this {kind} quote is never closed"),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(s: &str) -> Vec<String> {
        split(s).unwrap().into_iter().map(|(w, _)| w).collect()
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("--exclude '.cache'"), ["--exclude", ".cache"]);
        assert_eq!(words("  -av\t--delete "), ["-av", "--delete"]);
        assert_eq!(
            words(r#"--exclude "a b" c\ d"#),
            ["--exclude", "a b", "c d"]
        );
        assert_eq!(words(r#"'it'\''s' "x\"y\z""#), ["it's", r#"x"y\z"#]);
        assert_eq!(words("--exclude='*.tmp'"), ["--exclude=*.tmp"]);
        assert_eq!(words("''"), [""]);
        assert_eq!(words("a#b x~"), ["a#b", "x~"]);
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn refuses_what_bash_expands() {
        for (s, at) in [
            ("--exclude *.tmp", 10),
            ("$HOME", 0),
            ("\"$HOME\"", 1),
            ("a;b", 1),
            ("x `id`", 2),
            ("'open", 0),
            ("\"open", 0),
            ("end\\", 3),
            ("# comment", 0),
            ("~/x", 0),
            ("{a,b}", 0),
        ] {
            let e = split(s).unwrap_err();
            assert_eq!(e.range.start, at, "{s}: {}", e.message);
        }
    }

    #[test]
    fn word_offsets() {
        let w = split("-a  'b c'").unwrap();
        assert_eq!(w, [("-a".to_string(), 0), ("b c".to_string(), 4)]);
    }
}
