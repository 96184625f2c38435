//! The old daemon's rsync options, as bash split them, turned into what a bkc `sync` says:
//! `opts` in their order, `exclude` patterns, a `bwlimit`. Whatever has no faithful equivalent is
//! an error naming the option and why.

/// Long options that take a value, so that `--max-size 10M` (two words) becomes `--max-size=10M`
/// (one, as bkc's `opts` wants): rsync reads both the same.
const LONG_WITH_VALUE: &[&str] = &[
    "--address",
    "--backup-dir",
    "--block-size",
    "--bwlimit",
    "--cc",
    "--checksum-choice",
    "--checksum-seed",
    "--chmod",
    "--chown",
    "--compare-dest",
    "--compress-choice",
    "--compress-level",
    "--contimeout",
    "--copy-as",
    "--copy-dest",
    "--debug",
    "--early-input",
    "--exclude",
    "--exclude-from",
    "--files-from",
    "--filter",
    "--groupmap",
    "--iconv",
    "--include",
    "--include-from",
    "--info",
    "--link-dest",
    "--log-file",
    "--log-file-format",
    "--max-alloc",
    "--max-delete",
    "--max-size",
    "--min-size",
    "--modify-window",
    "--only-write-batch",
    "--out-format",
    "--outbuf",
    "--partial-dir",
    "--password-file",
    "--port",
    "--protocol",
    "--read-batch",
    "--remote-option",
    "--rsh",
    "--rsync-path",
    "--skip-compress",
    "--sockopts",
    "--stderr",
    "--stop-after",
    "--stop-at",
    "--suffix",
    "--temp-dir",
    "--timeout",
    "--usermap",
    "--write-batch",
    "--zc",
    "--zl",
];

/// Short options that take a value, with their long names.
const SHORT_WITH_VALUE: &[(char, &str)] = &[
    ('B', "--block-size"),
    ('e', "--rsh"),
    ('f', "--filter"),
    ('M', "--remote-option"),
    ('T', "--temp-dir"),
    ('@', "--modify-window"),
];

/// Filter rules apply in the order given. bkc passes its `exclude` list after every option, so
/// one of these written after an `--exclude` would change places with it.
const FILTERS: &[&str] = &[
    "--include",
    "--include-from",
    "--exclude-from",
    "--filter",
    "-F",
];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converted {
    pub opts: Vec<String>,
    pub exclude: Vec<String>,
    pub bwlimit: Option<String>,
}

/// A word that cannot be carried over: its index in the input, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub word: usize,
    pub message: String,
    pub help: String,
}

