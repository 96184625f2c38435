//! Escaping that makes values safe inside systemd unit files.
//!
//! systemd expands `%` specifiers in most settings and `$` variables in command lines, splits
//! command lines and path lists on white space unless quoted, and C-unescapes backslashes. A
//! value that reaches a unit file unescaped could therefore change meaning; these filters write
//! it so that systemd reads back exactly the original string. Line breaks cannot be escaped in
//! a unit file at all and are refused (analyze rejects them first; this is the last guard).
//!
//! The values are escaped once, when the unit's settings are computed (`unit.rs`): the NixOS
//! module carries the same escaped strings, since NixOS writes them into unit files as they are.

use minijinja::{Error, ErrorKind};

fn no_breaks(s: &str) -> Result<(), Error> {
    if s.contains(['\n', '\r', '\0']) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{s:?} contains a line break or NUL, which a unit file cannot hold"),
        ));
    }
    Ok(())
}

/// Free text such as `Description=`: only specifiers need escaping. A trailing backslash
/// would join the next line of the unit file to this one, and cannot be escaped.
pub(crate) fn unit_text(s: &str) -> Result<String, Error> {
    no_breaks(s)?;
    if s.trim_end().ends_with('\\') {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{s:?} ends with a backslash, which would join the next line of a unit file to it"
            ),
        ));
    }
    Ok(s.replace('%', "%%"))
}

/// Quote a word for a systemd list setting (`ReadWritePaths=` and the like), C-style.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
}

/// One argument of `ExecStart=`: specifiers and `$` variables escaped, quoted when needed.
pub(crate) fn unit_arg(s: &str) -> Result<String, Error> {
    no_breaks(s)?;
    let s = s.replace('$', "$$");
    Ok(if needs_quotes(&s) {
        quote(&s)
    } else {
        s.replace('%', "%%")
    })
}

/// The program of `ExecStart=`: like [`unit_arg`], but a `$` stays as it is. systemd expands
/// `$` variables in the arguments only, so `$$` in the program's path would be looked up as
/// two dollar signs: a runner at `/opt/$x/bkc-run` would not be found.
pub(crate) fn unit_exec(s: &str) -> Result<String, Error> {
    no_breaks(s)?;
    Ok(if needs_quotes(s) {
        quote(s)
    } else {
        s.replace('%', "%%")
    })
}

/// One path of a path list such as `ReadWritePaths=`.
pub(crate) fn unit_path(s: &str) -> Result<String, Error> {
    no_breaks(s)?;
    Ok(if needs_quotes(s) {
        quote(s)
    } else {
        s.replace('%', "%%")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_through() {
        assert_eq!(
            unit_arg("/usr/local/bin/bkc-run").unwrap(),
            "/usr/local/bin/bkc-run"
        );
        assert_eq!(unit_path("/srv/backup").unwrap(), "/srv/backup");
    }

    #[test]
    fn specials_are_escaped() {
        assert_eq!(unit_arg("/srv/50%").unwrap(), "/srv/50%%");
        assert_eq!(unit_arg("/srv/$HOME").unwrap(), "/srv/$$HOME");
        assert_eq!(unit_exec("/opt/$x/bkc-run").unwrap(), "/opt/$x/bkc-run");
        assert_eq!(
            unit_exec("/opt/%h/bkc run").unwrap(),
            "\"/opt/%%h/bkc run\""
        );
        assert_eq!(unit_arg("/srv/my dir").unwrap(), "\"/srv/my dir\"");
        assert_eq!(
            unit_path("/srv/a \"b\"\\c").unwrap(),
            "\"/srv/a \\\"b\\\"\\\\c\""
        );
        assert_eq!(unit_text("50% done").unwrap(), "50%% done");
    }

    #[test]
    fn line_breaks_are_refused() {
        assert!(unit_text("a\nb").is_err());
        assert!(unit_arg("a\rb").is_err());
        assert!(unit_path("a\0b").is_err());
        assert!(unit_text("backup of C:\\").is_err());
    }
}
