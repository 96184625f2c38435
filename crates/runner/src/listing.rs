//! `bkc-run snapshots SPEC...`: per sync of each job, the snapshots under its destination with
//! their file counts, apparent and unique sizes, which one is the latest and which ones the
//! next retention would prune. One JSON line per job ([`JobSnapshots`]) on stdout.
//!
//! The sizes come from one walk over every snapshot of a destination: a file with several
//! names (the hard links that make snapshots cheap) is counted once per snapshot in the
//! apparent size, and in the unique size only if no other snapshot has it. A local destination
//! is walked here; a remote one by `bkc-run serve` there (one session per destination), with
//! the same [`Walk`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bkc_contract::serve::{Reply, Request};
use bkc_contract::snapshots::{JobSnapshots, LISTING_VERSION, Snapshot, SyncKind, SyncSnapshots};
use bkc_contract::spec::{JobSpec, Sync};
use jiff::Timestamp;
use jiff::civil::DateTime;

use super::report::{self, say};
use super::snapshot::{self, parse_name, parse_partial};
use super::{exit, loc};

#[derive(clap::Args)]
pub struct Args {
    /// Job specs, e.g. /etc/bkc/jobs/<job>.json.
    #[arg(required = true)]
    specs: Vec<PathBuf>,
}

/// Print the listing of every spec; exit 2 if a spec cannot be read (the others are listed).
pub fn main(args: &Args) -> i32 {
    let _shared = super::ssh::share_connections();
    let now = match super::now() {
        Ok(t) => t,
        Err(m) => {
            say!("bkc-run: {m}");
            return exit::USAGE;
        }
    };
    let mut code = exit::SUCCESS;
    for path in &args.specs {
        match super::load_spec(path) {
            Ok(spec) => {
                let line = list_job(&spec, now).to_line();
                let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
            }
            Err(m) => {
                say!("bkc-run: {m}");
                code = exit::USAGE;
            }
        }
    }
    code
}

fn list_job(spec: &JobSpec, now: Timestamp) -> JobSnapshots {
    let state = report::read_state(&report::state_path(&spec.state_dir, &spec.job));
    JobSnapshots {
        version: LISTING_VERSION,
        job: spec.job.clone(),
        host: spec.host.clone(),
        last_success: state.ok().flatten().and_then(|s| s.last_success),
        syncs: spec
            .syncs
            .iter()
            .enumerate()
            .map(|(i, s)| list_sync(spec, i, s, now))
            .collect(),
    }
}

fn list_sync(spec: &JobSpec, i: usize, sync: &Sync, now: Timestamp) -> SyncSnapshots {
    let mut out = SyncSnapshots {
        sync: i + 1,
        source: loc(&sync.source),
        dest: loc(&sync.dest),
        kind: SyncKind::Mirror,
        snapshots: Vec::new(),
        error: None,
    };
    let Some(retention) = &sync.snapshot else {
        return out;
    };
    out.kind = SyncKind::Snapshot;
    let walked = if spec.is_local(&sync.dest.host) {
        walk_local(Path::new(&sync.dest.path))
    } else {
        walk_remote(spec, sync)
    };
    match walked {
        Ok(figures) => out.snapshots = describe(figures, &retention.retention, now),
        Err(m) => out.error = Some(m),
    }
    out
}

/// What one walk found in one snapshot directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Figures {
    pub files: u64,
    pub apparent: u64,
    pub unique: u64,
}

/// A file with more than one name, as the walk has met it so far.
struct Inode {
    first: usize,
    last: usize,
    size: u64,
    shared: bool,
}

/// The walk over a destination's snapshots, fed one entry at a time.
#[derive(Default)]
pub(crate) struct Walk {
    names: Vec<String>,
    figures: Vec<Figures>,
    /// Only files with several names are remembered: a file with one name is unique at once.
    linked: HashMap<(u64, u64), Inode>,
}

impl Walk {
    /// Entries from now on are in the snapshot `name`.
    pub fn enter(&mut self, name: &str) {
        self.names.push(name.to_string());
        self.figures.push(Figures::default());
    }

