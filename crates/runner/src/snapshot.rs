//! Hardlinked snapshots: naming, retention (pure, unit-tested) and the few directory operations
//! on the destination, done locally or by `bkc-run serve` on the destination's host.
//!
//! Layout under a sync's `dest`:
//! `2026-11-22T021500Z/` complete snapshots, `.partial-2026-11-22T021500Z/` one being written,
//! `latest -> 2026-11-22T021500Z` the newest complete one. A name is the run's start in UTC.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::Instant;

use jiff::Timestamp;
use jiff::civil::DateTime;

use bkc_contract::serve::{Reply, Request};
use bkc_contract::spec::{JobSpec, Retention};

const FORMAT: &str = "%Y-%m-%dT%H%M%SZ";
pub const PARTIAL: &str = ".partial-";
pub const LATEST: &str = "latest";

/// The snapshot name for a run that started at `ts`.
pub fn name_for(ts: Timestamp) -> String {
    ts.strftime(FORMAT).to_string()
}

/// The time in a complete snapshot's name; `None` for anything else, so stray entries under
/// `dest` are never mistaken for snapshots (and so never pruned).
pub fn parse_name(name: &str) -> Option<DateTime> {
    if name.len() != 18 || !name.ends_with('Z') {
        return None;
    }
    let dt = DateTime::strptime(FORMAT, name).ok()?;
    // Only the canonical spelling counts, so parsing and naming agree exactly.
    (dt.strftime(FORMAT).to_string() == name).then_some(dt)
}

pub fn parse_partial(name: &str) -> Option<DateTime> {
    parse_name(name.strip_prefix(PARTIAL)?)
}

/// What a directory listing of `dest` holds, newest first.
#[derive(Debug, Default, PartialEq)]
pub struct Listing {
    pub complete: Vec<(String, DateTime)>,
    pub partial: Vec<(String, DateTime)>,
}

pub fn classify<S: AsRef<str>>(names: &[S]) -> Listing {
    let mut l = Listing::default();
    for n in names {
        let n = n.as_ref();
        if let Some(t) = parse_name(n) {
            l.complete.push((n.to_string(), t));
        } else if let Some(t) = parse_partial(n) {
            l.partial.push((n.to_string(), t));
        }
    }
    l.complete.sort_by_key(|c| std::cmp::Reverse(c.1));
    l.partial.sort_by_key(|p| std::cmp::Reverse(p.1));
    l
}

impl Listing {
    /// The base for `--link-dest`: the newest complete snapshot, never a partial one.
    pub fn newest(&self) -> Option<&str> {
        self.complete.first().map(|(n, _)| n.as_str())
    }

    /// The base for a run whose snapshot is `current`: the newest complete snapshot dated before
    /// it. One dated after it (written while a clock was ahead) holds older data than its name
    /// says; it is the base only when there is nothing else.
    pub fn base(&self, current: &str) -> Option<&str> {
        let now = parse_name(current);
        self.complete
            .iter()
            .find(|c| now.is_some_and(|n| c.1 < n))
            .or(self.complete.first())
            .map(|(n, _)| n.as_str())
    }

    /// A partial snapshot newer than every complete one: an interrupted run, whose files the next
    /// run can reuse instead of copying again.
    pub fn resumable(&self) -> Option<&str> {
        let newest = self.complete.first().map(|c| c.1);
        self.partial
            .first()
            .filter(|p| newest.is_none_or(|n| p.1 > n))
            .map(|p| p.0.as_str())
    }
}

/// Which complete snapshots the retention keeps, as restic and borg define it: `keep_last` the
/// newest N; `keep_daily` the newest snapshot of each of the last N days that have snapshots;
/// likewise ISO weeks and months (all in UTC). With no rule set, everything is kept. The newest
/// snapshot is always kept.
pub fn keep(complete: &[(String, DateTime)], r: &Retention) -> BTreeSet<String> {
    let mut sorted: Vec<&(String, DateTime)> = complete.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.1));
    let mut kept = BTreeSet::new();
    if r.keep_last.is_none()
        && r.keep_daily.is_none()
        && r.keep_weekly.is_none()
        && r.keep_monthly.is_none()
    {
        kept.extend(sorted.iter().map(|s| s.0.clone()));
        return kept;
    }
    if let Some(first) = sorted.first() {
        kept.insert(first.0.clone());
    }
    if let Some(n) = r.keep_last {
        kept.extend(sorted.iter().take(n as usize).map(|s| s.0.clone()));
    }
    let mut by_bucket = |n: Option<u32>, bucket: &dyn Fn(DateTime) -> (i32, i32, i32)| {
        let Some(n) = n else { return };
        let mut last = None;
        let mut count = 0u32;
        for s in &sorted {
            let b = bucket(s.1);
            if last != Some(b) {
                last = Some(b);
                if count < n {
                    kept.insert(s.0.clone());
                    count += 1;
                }
            }
        }
    };
    by_bucket(r.keep_daily, &|t| {
        (
            i32::from(t.year()),
            i32::from(t.month()),
            i32::from(t.day()),
        )
    });
    by_bucket(r.keep_weekly, &|t| {
        let w = t.date().iso_week_date();
        (i32::from(w.year()), i32::from(w.week()), 0)
    });
    by_bucket(r.keep_monthly, &|t| {
        (i32::from(t.year()), i32::from(t.month()), 0)
    });
    kept
}

