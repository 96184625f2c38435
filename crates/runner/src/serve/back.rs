//! What serve does for the dead man's switch and for getting data back: freshness markers in
//! the job's destinations, the walk `bkc snapshots` sizes snapshots by, and which snapshots hold
//! the paths a restore names. Each only where the serve file says, never through a symlink.

use std::io::Write;

use bkc_contract::fresh::Marker;
use bkc_contract::serve::{Reply, ServeFile, WalkedSnapshot};

use super::Session;
use super::fsx::{Dir, cname};
use super::snap::dirs;
use crate::listing::Walk;
use crate::snapshot::{parse_name, parse_partial};

/// The longest marker serve writes: a job name, a run id and a time fit in far less.
const MAX_MARKER: usize = 4096;

/// `write-markers`: the job's own marker, and only into the marker paths of its serve file.
pub fn write_markers(s: &Session, file: &ServeFile, paths: &[String], content: &str) -> i32 {
    if let Some(p) = paths.iter().find(|p| !file.fresh_markers.contains(p)) {
        return s.refuse(&format!(
            "{p} is not one of the job's freshness markers here"
        ));
    }
    let marker: Option<Marker> = serde_json::from_str(content).ok();
    if content.len() > MAX_MARKER || content.contains('\n') || marker.is_none_or(|m| m.job != s.job)
    {
        return s.refuse("the content is not a freshness marker of this job");
    }
    for p in paths {
        if let Err(e) = write_one(p, content) {
            return s.fail(&format!("cannot write {p}: {e}"));
        }
    }
    s.reply(&Reply::Done);
    0
}

/// Write `content` to `path` through a new file beside it, renamed over it: the check never
/// reads half a marker, and nothing already there (a symlink planted in its place) is followed.
fn write_one(path: &str, content: &str) -> std::io::Result<()> {
    let (dir, name) = Dir::parent_of(path, false)?;
    let tmp = cname(&format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ))?;
    dir.unlink(&tmp)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    let mut f = dir.open_file(&tmp, flags, 0o644)?;
    let written = f
        .write_all(format!("{content}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| dir.rename_over(&tmp, &name));
    if written.is_err() {
        let _ = dir.unlink(&tmp);
    }
    written
}

/// `snapshot-walk`: per snapshot or partial under the root, its entries and bytes.
pub fn walk(s: &Session, file: &ServeFile, root: &str) -> i32 {
    if !file.snapshots.iter().any(|r| r.path == root) {
        return s.refuse(&format!(
            "{root} is not one of the job's snapshot roots here"
        ));
    }
    let walked = match Dir::open(root, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
        Ok(d) => walk_root(&d),
    };
    match walked {
        Ok(snapshots) => {
            s.reply(&Reply::Walked { snapshots });
            0
        }
        Err(e) => s.fail(&format!("cannot walk {root}: {e}")),
    }
}

fn walk_root(root: &Dir) -> std::io::Result<Vec<WalkedSnapshot>> {
    let mut w = Walk::default();
    for n in dirs(root)? {
        if parse_name(&n).is_none() && parse_partial(&n).is_none() {
            continue;
        }
        w.enter(&n);
        walk_dir(&mut w, &root.sub(&cname(&n)?)?)?;
    }
    Ok(w.finish()
        .into_iter()
        .map(|(name, f)| WalkedSnapshot {
            name,
            files: f.files,
            apparent_bytes: f.apparent,
            unique_bytes: f.unique,
        })
        .collect())
}

/// Count everything below `dir`. What vanishes meanwhile (a prune, a run) is not counted.
fn walk_dir(w: &mut Walk, dir: &Dir) -> std::io::Result<()> {
    for n in dir.names()? {
        let name = cname(&n)?;
        let Ok(st) = dir.stat(&name) else {
            continue;
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => w.file(st.st_size as u64, st.st_nlink, st.st_dev, st.st_ino),
            libc::S_IFDIR => {
                w.other();
                if let Ok(sub) = dir.sub(&name) {
                    walk_dir(w, &sub)?;
                }
            }
            _ => w.other(),
        }
    }
    Ok(())
}

/// `have`: which of `paths` each of `dirs` holds. The dirs are complete snapshots of a snapshot
/// root, or `.` for a mirror the job writes here; a path is looked up one component at a time
/// and never through a symlink (one on the way means the snapshot does not have it there).
pub fn have(s: &Session, file: &ServeFile, root: &str, dirs: &[String], paths: &[String]) -> i32 {
    let snapshots = file.snapshots.iter().any(|r| r.path == root);
    let mirror = file.write.iter().any(|r| r.path == root);
    if !snapshots && !mirror {
        return s.refuse(&format!("{root} is not one of the job's destinations here"));
    }
    for d in dirs {
        let ok = if snapshots {
            parse_name(d).is_some()
        } else {
            d == "."
        };
        if !ok {
            return s.refuse(&format!("{d:?} is not a snapshot of {root}"));
        }
    }
    let mut parts = Vec::new();
    for p in paths {
        let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        if comps.is_empty() || comps.iter().any(|c| *c == "." || *c == "..") {
            return s.refuse(&format!("{p:?} is not a relative path without `..`"));
        }
        match comps
            .iter()
            .map(|c| cname(c))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(c) => parts.push(c),
            Err(e) => return s.refuse(&e.to_string()),
        }
    }
    let base = match Dir::open(root, false) {
        Ok(d) => d,
        Err(e) => return s.fail(&format!("cannot open {root}: {e}")),
    };
    let mut have = Vec::new();
    for d in dirs {
        let dir = if d == "." {
            Dir::open(root, false)
        } else {
            cname(d).and_then(|n| base.sub(&n))
        };
        have.push(
            parts
                .iter()
                .map(|comps| dir.as_ref().is_ok_and(|dir| holds(dir, comps)))
                .collect(),
        );
    }
    s.reply(&Reply::Have { have });
    0
}

/// Whether `comps` name something under `dir`: directories on the way, anything at the end.
fn holds(dir: &Dir, comps: &[std::ffi::CString]) -> bool {
    let Some((last, ways)) = comps.split_last() else {
        return false;
    };
    let mut cur: Option<Dir> = None;
    for c in ways {
        let next = cur.as_ref().unwrap_or(dir).sub(c);
        match next {
            Ok(d) => cur = Some(d),
            Err(_) => return false,
        }
    }
    matches!(cur.as_ref().unwrap_or(dir).kind(last), Ok(Some(_)))
}
