//! `<runner> serve <job> rsync --server ...`: rsync's server side, for exactly the job's paths
//! and directions.
//!
//! The runner gives rsync `--rsync-path='<runner> serve <job> rsync'`, so the far rsync command
//! line arrives here. It is parsed as rsync writes it (rrsync is the model): `--server`, then
//! `--sender` on a read edge only, then options, `.`, and one path. Every option must be one
//! rsync sends for a plain transfer and that stays inside the path: nothing that follows symlinks
//! (`-L`, `-k`, `-K`), names another path (`--backup-dir`, `--files-from`, `--temp-dir`,
//! `--compare-dest`, ...), deletes what it reads (`--remove-source-files`), touches devices or
//! turns off rsync's own checks. Deleting is allowed only where the job's sync deletes, writing in
//! place never into a snapshot (its files are shared with complete ones), and `--link-dest` only
//! to a complete snapshot beside the partial one being written. The path must be one the serve
//! file lists, text for text; then it is opened without following symlinks and rsync starts in
//! it, boxed (see `sandbox`).

use std::os::unix::process::CommandExt;

use bkc_contract::serve::{ServeFile, SnapshotRoot, WriteRoot};

use super::Session;
use super::fsx::{Dir, Kind, cname};
use super::sandbox;
use crate::snapshot::{parse_name, parse_partial};

/// What the peer asked rsync's server side to do.
#[derive(Debug, PartialEq)]
struct Server {
    sender: bool,
    /// Options to pass on, as given (`--link-dest` apart).
    opts: Vec<String>,
    deletes: bool,
    in_place: bool,
    /// `-n`: rsync changes nothing, and neither does serve.
    dry_run: bool,
    link_dest: Option<String>,
    path: String,
    /// A restore's further paths (`--relative`, each `<snapshot>/./<path>`).
    more: Vec<String>,
    relative: bool,
}