/// Why a word cannot be carried over: the message and the help.
type Why = (String, &'static str);

/// An option and its value, if it takes one.
type Pair = (String, Option<String>);

/// Convert the words of one sync's options.
pub fn convert(words: &[String]) -> Result<Converted, Refused> {
    let mut out = Converted::default();
    let mut i = 0;
    while i < words.len() {
        let at = i;
        let refuse = |(message, help): Why| Refused {
            word: at,
            message,
            help: help.to_string(),
        };
        let w = words[i].as_str();
        let (pairs, took_next) = pairs(w, words.get(i + 1)).map_err(refuse)?;
        i += 1 + usize::from(took_next);
        for (key, value) in pairs {
            keep(&mut out, w, key, value).map_err(refuse)?;
        }
    }
    Ok(out)
}

/// Normalise one word to (option, value) pairs: long options as written, short ones with a
/// value split off their bundle and named by their long form. Also whether the value was the
/// next word.
fn pairs(w: &str, next: Option<&String>) -> Result<(Vec<Pair>, bool), Why> {
    if w == "--" {
        return Err((
            "`--` ends rsync's options, so what follows it was read as paths".into(),
            "remove it; bkc writes the source and destination itself",
        ));
    }
    if !w.starts_with('-') || w == "-" {
        return Err((
            format!("`{w}` is not an option: rsync read it as one more source path"),
            "copy that path in a sync of its own",
        ));
    }
    match w.strip_prefix("--") {
        Some(long) => long_option(w, long, next),
        None => short_options(w, next),
    }
}

fn long_option(w: &str, long: &str, next: Option<&String>) -> Result<(Vec<Pair>, bool), Why> {
    let (key, value) = match long.split_once('=') {
        Some((k, v)) => (format!("--{k}"), Some(v.to_string())),
        None => (w.to_string(), None),
    };
    if value.is_none() && LONG_WITH_VALUE.contains(&key.as_str()) {
        let Some(v) = next else {
            return Err((
                format!("`{key}` needs a value"),
                "rsync would have failed on this",
            ));
        };
        return Ok((vec![(key, Some(v.clone()))], true));
    }
    Ok((vec![(key, value)], false))
}

/// A bundle of short options such as `-avB1024`: the letters before one that takes a value
/// stay a bundle, and that one takes the rest of the word or the next word.
fn short_options(w: &str, next: Option<&String>) -> Result<(Vec<Pair>, bool), Why> {
    let letters: Vec<char> = w[1..].chars().collect();
    let Some(p) = letters
        .iter()
        .position(|c| SHORT_WITH_VALUE.iter().any(|(s, _)| s == c))
    else {
        return Ok((vec![(w.to_string(), None)], false));
    };
    let mut pairs = Vec::new();
    if p > 0 {
        pairs.push((
            format!("-{}", letters[..p].iter().collect::<String>()),
            None,
        ));
    }
    let long = SHORT_WITH_VALUE
        .iter()
        .find(|(s, _)| *s == letters[p])
        .map_or("", |(_, l)| l);
    let rest: String = letters[p + 1..].iter().collect();
    let (value, took_next) = if rest.is_empty() {
        let Some(v) = next else {
            return Err((
                format!("`-{}` needs a value", letters[p]),
                "rsync would have failed on this",
            ));
        };
        (v.clone(), true)
    } else {
        (rest, false)
    };
    pairs.push((long.to_string(), Some(value)));
    Ok((pairs, took_next))
}

/// Add one option of the word `w` to `out`, unless bkc cannot carry it over.
fn keep(out: &mut Converted, w: &str, key: String, value: Option<String>) -> Result<(), Why> {
    let short_letters = key.strip_prefix('-').filter(|k| !k.starts_with('-'));
    if key == "--rsh" || short_letters.is_some_and(|l| l.contains('e')) {
        return Err((
            format!("`{w}` sets the ssh command, which bkc sets itself"),
            "set the port and user on the host; bkc pins host keys and passes its own identity",
        ));
    }
    if key == "--dry-run" || short_letters.is_some_and(|l| l.contains('n')) {
        return Err((
            format!("`{w}` makes every run a dry run that copies nothing"),
            "remove it, and try a job with `bkc-run --dry-run` instead",
        ));
    }
    let filter = FILTERS.contains(&key.as_str()) || short_letters.is_some_and(|l| l.contains('F'));
    if filter && !out.exclude.is_empty() {
        return Err((
            format!("`{w}` comes after an `--exclude`, and rsync applies filter rules in order"),
            "bkc passes excludes after all other options; move the excludes after this option in the YAML, or write the rules as one --filter list",
        ));
    }
    match (key.as_str(), value) {
        ("--exclude", Some(v)) => out.exclude.push(v),
        ("--bwlimit", Some(v)) => out.bwlimit = Some(v),
        (_, Some(v)) => out.opts.push(format!("{key}={v}")),
        (_, None) => out.opts.push(key),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(ws: &[&str]) -> Result<Converted, Refused> {
        convert(&ws.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn excludes_and_values() {
        let c = conv(&[
            "-av",
            "--delete",
            "--exclude",
            ".cache",
            "--exclude=Downloads",
            "--max-size",
            "10M",
            "-aT",
            "/tmp",
            "--bwlimit=5M",
        ])
        .unwrap();
        assert_eq!(
            c.opts,
            ["-av", "--delete", "--max-size=10M", "-a", "--temp-dir=/tmp"]
        );
        assert_eq!(c.exclude, [".cache", "Downloads"]);
        assert_eq!(c.bwlimit.as_deref(), Some("5M"));
    }

    #[test]
    fn refusals() {
        for (ws, word) in [
            (&["-a", "-e", "ssh -p 2"][..], 1),
            (&["--rsh=ssh"], 0),
            (&["-ave", "ssh"], 0),
            (&["-avn"], 0),
            (&["--dry-run"], 0),
            (&["/extra/path"], 0),
            (&["--"], 0),
            (&["--exclude", "a", "--include", "b"], 2),
            (&["--max-size"], 0),
        ] {
            assert_eq!(conv(ws).unwrap_err().word, word, "{ws:?}");
        }
        assert!(conv(&["--include", "b", "--exclude", "a"]).is_ok());
    }
}
