//! One NixOS module per host: the host's units (its jobs', and those pruning the append-only
//! snapshots other jobs push there), job specs, serve files and known_hosts as NixOS options.
//!
//! The module is rendered (templates/nixos.nix.j2) from the same settings as the unit files
//! (`unit.rs`). Values keep their systemd escaping, because NixOS writes `serviceConfig` and
//! the like into unit files verbatim; on top of it they are escaped as Nix strings here. Only
//! the paths of the runner and of mkdir differ from the unit files: they are options of the
//! module, defaulting to the Nix store.
//!
//! With restricted keys the module declares the authorized keys file of each user, with the
//! module's runner in the forced commands, and adds it to `services.openssh.authorizedKeysFiles`
//! (a list NixOS merges, so the files it reads already stay) in place of the sshd drop-in. An
//! activation script makes each job's own key where none is pinned, as `bkc apply` does.

use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

use super::access::{Facts, HostAccess};
use super::unit::{Setting, Unit};
use super::{EmitError, JobFiles, KNOWN_HOSTS_PATH, NIXOS, Prune, render as render_template};
use bkc_contract::names::{AUTHORIZED_KEYS_PATTERN, KEYS_DIR, SSHD_DROPIN_PATH};

/// Stands for the module's runner in the authorized keys text until the template puts
/// `${cfg.runner}` there. No name, key or path in those files can contain it: names hold no `@`.
const RUNNER_MARK: &str = "@bkc-runner@";

/// Where `bkc build --emit nixos` puts each host's module in the host's output directory.
pub const NIXOS_MODULE_PATH: &str = "/bkc.nix";

pub(super) fn register(env: &mut Environment) {
    env.add_filter("nix_escape", nix_escape);
    env.add_filter("nix_attr", nix_attr);
    env.add_filter("nix_text", nix_text);
}

/// A unit as the template needs it: settings of the same key grouped, since a Nix attribute
/// set holds each name once (a list of values becomes repeated `key=` lines in the unit).
#[derive(Serialize)]
struct NixUnit<'a> {
    /// The unit's name without its suffix: its attribute in `systemd.services` or `.timers`.
    name: &'a str,
    sections: Vec<NixSection<'a>>,
    /// A service that runs as long as the host (a watcher): restarted when it changed.
    restart: bool,
}

#[derive(Serialize)]
struct NixSection<'a> {
    name: &'static str,
    settings: Vec<Grouped<'a>>,
}

#[derive(Serialize)]
struct Grouped<'a> {
    key: &'static str,
    comment: &'a [&'static str],
    values: Vec<&'a Setting>,
}

/// A file under /etc: its path relative to /etc, as `environment.etc` names it.
#[derive(Serialize)]
struct Etc<'a> {
    path: &'a str,
    text: std::borrow::Cow<'a, str>,
    /// Its forced commands run the module's runner ([`RUNNER_MARK`]).
    runner: bool,
}

/// A job key the activation script makes when it is missing.
#[derive(Serialize)]
struct MadeKey {
    path: String,
    comment: String,
}

fn grouped<'a>(name: &'a str, unit: &'a Unit, restart: bool) -> NixUnit<'a> {
    let sections = unit
        .sections
        .iter()
        .map(|section| {
            let mut settings: Vec<Grouped> = Vec::new();
            for s in &section.settings {
                match settings.iter_mut().find(|g| g.key == s.key) {
                    Some(g) => g.values.push(s),
                    None => settings.push(Grouped {
                        key: s.key,
                        comment: &s.comment,
                        values: vec![s],
                    }),
                }
            }
            NixSection {
                name: section.name,
                settings,
            }
        })
        .collect();
    NixUnit {
        name,
        sections,
        restart,
    }
}

fn etc_path(path: &str) -> &str {
    path.strip_prefix("/etc/")
        .expect("bkc writes its files under /etc")
}