/// How a long option is treated.
enum Long {
    Flag,
    /// Takes a value, which must consist of these characters.
    Value(&'static str),
    Delete,
    InPlace,
    LinkDest,
    Refused(&'static str),
}

const DIGITS: &str = "0123456789";
const SIGNED: &str = "-0123456789";
const SIZE: &str = "0123456789.kKmMgGtTbB";
const WORD: &str = "abcdefghijklmnopqrstuvwxyz0123456789,-";
const MAP: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,:*-";
const FORMAT: &str = "%ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._:-'";
const CHMOD: &str = "DFugoarwxXst+-=,01234567";

/// Long options without a value that stay in the tree.
const FLAGS: &[&str] = &[
    "stats",
    "mkpath",
    "numeric-ids",
    "force",
    "ignore-errors",
    "safe-links",
    "munge-links",
    "size-only",
    "ignore-existing",
    "existing",
    "ignore-non-existing",
    "delay-updates",
    "partial",
    "sparse",
    "preallocate",
    "fake-super",
    "super",
    "no-implied-dirs",
    "list-only",
    "ignore-missing-args",
    "open-noatime",
    "specials",
    "no-specials",
    "qsort",
    "use-qsort",
    "hard-links",
    "checksum",
    "ignore-times",
    "whole-file",
    "no-whole-file",
    "one-file-system",
    "prune-empty-dirs",
    "omit-dir-times",
    "omit-link-times",
    "fuzzy",
    "atimes",
    "crtimes",
    "xattrs",
    "acls",
    "executability",
    "perms",
    "owner",
    "group",
    "times",
    "links",
    "recursive",
    "dirs",
    "compress",
    "dry-run",
    "relative",
    "update",
];

fn long(name: &str) -> Option<Long> {
    const FOLLOWS: &str = "follows symlinks out of the tree";
    const PATH: &str = "names a path serve does not check";
    Some(match name {
        n if FLAGS.contains(&n) => Long::Flag,
        "timeout" | "checksum-seed" | "block-size" => Long::Value(DIGITS),
        "max-delete" | "modify-window" | "compress-level" => Long::Value(SIGNED),
        "bwlimit" | "max-size" | "min-size" | "max-alloc" => Long::Value(SIZE),
        "compress-choice" | "zc" | "checksum-choice" | "cc" | "skip-compress" => Long::Value(WORD),
        "usermap" | "groupmap" | "chown" => Long::Value(MAP),
        "log-format" | "out-format" => Long::Value(FORMAT),
        "chmod" => Long::Value(CHMOD),
        "delete"
        | "del"
        | "delete-before"
        | "delete-during"
        | "delete-after"
        | "delete-delay"
        | "delete-excluded"
        | "delete-missing-args" => Long::Delete,
        "inplace" | "append" | "append-verify" => Long::InPlace,
        "link-dest" => Long::LinkDest,
        "remove-source-files" | "remove-sent-files" => Long::Refused("deletes what it sends"),
        "copy-links" | "copy-unsafe-links" | "copy-dirlinks" | "keep-dirlinks" => {
            Long::Refused(FOLLOWS)
        }
        "compare-dest" | "copy-dest" | "backup-dir" | "temp-dir" | "partial-dir" | "files-from"
        | "exclude-from" | "include-from" | "filter" | "exclude" | "include" | "log-file"
        | "write-batch" | "only-write-batch" | "read-batch" => Long::Refused(PATH),
        "copy-devices" | "write-devices" => Long::Refused("reads or writes a device's contents"),
        "trust-sender" => Long::Refused("turns off rsync's own checks of what the sender sends"),
        _ => return None,
    })
}

/// Short options rsync puts in its one cluster (`-logDtpre.iLsfxCIvu`) that stay in the tree.
const SHORT: &str = "vqbulHpEAXogDtUNOJSnxrdWczmCIiyR";

/// A cluster of short options: allowed letters, then maybe `e` and rsync's compatibility
/// string, or `B` and a block size. Whether it asks for a dry run (`n`).
fn short(cluster: &str) -> Result<bool, String> {
    let mut dry_run = false;
    for (i, c) in cluster.char_indices() {
        let rest = &cluster[i + 1..];
        match c {
            'e' => {
                let ok = rest.chars().all(|x| x.is_ascii_alphanumeric() || x == '.');
                return if ok {
                    Ok(dry_run)
                } else {
                    Err(format!("-e{rest} is not rsync's compatibility string"))
                };
            }
            'B' if !rest.is_empty() && rest.chars().all(|x| x.is_ascii_digit()) => {
                return Ok(dry_run);
            }
            'n' => dry_run = true,
            'L' | 'k' | 'K' => return Err(format!("-{c} follows symlinks out of the tree")),
            's' => {
                return Err(
                    "-s would hand rsync paths serve cannot see; the runner never sends it".into(),
                );
            }
            c if SHORT.contains(c) => {}
            c => return Err(format!("-{c} is not an option serve passes to rsync")),
        }
    }
    Ok(dry_run)
}

/// Parse rsync's server arguments (after `rsync`).
fn parse(args: &[String]) -> Result<Server, String> {
    let mut it = args.iter().map(String::as_str).peekable();
    if it.next() != Some("--server") {
        return Err("rsync's server side starts with --server".into());
    }
    let sender = it.next_if_eq(&"--sender").is_some();
    let mut s = Server {
        sender,
        opts: Vec::new(),
        deletes: false,
        in_place: false,
        dry_run: false,
        link_dest: None,
        path: String::new(),
        more: Vec::new(),
        relative: false,
    };
    loop {
        let a = it
            .next()
            .ok_or("the arguments end before rsync's `.` and path")?;
        if a == "." {
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            take_long(&mut s, a, body, &mut it)?;
        } else if let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) {
            s.dry_run |= short(cluster)?;
            // Before an `e`, `R` is --relative; after it, part of the compatibility string.
            s.relative |= cluster.split('e').next().is_some_and(|f| f.contains('R'));
            s.opts.push(a.to_string());
        } else {
            return Err(format!("{a:?} is not an option"));
        }
    }
    let Some(p) = it.next() else {
        return Err("no path after rsync's `.`".into());
    };
    s.path = p.to_string();
    s.more = it.map(str::to_string).collect();
    let several_allowed = s.sender && s.relative;
    if !s.more.is_empty() && !several_allowed {
        return Err("more than one path; a sync names one (only a restore's --relative sender sends several)".into());
    }
    Ok(s)
}

/// One long option `a` (`--body`), its value from `=` or the next argument.
fn take_long<'a>(
    s: &mut Server,
    a: &str,
    body: &str,
    next: &mut impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let kind = long(name).ok_or(format!("--{name} is not an option serve passes to rsync"))?;
    match kind {
        Long::Refused(why) => return Err(format!("--{name} {why}")),
        Long::Value(chars) => {
            let v = value
                .or_else(|| next.next())
                .ok_or(format!("--{name} needs a value"))?;
            if v.is_empty() || !v.chars().all(|c| chars.contains(c)) {
                return Err(format!("--{name}={v:?} is not a value serve passes on"));
            }
            s.opts.push(format!("--{name}={v}"));
            return Ok(());
        }
        Long::LinkDest => {
            let v = value
                .or_else(|| next.next())
                .ok_or("--link-dest needs a value")?;
            s.link_dest = Some(v.to_string());
            return Ok(());
        }
        Long::Flag => {
            s.dry_run |= name == "dry-run";
            s.relative |= name == "relative";
        }
        Long::Delete => s.deletes = true,
        Long::InPlace => s.in_place = true,
    }
    if value.is_some() {
        return Err(format!("--{name} takes no value"));
    }
    s.opts.push(a.to_string());
    Ok(())
}