/// What to delete after a fully successful run: complete snapshots the retention does not keep,
/// and partial ones older than the newest complete snapshot (left by interrupted runs). `current`,
/// the snapshot this run made (which `latest` points to), always stays, even when a snapshot
/// dated later by a wrong clock makes it look old.
pub fn prune_plan(listing: &Listing, r: &Retention, current: &str) -> Vec<String> {
    let kept = keep(&listing.complete, r);
    let mut del: Vec<String> = listing
        .complete
        .iter()
        .filter(|c| !kept.contains(&c.0) && c.0 != current)
        .map(|c| c.0.clone())
        .collect();
    if let Some((_, newest)) = listing.complete.first() {
        del.extend(
            listing
                .partial
                .iter()
                .filter(|p| p.1 < *newest)
                .map(|p| p.0.clone()),
        );
    }
    del
}

/// The destination directory of a snapshotting sync, local or on another host.
pub enum Dest<'a> {
    Local(&'a str),
    Remote {
        spec: &'a JobSpec,
        host: &'a str,
        path: &'a str,
    },
}

impl Dest<'_> {
    pub fn path(&self) -> &str {
        match self {
            Dest::Local(p) => p,
            Dest::Remote { path, .. } => path,
        }
    }

    /// Ask `bkc-run serve` on the destination's host.
    fn request(&self, req: &Request, deadline: Option<Instant>) -> Result<Reply, String> {
        let Dest::Remote { spec, host, .. } = self else {
            return Err("not remote".into());
        };
        super::request(spec, host, req, deadline).map_err(|f| f.message())
    }

    /// The entries under `dest`; with `create`, make `dest` first so rsync can create the
    /// partial directory in it.
    pub fn list(&self, create: bool, deadline: Option<Instant>) -> Result<Listing, String> {
        match self {
            Dest::Local(p) => {
                if create {
                    fs::create_dir_all(p).map_err(|e| format!("cannot create {p}: {e}"))?;
                }
                let mut names = Vec::new();
                let rd = match fs::read_dir(p) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok(Listing::default());
                    }
                    Err(e) => return Err(format!("cannot list {p}: {e}")),
                };
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        names.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
                Ok(classify(&names))
            }
            Dest::Remote { path, .. } => {
                let req = Request::SnapshotList {
                    root: path.to_string(),
                    create,
                };
                match self.request(&req, deadline)? {
                    Reply::Listing { names } => Ok(classify(&names)),
                    other => Err(format!("unexpected answer listing {path}: {other:?}")),
                }
            }
        }
    }

    pub fn rename(&self, from: &str, to: &str, deadline: Option<Instant>) -> Result<(), String> {
        match self {
            Dest::Local(p) => fs::rename(Path::new(p).join(from), Path::new(p).join(to))
                .map_err(|e| format!("cannot rename {from} to {to} in {p}: {e}")),
            Dest::Remote { path, .. } => {
                let req = Request::SnapshotRename {
                    root: path.to_string(),
                    from: from.to_string(),
                    to: to.to_string(),
                };
                self.request(&req, deadline).map(drop)
            }
        }
    }

    /// Turn the partial snapshot into the complete `name` and point `latest` at it atomically
    /// (a new symlink renamed over the old one); one round trip for a remote dest. Returns the
    /// name it got: an append-only destination names it by its own clock.
    pub fn complete(
        &self,
        partial: &str,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<String, String> {
        match self {
            Dest::Local(p) => {
                self.rename(partial, name, deadline)?;
                let tmp = format!(".latest.tmp-{}", std::process::id());
                let dir = Path::new(p);
                let _ = fs::remove_file(dir.join(&tmp));
                std::os::unix::fs::symlink(name, dir.join(&tmp))
                    .and_then(|_| fs::rename(dir.join(&tmp), dir.join(LATEST)))
                    .map_err(|e| format!("cannot point {p}/latest at {name}: {e}"))?;
                Ok(name.to_string())
            }
            Dest::Remote { path, .. } => {
                let req = Request::SnapshotComplete {
                    root: path.to_string(),
                    partial: partial.to_string(),
                    name: name.to_string(),
                };
                match self.request(&req, deadline)? {
                    Reply::Completed { name } => Ok(name),
                    other => Err(format!("unexpected answer completing {name}: {other:?}")),
                }
            }
        }
    }

    /// Apply `retention`, keeping `current`; returns what was removed. Locally the plan comes
    /// from `names` (the entries now under dest: the run holds the locks, so nobody else changed
    /// them); remotely `bkc-run serve` lists and plans itself, from its own copy of the
    /// retention, so that no runner can make it delete what the retention keeps.
    pub fn prune(
        &self,
        retention: &Retention,
        current: &str,
        names: &[String],
        deadline: Option<Instant>,
    ) -> Result<Vec<String>, String> {
        match self {
            Dest::Local(p) => {
                let del = prune_plan(&classify(names), retention, current);
                for n in &del {
                    fs::remove_dir_all(Path::new(p).join(n))
                        .map_err(|e| format!("cannot remove {p}/{n}: {e}"))?;
                }
                Ok(del)
            }
            Dest::Remote { path, .. } => {
                let req = Request::SnapshotPrune {
                    root: path.to_string(),
                    current: current.to_string(),
                };
                match self.request(&req, deadline)? {
                    Reply::Pruned { removed } => Ok(removed),
                    other => Err(format!("unexpected answer pruning {path}: {other:?}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_round_trip() {
        let n = name_for(ts("2026-11-22T02:15:00Z"));
        assert_eq!(n, "2026-11-22T021500Z");
        assert_eq!(parse_name(&n).unwrap().to_string(), "2026-11-22T02:15:00");
        assert!(parse_partial(".partial-2026-11-22T021500Z").is_some());
        for bad in [
            "latest",
            "2026-11-22T0215Z",
            "2026-11-22T021500",
            "2026-13-22T021500Z",
            ".partial-x",
            "2026-1-22T021500ZZ",
        ] {
            assert!(
                parse_name(bad).is_none() && parse_partial(bad).is_none(),
                "{bad}"
            );
        }
    }

    fn day_series(days: u32, per_day: u32) -> Vec<String> {
        let mut v = Vec::new();
        let start = ts("2026-01-01T03:00:00Z");
        for d in 0..days {
            for h in 0..per_day {
                let t = start + jiff::SignedDuration::from_hours(i64::from(d * 24 + h * 5));
                v.push(name_for(t));
            }
        }
        v
    }

    #[test]
    fn keep_daily_takes_newest_of_each_day() {
        let names = day_series(10, 2);
        let l = classify(&names);
        let r = Retention {
            keep_daily: Some(3),
            ..Default::default()
        };
        let kept = keep(&l.complete, &r);
        let want: BTreeSet<String> = [
            "2026-01-10T080000Z",
            "2026-01-09T080000Z",
            "2026-01-08T080000Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(kept, want);
        assert_eq!(prune_plan(&l, &r, "2026-01-10T080000Z").len(), 17);
    }

    #[test]
    fn rules_combine_and_newest_is_always_kept() {
        let names = day_series(70, 1);
        let l = classify(&names);
        let r = Retention {
            keep_last: Some(2),
            keep_weekly: Some(2),
            keep_monthly: Some(3),
            ..Default::default()
        };
        let kept = keep(&l.complete, &r);
        // last 2: Mar 11, Mar 10. weeks (ISO): newest of week 11 (Mar 11) and week 10 (Mar 8).
        // months: Mar 11, Feb 28, Jan 31.
        let want: BTreeSet<String> = [
            "2026-03-11T030000Z",
            "2026-03-10T030000Z",
            "2026-03-08T030000Z",
            "2026-02-28T030000Z",
            "2026-01-31T030000Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(kept, want);
        let r = Retention {
            keep_last: Some(0),
            keep_daily: Some(0),
            ..Default::default()
        };
        assert_eq!(
            keep(&l.complete, &r).len(),
            1,
            "newest is kept even when every rule says 0"
        );
        assert_eq!(
            keep(&l.complete, &Retention::default()).len(),
            70,
            "no rule: keep all"
        );
    }

    #[test]
    fn a_future_dated_snapshot_never_costs_the_current_one() {
        let l = classify(&[
            "2026-02-01T000000Z",
            "2026-03-01T021500Z",
            "2030-01-01T000000Z",
        ]);
        let r = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        // The newest by name stays by the rules, the current one because it is this run's.
        assert_eq!(
            prune_plan(&l, &r, "2026-03-01T021500Z"),
            vec!["2026-02-01T000000Z".to_string()]
        );
        let before = classify(&["2026-02-01T000000Z", "2030-01-01T000000Z"]);
        assert_eq!(
            before.base("2026-03-01T021500Z"),
            Some("2026-02-01T000000Z")
        );
        let only_future = classify(&["2030-01-01T000000Z"]);
        assert_eq!(
            only_future.base("2026-03-01T021500Z"),
            Some("2030-01-01T000000Z"),
            "better a base from the future than none"
        );
    }

    #[test]
    fn partials_are_never_bases_and_stale_ones_go() {
        let l = classify(&[
            ".partial-2026-01-01T000000Z",
            "2026-01-02T000000Z",
            ".partial-2026-01-03T000000Z",
            "latest",
            "notes",
        ]);
        assert_eq!(l.newest(), Some("2026-01-02T000000Z"));
        assert_eq!(l.resumable(), Some(".partial-2026-01-03T000000Z"));
        let del = prune_plan(
            &l,
            &Retention {
                keep_last: Some(1),
                ..Default::default()
            },
            "2026-01-02T000000Z",
        );
        assert_eq!(del, vec![".partial-2026-01-01T000000Z".to_string()]);
        let only_partial = classify(&[".partial-2026-01-01T000000Z"]);
        assert_eq!(only_partial.newest(), None);
        assert!(prune_plan(&only_partial, &Retention::default(), "2026-01-02T000000Z").is_empty());
    }
}