/// The module of `host`, whose jobs are `jobs`.
pub(super) fn render(
    env: &Environment,
    host: &str,
    jobs: &[JobFiles],
    prunes: &[Prune],
    serve: &[(String, String)],
    known_hosts: Option<String>,
    access: &HostAccess,
) -> Result<String, EmitError> {
    let mut services: Vec<NixUnit> = jobs
        .iter()
        .map(|j| grouped(&j.unit, &j.service, j.long_running))
        .collect();
    services.extend(prunes.iter().map(|p| grouped(&p.unit, &p.service, false)));
    let mut timers: Vec<NixUnit> = jobs
        .iter()
        .filter_map(|j| j.timer.as_ref().map(|t| grouped(&j.unit, t, false)))
        .collect();
    timers.extend(prunes.iter().map(|p| grouped(&p.unit, &p.timer, false)));
    let paths: Vec<NixUnit> = jobs
        .iter()
        .filter_map(|j| j.path.as_ref().map(|p| grouped(&j.unit, p, false)))
        .collect();
    let mut etc: Vec<Etc> = jobs
        .iter()
        .flat_map(|j| &j.etc)
        .map(|(path, text)| Etc {
            path: etc_path(path),
            text: text.as_str().into(),
            runner: false,
        })
        .collect();
    etc.extend(serve.iter().map(|(path, text)| Etc {
        path: etc_path(path),
        text: text.as_str().into(),
        runner: false,
    }));
    if let Some(text) = &known_hosts {
        etc.push(Etc {
            path: etc_path(KNOWN_HOSTS_PATH),
            text: text.as_str().into(),
            runner: false,
        });
    }
    // NixOS has no `bkc apply` to read keys from hosts: only pinned keys are known here.
    let access_files = access.files(&Facts::default(), Some(RUNNER_MARK));
    let mut authorized_keys_files = Vec::new();
    for (path, text) in &access_files {
        if path == SSHD_DROPIN_PATH {
            authorized_keys_files.push(AUTHORIZED_KEYS_PATTERN);
        } else {
            etc.push(Etc {
                path: etc_path(path),
                text: text.as_str().into(),
                runner: true,
            });
        }
    }
    let made_keys: Vec<MadeKey> = access
        .keys
        .iter()
        .filter(|k| k.pinned.is_none())
        .map(|k| MadeKey {
            path: format!("{KEYS_DIR}/{}", k.job),
            comment: format!("bkc:{}@{host}", k.job),
        })
        .collect();
    render_template(
        env,
        NIXOS,
        || format!("the NixOS module of host {host}"),
        minijinja::context! {
            host, services, timers, paths, etc, authorized_keys_files, made_keys,
            keys_dir => KEYS_DIR, runner_mark => RUNNER_MARK,
        },
    )
}

/// The inside of a double-quoted Nix string that reads back as exactly `s`. `$` is always
/// escaped, so no `${` can start an interpolation.
fn nix_escape(s: &str) -> Result<String, Error> {
    if s.contains('\0') {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{s:?} contains NUL, which a Nix string cannot hold"),
        ));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A file's text as a Nix string: an indented string (`'' ... ''`) line for line, so that a
/// reader sees the file as it will be, when Nix reads that back exactly; otherwise a string
/// in double quotes.
///
/// Nix strips the common indentation of an indented string's lines (except whitespace-only
/// ones) and drops its first line when that is blank. The text goes on the line after `''`,
/// so it is kept whole when its first line starts at column 0 and it ends with a line break.
/// Tabs and carriage returns would need escapes of their own and are left to the
/// double-quoted form. Inside, `''` is written `'''`, `${` is written `''${`, and a `'` just
/// before `${` is written `''\'`.
fn nix_text(s: &str) -> Result<String, Error> {
    let kept_whole =
        s.ends_with('\n') && !s.starts_with([' ', '\n']) && !s.contains(['\t', '\r', '\0']);
    if !kept_whole {
        return Ok(format!("\"{}\"", nix_escape(s)?));
    }
    let mut out = String::from("''\n");
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("''") {
            out.push_str("'''");
            rest = after;
        } else if rest.starts_with("'${") {
            // `'''${` would read as `''` and an interpolation: escape the quote on its own.
            out.push_str("''\\'");
            rest = &rest[1..];
        } else if let Some(after) = rest.strip_prefix("${") {
            out.push_str("''${");
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.push_str("''");
    Ok(out)
}

/// An attribute name: bare when Nix reads it as an identifier, otherwise a quoted string (a
/// dot in a bare name would make a nested attribute path).
fn nix_attr(s: &str) -> Result<String, Error> {
    const KEYWORDS: [&str; 10] = [
        "assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with",
    ];
    let mut chars = s.chars();
    let bare = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '\''))
        && !KEYWORDS.contains(&s);
    Ok(if bare {
        s.to_string()
    } else {
        format!("\"{}\"", nix_escape(s)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(nix_escape("/srv/plain").unwrap(), "/srv/plain");
        assert_eq!(
            nix_escape("a \"b\" \\ ${x} $y\n").unwrap(),
            "a \\\"b\\\" \\\\ \\${x} \\$y\\n"
        );
        assert!(nix_escape("a\0b").is_err());
    }

    #[test]
    fn texts_are_indented_strings_when_nix_reads_them_back_whole() {
        assert_eq!(
            nix_text("{\n  \"a\": \"it''s ${x}\"\n}\n").unwrap(),
            "''\n{\n  \"a\": \"it'''s ''${x}\"\n}\n''"
        );
        assert_eq!(nix_text("'${a}\n").unwrap(), "''\n''\\'''${a}\n''");
        assert_eq!(nix_text("  indented\n").unwrap(), "\"  indented\\n\"");
        assert_eq!(nix_text("no line break").unwrap(), "\"no line break\"");
        assert_eq!(nix_text("a\ttab\n").unwrap(), "\"a\\ttab\\n\"");
    }

    #[test]
    fn attribute_names_are_quoted_when_needed() {
        assert_eq!(nix_attr("bkc-pull-db").unwrap(), "bkc-pull-db");
        assert_eq!(nix_attr("bkc-a.b").unwrap(), "\"bkc-a.b\"");
        assert_eq!(nix_attr("0day").unwrap(), "\"0day\"");
        assert_eq!(nix_attr("in").unwrap(), "\"in\"");
        assert_eq!(nix_attr("").unwrap(), "\"\"");
        assert_eq!(nix_attr("bkc/jobs/x.json").unwrap(), "\"bkc/jobs/x.json\"");
    }
}
