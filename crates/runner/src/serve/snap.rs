//! Snapshots on serve's host: list, take over an interrupted run's partial directory, complete,
//! prune. Only under the roots the serve file names, and only entries whose names are snapshot
//! or partial names; the retention is the serve file's, computed here.
//!
//! On an append-only root the job may add but never take away: serve names a completed snapshot
//! by its own clock (a runner cannot date one into the past, or the future, to crowd out the
//! snapshots the retention would keep), never renames over one, and refuses to prune; the
//! destination prunes by itself (`bkc-run prune <job>`).

use std::io;

use bkc_contract::serve::{Reply, ServeFile, SnapshotRoot};
use jiff::Timestamp;

use super::Session;
use super::fsx::{Dir, Kind, cname};
use crate::snapshot::{self, LATEST, parse_name, parse_partial};

/// The snapshot root named `root` in the serve file.
fn root_of<'f>(file: &'f ServeFile, root: &str) -> Option<&'f SnapshotRoot> {
    file.snapshots.iter().find(|r| r.path == root)
}

fn not_a_root(s: &Session, root: &str) -> i32 {
    s.refuse(&format!(
        "{root} is not one of the job's snapshot roots here"
    ))
}

/// The directories under an open root (not symlinks to them).
pub fn dirs(dir: &Dir) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in dir.names()? {
        if let Ok(c) = cname(&n)
            && dir.kind(&c)? == Some(Kind::Dir)
        {
            out.push(n);
        }
    }
    out.sort();
    Ok(out)
}

/// `snapshot-list`.
pub fn list(s: &Session, file: &ServeFile, root: &str, create: bool) -> i32 {
    if root_of(file, root).is_none() {
        return not_a_root(s, root);
    }
    let names = match Dir::open(root, create) {
        Ok(d) => dirs(&d),
        Err(e) if !create && e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    match names {
        Ok(names) => {
            s.reply(&Reply::Listing { names });
            0
        }
        Err(e) => s.fail(&format!("cannot list {root}: {e}")),
    }
}

/// `snapshot-rename`: one partial directory to another name of a partial.
pub fn rename(s: &Session, file: &ServeFile, root: &str, from: &str, to: &str) -> i32 {
    if root_of(file, root).is_none() {
        return not_a_root(s, root);
    }
    if parse_partial(from).is_none() || parse_partial(to).is_none() {
        return s.refuse("only a partial snapshot can be renamed, and only to a partial name");
    }
    let res = Dir::open(root, false).and_then(|d| {
        let (f, t) = (cname(from)?, cname(to)?);
        if d.kind(&f)? != Some(Kind::Dir) {
            return Err(io::Error::other(format!("{from} is not a directory")));
        }
        d.rename_new(&f, &t)
    });
    match res {
        Ok(()) => {
            s.reply(&Reply::Done);
            0
        }
        Err(e) => s.fail(&format!("cannot rename {from} to {to} in {root}: {e}")),
    }
}

/// `snapshot-complete`: the partial becomes `name` (on an append-only root, a name from this
/// host's clock) and `latest` points at it, switched atomically through a new symlink renamed
/// over the old one.
pub fn complete(s: &Session, file: &ServeFile, root: &str, partial: &str, name: &str) -> i32 {
    let Some(r) = root_of(file, root) else {
        return not_a_root(s, root);
    };
    if parse_partial(partial).is_none() || parse_name(name).is_none() {
        return s.refuse("a snapshot is completed from a partial name to a snapshot name");
    }
    let name = if r.append_only {
        snapshot::name_for(Timestamp::now())
    } else {
        name.to_string()
    };
    let res = Dir::open(root, false).and_then(|d| {
        let (p, n) = (cname(partial)?, cname(&name)?);
        if d.kind(&p)? != Some(Kind::Dir) {
            return Err(io::Error::other(format!("{partial} is not a directory")));
        }
        d.rename_new(&p, &n)?;
        let tmp = cname(&format!(".latest.tmp-{}", std::process::id()))?;
        d.unlink(&tmp)?;
        d.symlink(&n, &tmp)?;
        d.rename_over(&tmp, &cname(LATEST)?)
    });
    match res {
        Ok(()) => {
            s.reply(&Reply::Completed { name });
            0
        }
        Err(e) => s.fail(&format!("cannot complete snapshot {name} in {root}: {e}")),
    }
}

/// `snapshot-prune`: what the root's retention does not keep goes; `current` stays whatever
/// it says. Refused on an append-only root.
pub fn prune(s: &Session, file: &ServeFile, root: &str, current: &str) -> i32 {
    let Some(r) = root_of(file, root) else {
        return not_a_root(s, root);
    };
    if r.append_only {
        return s.refuse(&format!(
            "{root} is append-only: the job may not prune it; bkc-prune-{} does, on this host",
            file.job
        ));
    }
    if parse_name(current).is_none() {
        return s.refuse(&format!("{current:?} is not a snapshot name"));
    }
    match prune_root(r, current) {
        Ok(removed) => {
            s.reply(&Reply::Pruned { removed });
            0
        }
        Err(e) => s.fail(&format!("cannot prune {root}: {e}")),
    }
}

/// Apply `r`'s retention under its path, keeping `current`; what was removed. Also what
/// `bkc-run prune` does on an append-only root, with the newest snapshot as `current`.
pub fn prune_root(r: &SnapshotRoot, current: &str) -> io::Result<Vec<String>> {
    let dir = match Dir::open(&r.path, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Vec::new()),
        d => d?,
    };
    let listing = snapshot::classify(&dirs(&dir)?);
    let del = snapshot::prune_plan(&listing, &r.retention, current);
    for name in &del {
        // Through the root's own descriptor: a root swapped for a symlink meanwhile cannot
        // send this elsewhere, and std's remove_dir_all never follows a symlink inside.
        std::fs::remove_dir_all(dir.proc_path().join(name))?;
    }
    Ok(del)
}