/// Where an allowed transfer goes.
#[derive(Debug)]
enum Target<'f> {
    Read,
    Write(&'f WriteRoot),
    /// A snapshot being written: its root and the partial directory's name.
    Partial(&'f SnapshotRoot, String),
    /// A complete snapshot compared in a dry run (`bkc verify`): rsync changes nothing there.
    Compare,
    /// A restore reading from a complete snapshot, or from a mirror the job writes here: the
    /// directory, and the paths inside it (none: all of it).
    Restore(String, Vec<String>),
    /// A restore writing at or below one of the serve file's `restore-to` directories.
    RestoreInto,
}

/// The serve file's entry for the path, in the direction asked.
fn target<'f>(file: &'f ServeFile, s: &Server) -> Result<Target<'f>, String> {
    let p = s.path.as_str();
    if s.sender {
        if s.more.is_empty() && file.read.iter().any(|r| r == p) {
            return Ok(Target::Read);
        }
        return restore_source(file, s)
            .ok_or(format!("{p} is not one of the job's sources here, nor a complete snapshot or mirror of it to restore from"));
    }
    if let Some(w) = file.write.iter().find(|w| w.path == p) {
        return Ok(Target::Write(w));
    }
    if s.more.is_empty() && file.restore_root(p).is_some() {
        return Ok(Target::RestoreInto);
    }
    if let Some((parent, name)) = p.trim_end_matches('/').rsplit_once('/')
        && parse_partial(name).is_some()
        && let Some(r) = file
            .snapshots
            .iter()
            .find(|r| r.path.trim_end_matches('/') == parent)
    {
        return Ok(Target::Partial(r, name.to_string()));
    }
    if s.dry_run
        && let Some((parent, name)) = p.trim_end_matches('/').rsplit_once('/')
        && parse_name(name).is_some()
        && file
            .snapshots
            .iter()
            .any(|r| r.path.trim_end_matches('/') == parent)
    {
        return Ok(Target::Compare);
    }
    Err(format!(
        "{p} is not one of the job's destinations, nor a partial snapshot in one of its snapshot roots here (nor, in a dry run, a complete one), nor inside a directory it may restore to"
    ))
}

