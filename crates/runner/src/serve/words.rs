//! The command line a forced command receives in `SSH_ORIGINAL_COMMAND`, split into words.
//!
//! Without a forced command the same line reaches serve through the account's shell, which splits
//! it; with one, serve must split it itself, and the two must agree word for word, or a request
//! could mean one thing to the check and another to what runs. So only the part of the shell's
//! grammar whose meaning no shell changes is accepted: words apart by spaces or tabs, a backslash
//! that makes the next character literal (rsync escapes its arguments so), and single quotes
//! (bkc's own quoting). Whatever a shell would expand or treat as syntax (`$`, backquotes, double
//! quotes, globs, redirections, `;`, `&`, `|`, a leading `~` or `#`, line breaks) is refused.

/// Characters a shell treats specially anywhere in a word unless quoted.
const SPECIAL: &[char] = &[
    '"', '$', '`', '|', '&', ';', '<', '>', '(', ')', '*', '?', '[', ']', '{', '}', '!',
];

pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => match chars.next() {
                Some(n) if !n.is_control() => {
                    word.push(n);
                    in_word = true;
                }
                Some(_) => return Err("an escaped control character or line break".into()),
                None => return Err("a backslash at the end of the line".into()),
            },
            '\'' => {
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) if n.is_control() => {
                            return Err("a control character or line break".into());
                        }
                        Some(n) => word.push(n),
                        None => return Err("a single quote that is not closed".into()),
                    }
                }
                in_word = true;
            }
            '#' | '~' if !in_word => {
                return Err(format!("`{c}` at the start of a word"));
            }
            c if c.is_control() => return Err("a control character or line break".into()),
            c if SPECIAL.contains(&c) => {
                return Err(format!("`{c}`, which a shell would interpret"));
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkc_contract::names::shell_quote;

    /// The words a real shell makes of `line`.
    fn sh(line: &str) -> Vec<String> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for w in {line}; do printf '%s\\0' \"$w\"; done"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_terminator('\0').map(String::from).collect()
    }

    #[test]
    fn agrees_with_a_shell_on_what_it_accepts() {
        let lines = [
            "/usr/local/bin/bkc-run serve a-to-b",
            "'/opt/my bkc/bkc-run' serve j rsync --server -logDtpre.iLsfxCIvu . /srv/x\\ y/",
            "bkc-run serve j rsync --server . /srv/it\\'s/q\\\"d/semi\\;colon/back\\\\slash/",
            "  spaced \t out  ",
            "''",
            "a''b 'c'd\\ e é",
            "a=b --x=y",
        ];
        for l in lines {
            assert_eq!(split(l).unwrap(), sh(l), "{l}");
        }
        for w in [
            "it's", "a b", "$(id)", "`id`", "*", "~root", "#c", "x\\y", "",
        ] {
            let q = shell_quote(w);
            assert_eq!(split(&q).unwrap(), [w], "{q}");
        }
    }

    #[test]
    fn refuses_what_a_shell_would_interpret() {
        for l in [
            "id; sh",
            "a && b",
            "a | b",
            "echo $(id)",
            "echo `id`",
            "echo $HOME",
            "cat < /etc/shadow",
            "echo > /etc/x",
            "ls *",
            "ls /srv/?",
            "ls [ab]",
            "echo {a,b}",
            "~root/x",
            "#comment",
            "a \"b\"",
            "a\nb",
            "a\\\nb",
            "'unclosed",
            "trailing\\",
            "(sub)",
            "a & b",
            "!x",
        ] {
            assert!(split(l).is_err(), "{l:?}");
        }
    }
}
