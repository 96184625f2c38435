//! rsync with one line per item it changes (or, in a dry run, would change), read as they come:
//! what restore shows and asks about, and what verify classifies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::child::{self, Stop};

/// rsync's `--out-format` for an item: a marker no other output line starts with, the itemized
/// change (always 11 characters), the sender's modification time, the name (with ` -> target`
/// for a link). rsync escapes control characters in names (`\#012`), so one item is one line.
const FORMAT: &str = "bkc-item %i %M %n%L";

pub fn out_format() -> String {
    format!("--out-format={FORMAT}")
}

/// One item of rsync's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `>f+++++++++`, `>fc.t......`, `*deleting  `, ...
    pub itemized: String,
    /// The sender's modification time; `None` for a deletion, which has none.
    pub mtime: Option<Timestamp>,
    pub path: String,
}

impl Item {
    /// A file or link that is not there at all on the receiving side.
    pub fn is_new(&self) -> bool {
        self.itemized.get(2..).is_some_and(|r| r.starts_with("+++"))
    }

    pub fn is_deletion(&self) -> bool {
        self.itemized.starts_with("*deleting")
    }

    /// The content would be sent (`>` or `<`, a local copy `c` of a non-directory): not only
    /// attributes differ.
    pub fn content_differs(&self) -> bool {
        let mut c = self.itemized.chars();
        match (c.next(), c.next()) {
            (Some('<' | '>'), _) => true,
            (Some('c'), Some(t)) => t != 'd',
            _ => false,
        }
    }
}

/// The item on `line`, if it is one.
pub fn parse(line: &str) -> Option<Item> {
    let rest = line.strip_prefix("bkc-item ")?;
    let itemized = rest.get(..11)?;
    let rest = rest.get(11..)?.strip_prefix(' ')?;
    let (mtime, path) = rest.split_once(' ')?;
    // rsync prints %M in the local time zone; it runs with TZ=UTC (see `command`).
    let mtime = DateTime::strptime("%Y/%m/%d-%H:%M:%S", mtime)
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp());
    let item = Item {
        itemized: itemized.to_string(),
        mtime,
        path: path.to_string(),
    };
    Some(Item {
        mtime: if item.is_deletion() { None } else { item.mtime },
        ..item
    })
}

/// rsync with `argv` (which includes [`out_format`]); `each` gets every item as rsync prints
/// it. Returns the exit code, every other line (the `--stats`), and what stopped it early.
pub fn run(
    argv: &[String],
    mut each: impl FnMut(Item),
) -> std::io::Result<(i32, String, Option<Stop>)> {
    let mut cmd = Command::new("rsync");
    cmd.args(argv)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(child::stderr_stdio());
    let mut r = child::spawn(&mut cmd, true)?;
    let mut rest = String::new();
    if let Some(out) = r.child.stdout.take() {
        // rsync ends when a signal is forwarded to it, and with it this loop.
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            match parse(&line) {
                Some(item) => each(item),
                None => {
                    rest.push_str(&line);
                    rest.push('\n');
                }
            }
        }
    }
    let (st, stop) = r.wait(None)?;
    Ok((child::code(&st), rest, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_as_rsync_writes_them() {
        let i = parse("bkc-item >f+++++++++ 2026/01/02-03:04:05 a b/c d").unwrap();
        assert_eq!(i.itemized, ">f+++++++++");
        assert_eq!(i.path, "a b/c d");
        assert_eq!(
            i.mtime,
            Some("2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap())
        );
        assert!(i.is_new() && i.content_differs() && !i.is_deletion());
        let d = parse("bkc-item *deleting   1970/01/01-00:00:00 old").unwrap();
        assert!(d.is_deletion() && d.mtime.is_none() && !d.content_differs());
        assert_eq!(d.path, "old");
        let attrs = parse("bkc-item .f...p..... 2026/01/02-03:04:05 x").unwrap();
        assert!(!attrs.content_differs() && !attrs.is_new());
        let dir = parse("bkc-item cd+++++++++ 2026/01/02-03:04:05 sub/").unwrap();
        assert!(dir.is_new() && !dir.content_differs());
        let link = parse("bkc-item cL+++++++++ 2026/01/02-03:04:05 l -> t").unwrap();
        assert!(link.content_differs());
        for junk in [
            "",
            "bkc-item",
            "bkc-item >f+++",
            "Number of files: 3",
            "bkc-item >f+++++++++x",
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }
}