/// A restore's source: every path `<dir>/` (all of it) or, with `--relative`, `<dir>/./<path>`,
/// with one `<dir>` that is a complete snapshot in a snapshot root or a mirror the job writes
/// here, and paths without `.` or `..` components.
fn restore_source<'f>(file: &ServeFile, s: &Server) -> Option<Target<'f>> {
    let mut dir: Option<&str> = None;
    let mut rels = Vec::new();
    for p in std::iter::once(&s.path).chain(&s.more) {
        let (d, rel) = match p.split_once("/./") {
            Some((d, rel)) if s.relative => (d, Some(rel)),
            Some(_) => return None,
            None => (p.strip_suffix('/')?, None),
        };
        if dir.is_some_and(|x| x != d) {
            return None;
        }
        dir = Some(d);
        if let Some(rel) = rel {
            let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
            if comps.is_empty() || comps.iter().any(|c| *c == "." || *c == "..") {
                return None;
            }
            rels.push(comps.join("/"));
        }
    }
    let d = dir?;
    let snapshot = d.rsplit_once('/').is_some_and(|(root, name)| {
        parse_name(name).is_some()
            && file
                .snapshots
                .iter()
                .any(|r| r.path.trim_end_matches('/') == root)
    });
    let mirror = file.write.iter().any(|w| w.path.trim_end_matches('/') == d);
    (snapshot || mirror).then(|| Target::Restore(d.to_string(), rels))
}

/// The options' limits for the target; `--link-dest` rewritten relative to the partial snapshot.
fn check(s: &Server, t: &Target) -> Result<Option<String>, String> {
    if let Target::Write(w) = t
        && s.deletes
        && !w.delete
    {
        return Err(format!(
            "{} is not a destination the job deletes in",
            w.path
        ));
    }
    if let Target::Partial(..) = t
        && s.in_place
    {
        return Err("writing in place into a snapshot would change the complete snapshots that share its files".into());
    }
    let Some(ld) = &s.link_dest else {
        return Ok(None);
    };
    let Target::Partial(r, _) = t else {
        return Err("--link-dest is only for a snapshot".into());
    };
    match ld.rsplit_once('/') {
        Some((root, name))
            if root == r.path.trim_end_matches('/') && parse_name(name).is_some() =>
        {
            Ok(Some(format!("--link-dest=../{name}")))
        }
        _ => Err(format!(
            "--link-dest={ld} is not a complete snapshot beside the one being written"
        )),
    }
}

/// Serve `rsync --server ...` (`words` from `rsync` on), or refuse it.
pub fn serve(s: &Session, file: &ServeFile, words: &[String]) -> i32 {
    let server = match parse(&words[1..]) {
        Ok(x) => x,
        Err(why) => return s.refuse(&why),
    };
    let t = match target(file, &server) {
        Ok(t) => t,
        Err(why) => return s.refuse(&why),
    };
    let link_dest = match check(&server, &t) {
        Ok(l) => l,
        Err(why) => return s.refuse(&why),
    };
    let boxed = match sandbox::unshare() {
        Ok(b) => b,
        Err(e) => return s.fail(&format!("cannot make rsync's mount namespace: {e}")),
    };
    let placed = match &t {
        Target::Restore(d, rels) => restore_place(d, rels),
        t => place(&server.path, t, server.dry_run).map(|(d, a, sub)| (d, vec![a], sub)),
    };
    let (dir, args, sub) = match placed {
        Ok(x) => x,
        Err(e) => return s.refuse(&format!("{}: {e}", server.path)),
    };
    if !server.sender
        && let Err(e) = one_writer(&dir)
    {
        return s.fail(&format!("cannot lock {}: {e}", server.path));
    }
    let start = if boxed {
        sandbox::confine(dir, !server.sender && !server.dry_run)
    } else {
        Ok(dir)
    };
    let start = start.and_then(|d| match &sub {
        Some(name) => d.sub(&cname(name)?),
        None => Ok(d),
    });
    let e = match start.and_then(|d| sandbox::chdir(&d)) {
        Ok(()) => {
            let mut c = std::process::Command::new("rsync");
            c.arg("--server");
            if server.sender {
                c.arg("--sender");
            }
            c.args(&server.opts).args(link_dest).arg(".").args(&args);
            c.exec()
        }
        Err(e) => e,
    };
    s.fail(&format!("cannot start rsync in {}: {e}", server.path))
}