    /// An entry that is not a regular file (a directory, a link, a device).
    pub fn other(&mut self) {
        if let Some(f) = self.figures.last_mut() {
            f.files += 1;
        }
    }

    /// A regular file of `size` bytes with `nlink` names, identified by `dev` and `ino`.
    pub fn file(&mut self, size: u64, nlink: u64, dev: u64, ino: u64) {
        let Some(cur) = self.figures.len().checked_sub(1) else {
            return;
        };
        let f = &mut self.figures[cur];
        f.files += 1;
        if nlink <= 1 {
            f.apparent += size;
            f.unique += size;
            return;
        }
        match self.linked.get_mut(&(dev, ino)) {
            None => {
                f.apparent += size;
                self.linked.insert(
                    (dev, ino),
                    Inode {
                        first: cur,
                        last: cur,
                        size,
                        shared: false,
                    },
                );
            }
            // A second name in the same snapshot: counted already.
            Some(n) if n.last == cur => {}
            Some(n) => {
                f.apparent += size;
                n.last = cur;
                n.shared = true;
            }
        }
    }

    pub fn finish(mut self) -> Vec<(String, Figures)> {
        for n in self.linked.values().filter(|n| !n.shared) {
            self.figures[n.first].unique += n.size;
        }
        self.names.into_iter().zip(self.figures).collect()
    }
}

/// The walk `bkc-run serve` makes on the destination's host ([`Walk`] there too).
fn walk_remote(spec: &JobSpec, sync: &Sync) -> Result<Vec<(String, Figures)>, String> {
    let req = Request::SnapshotWalk {
        root: sync.dest.path.clone(),
    };
    match super::request(spec, &sync.dest.host, &req, None).map_err(|f| f.message())? {
        Reply::Walked { snapshots } => Ok(snapshots
            .into_iter()
            // Only names of snapshots are listed, whatever the far side says.
            .filter(|w| parse_name(&w.name).is_some() || parse_partial(&w.name).is_some())
            .map(|w| {
                let f = Figures {
                    files: w.files,
                    apparent: w.apparent_bytes,
                    unique: w.unique_bytes,
                };
                (w.name, f)
            })
            .collect()),
        other => Err(format!(
            "unexpected answer about {}: {other:?}",
            loc(&sync.dest)
        )),
    }
}

/// The same walk on this host.
pub(crate) fn walk_local(dest: &Path) -> Result<Vec<(String, Figures)>, String> {
    let rd = match std::fs::read_dir(dest) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dest.display())),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| parse_name(n).is_some() || parse_partial(n).is_some())
        .collect();
    names.sort();
    let mut w = Walk::default();
    for n in &names {
        w.enter(n);
        let mut stack = vec![dest.join(n)];
        while let Some(dir) = stack.pop() {
            // A snapshot pruned or a directory removed meanwhile: what is gone is not counted.
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                if m.is_file() {
                    w.file(m.size(), m.nlink(), m.dev(), m.ino());
                } else {
                    if m.is_dir() {
                        stack.push(e.path());
                    }
                    w.other();
                }
            }
        }
    }
    Ok(w.finish())
}