/// What `bkc-run prune` does to an append-only root: its retention, and beside the newest
/// snapshot by name, which the retention always keeps, the one `latest` points at, the one made
/// last. They differ when this host's clock was set back between two runs: the last run's
/// snapshot then has the older name, and pruning from the newest by name alone removed it,
/// leaving `latest` pointing at nothing and the destination without the last run's data.
pub fn prune_on_host(r: &SnapshotRoot) -> io::Result<Vec<String>> {
    let dir = match Dir::open(&r.path, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Vec::new()),
        d => d?,
    };
    let listing = snapshot::classify(&dirs(&dir)?);
    let latest = std::fs::read_link(dir.proc_path().join(LATEST))
        .ok()
        .and_then(|t| t.to_str().map(String::from))
        .filter(|t| listing.complete.iter().any(|c| c.0 == *t));
    let Some(current) = latest.or_else(|| listing.newest().map(String::from)) else {
        return Ok(Vec::new());
    };
    prune_root(r, &current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkc_contract::spec::Retention;

    #[test]
    fn the_hosts_prune_keeps_the_last_snapshot_made_when_its_clock_went_back() {
        let base = std::env::temp_dir().join(format!("bkc-snap-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // Three snapshots a day apart; then the host's clock went back two days, and the run
        // after that made the last one, named before them all, which `latest` points at.
        let made = [
            "2026-01-03T030000Z",
            "2026-01-04T030000Z",
            "2026-01-05T030000Z",
            "2026-01-03T040000Z",
        ];
        for n in made {
            std::fs::create_dir_all(base.join(n)).unwrap();
            std::fs::write(base.join(n).join("data"), n).unwrap();
        }
        std::os::unix::fs::symlink(made[3], base.join(LATEST)).unwrap();
        let r = SnapshotRoot {
            path: format!("{}/", base.display()),
            retention: Retention {
                keep_last: Some(2),
                ..Default::default()
            },
            append_only: true,
        };
        let removed = prune_on_host(&r).unwrap();
        assert_eq!(removed, ["2026-01-03T030000Z"]);
        // The last made stays, with the newest by name.
        let target = std::fs::read_link(base.join(LATEST)).unwrap();
        assert!(base.join(&target).join("data").is_file(), "{target:?}");
        assert!(base.join("2026-01-05T030000Z").is_dir());
        let _ = std::fs::remove_dir_all(&base);
    }
}