/// The directory to box rsync in, the path to give it there, and for a snapshot the partial
/// directory (under the box, the snapshot root) to start in. A receiver's directories are made
/// here, unless it is a dry run, which makes nothing: rsync is then shown the part of the path
/// that exists, read-only.
fn place(path: &str, t: &Target, dry_run: bool) -> std::io::Result<(Dir, String, Option<String>)> {
    let create = !dry_run && !matches!(t, Target::Read | Target::Compare);
    if let Target::Partial(r, partial) = t {
        if !create {
            return what_exists(&format!("{}/{partial}/", r.path.trim_end_matches('/')));
        }
        let root = Dir::open(&r.path, true)?;
        let name = cname(partial)?;
        if root.kind(&name)?.is_none() {
            // SAFETY: mkdirat(2) in the root we hold, with a checked partial name.
            if unsafe { libc::mkdirat(root.raw(), name.as_ptr(), 0o755) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if root.kind(&name)? != Some(Kind::Dir) {
            return Err(std::io::Error::other(format!(
                "{partial} is not a directory"
            )));
        }
        if r.append_only {
            // A partial written before (a retried or resumed run) holds files hardlinked to
            // complete snapshots by --link-dest; rsync would change their owner or mode in
            // place, in the complete snapshots too. Without them it links or copies afresh.
            root.sub(&name)?.unlink_shared()?;
        }
        return Ok((root, ".".into(), Some(partial.clone())));
    }
    // A path with a trailing slash, or an existing directory, is where rsync works; one without
    // names a file or directory rsync makes in its parent, as rsync itself reads it.
    let (parent, name) = match Dir::parent_of(path, create) {
        Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => return what_exists(path),
        r => r?,
    };
    if path.ends_with('/') || parent.kind(&name)? == Some(Kind::Dir) {
        return match Dir::open(path, create) {
            Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => what_exists(path),
            d => Ok((d?, ".".into(), None)),
        };
    }
    Ok((parent, name.to_string_lossy().into_owned(), None))
}

/// A restore's directory, opened, and the paths to give rsync there: each checked to have no
/// symlink on the way (the sender would follow one out of the snapshot), `.` for all of it.
fn restore_place(
    dir: &str,
    rels: &[String],
) -> std::io::Result<(Dir, Vec<String>, Option<String>)> {
    let base = Dir::open(dir, false)?;
    for rel in rels {
        let comps: Vec<&str> = rel.split('/').collect();
        let mut cur: Option<Dir> = None;
        for c in &comps[..comps.len() - 1] {
            let next = cur.as_ref().unwrap_or(&base).sub(&cname(c)?);
            match next {
                Ok(d) => cur = Some(d),
                // Missing: rsync says so itself, as for any path the snapshot lacks.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(e),
            }
        }
    }
    let args = if rels.is_empty() {
        vec![".".to_string()]
    } else {
        rels.to_vec()
    };
    Ok((base, args, None))
}

/// The deepest existing directory of `path`, and the rest of it, relative, for rsync to look at.
fn what_exists(path: &str) -> std::io::Result<(Dir, String, Option<String>)> {
    let (dir, rest) = Dir::deepest(path)?;
    let mut arg = if rest.is_empty() {
        ".".to_string()
    } else {
        rest.join("/")
    };
    if path.ends_with('/') && arg != "." {
        arg.push('/');
    }
    Ok((dir, arg, None))
}

/// One receiving rsync at a time in a destination: the directory rsync is boxed in is locked
/// for as long as rsync runs (a descriptor that survives exec holds it). A runner never sends
/// two syncs at once, so only a peer racing its own transfers (to swap what one checks under
/// another) ever waits here.
fn one_writer(dir: &Dir) -> std::io::Result<()> {
    // SAFETY: fcntl(2) duplicates our directory descriptor without close-on-exec (it is
    // deliberately leaked to rsync); flock(2) on that duplicate.
    unsafe {
        let fd = libc::fcntl(dir.raw(), libc::F_DUPFD, 3);
        if fd < 0 || libc::flock(fd, libc::LOCK_EX) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkc_contract::serve::SERVE_VERSION;
    use bkc_contract::spec::Retention;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    fn file() -> ServeFile {
        ServeFile {
            version: SERVE_VERSION,
            job: "j".into(),
            host: "b".into(),
            from: "a".into(),
            read: vec!["/srv/src/".into()],
            write: vec![
                WriteRoot {
                    path: "/srv/dst/".into(),
                    delete: false,
                },
                WriteRoot {
                    path: "/srv/mirror/".into(),
                    delete: true,
                },
            ],
            snapshots: vec![SnapshotRoot {
                path: "/srv/snaps/".into(),
                retention: Retention::default(),
                append_only: true,
            }],
            locks: vec![],
            lock_files: vec![],
            wait_files: vec![],
            hooks: vec![],
            fresh_markers: vec![],
            restore_to: vec!["/srv/r/".into()],
        }
    }

    /// The rewritten `--link-dest`, or why the line is refused.
    fn verdict(line: &str) -> Result<Option<String>, String> {
        let s = parse(&words(line))?;
        check(&s, &target(&file(), &s)?)
    }

    #[test]
    fn what_the_runner_sends_is_served() {
        for line in [
            "--server -logDtpre.iLsfxCIvu --stats --mkpath . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --delete --stats . /srv/mirror/",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/src/",
            "--server -lHogDtprze.iLsfxCIvu --timeout=5 --bwlimit=102400 --numeric-ids . /srv/dst/",
            "--server -vlogDtpAXrce.iLsfxCIvu --log-format=%i --max-delete=5 . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu -B2048 --checksum-choice=xxh3 --usermap=1:2 . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --delete . /srv/snaps/.partial-2026-01-01T000000Z/",
            // bkc restore: reading a complete snapshot or a mirror, all of it or some paths.
            "--server --sender -logDtpre.iLsfxCIvu --stats . /srv/snaps/2026-01-01T000000Z/",
            "--server --sender -logDtpRe.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/./a/b /srv/snaps/2026-01-01T000000Z/./c",
            "--server --sender -logDtpre.iLsfxCIvu --relative . /srv/mirror/./x",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/dst/",
            // bkc verify: a dry run against a complete snapshot.
            "--server -nlogDtprce.iLsfxCIvu --log-format=%i --stats --mkpath . /srv/snaps/2026-01-01T000000Z/",
            // bkc restore onto this host: at or below a restore-to directory, --delete if asked.
            "--server -logDtpRe.iLsfxCIvu --stats --mkpath . /srv/r/",
            "--server -logDtpre.iLsfxCIvu --delete . /srv/r/new/dir/",
        ] {
            assert_eq!(verdict(line), Ok(None), "{line}");
        }
        let ld = "--server -logDtpre.iLsfxCIvu --link-dest /srv/snaps/2025-12-31T000000Z --mkpath . /srv/snaps/.partial-2026-01-01T000000Z/";
        assert_eq!(
            verdict(ld),
            Ok(Some("--link-dest=../2025-12-31T000000Z".into()))
        );
        let eq = ld.replace("--link-dest /", "--link-dest=/");
        assert!(verdict(&eq).unwrap().is_some());
    }

    #[test]
    fn everything_else_is_refused() {
        let refused = [
            // Directions: receiving into a source.
            "--server -logDtpre.iLsfxCIvu . /srv/src/",
            // Other paths, by any spelling.
            "--server -logDtpre.iLsfxCIvu . /etc/",
            "--server -logDtpre.iLsfxCIvu . /srv/dst/../../etc/",
            "--server -logDtpre.iLsfxCIvu . /srv/dst",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/src/../../etc/shadow",
            "--server -logDtpre.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/",
            "--server -nlogDtpre.iLsfxCIvu . /srv/snaps/.partial-../",
            "--server -nlogDtpre.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/../../etc/",
            "--server -logDtpre.iLsfxCIvu . /srv/snaps/.partial-../",
            "--server -logDtpre.iLsfxCIvu . /srv/dst/ /etc/",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/src/ /etc/",
            // Restores: only complete snapshots and mirrors, paths inside them.
            "--server --sender -logDtpre.iLsfxCIvu . /srv/snaps/.partial-2026-01-01T000000Z/",
            "--server --sender -logDtpRe.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/./../../etc",
            "--server --sender -logDtpRe.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/./a /etc/./shadow",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/./a",
            "--server --sender -logDtpre.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/ /srv/dst/",
            "--server --sender -logDtpRe.iLsfxCIvu . /srv/snaps/2026-01-01T000000Z/./a /srv/mirror/./b",
            // Restores onto this host: nowhere but at or below restore-to, never through `..`.
            "--server -logDtpre.iLsfxCIvu . /srv/rx/",
            "--server -logDtpre.iLsfxCIvu . /srv/r/../../etc/",
            "--server -logDtpre.iLsfxCIvu --link-dest=/srv/snaps/2025-12-31T000000Z . /srv/r/",
            "--server -logDtpre.iLsfxCIvu",
            "--sender --server . /srv/src/",
            // Options that delete, follow, or name other paths.
            "--server -logDtpre.iLsfxCIvu --delete . /srv/dst/",
            "--server --sender -logDtpre.iLsfxCIvu --remove-source-files . /srv/src/",
            "--server --sender -lLogDtpre.iLsfxCIvu . /srv/src/",
            "--server --sender -logDtpkre.iLsfxCIvu . /srv/src/",
            "--server -logDtpKre.iLsfxCIvu . /srv/dst/",
            "--server -slogDtpre.iLsfxCIvu",
            "--server -logDtpre.iLsfxCIvu --backup-dir=/etc . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --temp-dir /etc . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu -T /etc . /srv/dst/",
            "--server --sender -logDtpre.iLsfxCIvu --files-from=/etc/shadow . /srv/src/",
            "--server -logDtpre.iLsfxCIvu --log-file=/etc/x . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --write-devices . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --trust-sender . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --no-such-option . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --timeout=5;id . /srv/dst/",
            "--server -logDtpre.iLsfxCIvu --stats=1 . /srv/dst/",
            "--server -logDtpre.ixCIvu/x . /srv/dst/",
            // Snapshots: no writing in place, no base outside the root.
            "--server -logDtpre.iLsfxCIvu --inplace . /srv/snaps/.partial-2026-01-01T000000Z/",
            "--server -logDtpre.iLsfxCIvu --link-dest=/etc . /srv/snaps/.partial-2026-01-01T000000Z/",
            "--server -logDtpre.iLsfxCIvu --link-dest=/srv/snaps/../x . /srv/snaps/.partial-2026-01-01T000000Z/",
            "--server -logDtpre.iLsfxCIvu --link-dest=/srv/snaps/2025-12-31T000000Z . /srv/dst/",
        ];
        for line in refused {
            assert!(verdict(line).is_err(), "{line}");
        }
    }
}