/// The listing's entries, newest first, marked `latest` and `prune`. What the retention would
/// prune is what a run starting `now` would: its own new snapshot counts.
fn describe(
    figures: Vec<(String, Figures)>,
    retention: &bkc_contract::spec::Retention,
    now: Timestamp,
) -> Vec<Snapshot> {
    let names: Vec<&str> = figures.iter().map(|(n, _)| n.as_str()).collect();
    let listing = snapshot::classify(&names);
    let latest = listing.newest().map(str::to_string);
    let next = snapshot::name_for(now);
    let mut with_next: Vec<&str> = names.clone();
    with_next.push(&next);
    let prune = snapshot::prune_plan(&snapshot::classify(&with_next), retention, &next);
    let mut out: Vec<(DateTime, Snapshot)> = figures
        .into_iter()
        .filter_map(|(name, f)| {
            let (time, complete) = match parse_name(&name) {
                Some(t) => (t, true),
                None => (parse_partial(&name)?, false),
            };
            Some((
                time,
                Snapshot {
                    time: time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    complete,
                    latest: latest.as_deref() == Some(name.as_str()),
                    prune: prune.contains(&name),
                    files: f.files,
                    apparent_bytes: f.apparent,
                    unique_bytes: f.unique,
                    name,
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.complete.cmp(&a.1.complete)));
    out.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bkc-listing-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Three snapshots: a file shared by all, one shared by two, one in one only, a file with
    /// two names inside one snapshot, and a partial snapshot.
    fn destination(d: &Path) {
        let (a, b, c) = (
            d.join("2026-01-01T000000Z"),
            d.join("2026-01-02T000000Z"),
            d.join("2026-01-03T000000Z"),
        );
        std::fs::create_dir_all(a.join("sub")).unwrap();
        std::fs::write(a.join("all"), vec![1u8; 1000]).unwrap();
        std::fs::write(a.join("sub/two"), vec![2u8; 100]).unwrap();
        std::fs::write(a.join("one"), vec![3u8; 10]).unwrap();
        std::fs::hard_link(a.join("one"), a.join("one-again")).unwrap();
        std::fs::create_dir_all(b.join("sub")).unwrap();
        std::fs::hard_link(a.join("all"), b.join("all")).unwrap();
        std::fs::hard_link(a.join("sub/two"), b.join("sub/two")).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        std::fs::hard_link(a.join("all"), c.join("all")).unwrap();
        std::fs::write(c.join("new"), vec![4u8; 7]).unwrap();
        std::os::unix::fs::symlink("all", c.join("link")).unwrap();
        std::fs::create_dir_all(d.join(".partial-2026-01-04T000000Z")).unwrap();
        std::fs::write(d.join(".partial-2026-01-04T000000Z/x"), b"12345").unwrap();
        std::fs::create_dir_all(d.join("notes")).unwrap();
        std::fs::write(d.join("notes/big"), vec![0u8; 5000]).unwrap();
    }

    fn by_name(v: Vec<(String, Figures)>) -> Vec<(String, u64, u64, u64)> {
        let mut v: Vec<_> = v
            .into_iter()
            .map(|(n, f)| (n, f.files, f.apparent, f.unique))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn hard_links_count_once_and_unique_is_what_no_other_has() {
        let d = tmp("walk");
        destination(&d);
        let got = by_name(walk_local(&d).unwrap());
        let s = |n: &str, files, apparent, unique| (n.to_string(), files, apparent, unique);
        assert_eq!(
            got,
            vec![
                s(".partial-2026-01-04T000000Z", 1, 5, 5),
                s("2026-01-01T000000Z", 5, 1110, 10),
                s("2026-01-02T000000Z", 3, 1100, 0),
                s("2026-01-03T000000Z", 3, 1007, 7),
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn latest_and_prune_as_a_run_now_would_see_them() {
        let f = |n: &str| (n.to_string(), Figures::default());
        let figures = vec![
            f("2026-01-01T000000Z"),
            f("2026-01-02T000000Z"),
            f(".partial-2026-01-01T120000Z"),
            f("2026-01-03T000000Z"),
        ];
        let r = bkc_contract::spec::Retention {
            keep_last: Some(2),
            ..Default::default()
        };
        let now: Timestamp = "2026-01-04T00:00:00Z".parse().unwrap();
        let got: Vec<(String, bool, bool, bool)> = describe(figures, &r, now)
            .into_iter()
            .map(|s| (s.name, s.complete, s.latest, s.prune))
            .collect();
        let e = |n: &str, c, l, p| (n.to_string(), c, l, p);
        assert_eq!(
            got,
            vec![
                e("2026-01-03T000000Z", true, true, false),
                e("2026-01-02T000000Z", true, false, true),
                e(".partial-2026-01-01T120000Z", false, false, true),
                e("2026-01-01T000000Z", true, false, true),
            ]
        );
    }
}
