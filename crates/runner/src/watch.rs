//! `bkc-run watch <spec>`: start a job when files under its `watch` paths change, once the
//! changes have been quiet for the job's `quiet` time, and never more often than that.
//!
//! Why not a systemd path unit alone: `PathChanged=`/`PathModified=` watch one directory, not
//! the tree below it, and start the service at the first change, with no quiet time. So this
//! watcher, run as `bkc-watch@<job>.service`, watches the whole tree with inotify (a watch per
//! directory, added as directories appear) and debounces; to start the job it writes the spec's
//! trigger file, which `bkc-watch@<job>.path` turns into a start of `bkc-<job>.service`. The
//! watcher needs no right to start units, and the start is a start like a timer's: locks, waits,
//! the `every` rule, everything applies.
//!
//! A start request for a oneshot service that is running merges into that run and starts
//! nothing new, so changes that arrive while a run goes on must not be answered by a trigger
//! alone. After each trigger the watcher reads the job's state file until a run has ended: if
//! that run began after the trigger it copied what changed before; if it began before (the
//! trigger merged into it), the watcher triggers again once that run is over. Changes during a
//! run restart the quiet time as any change does, and their trigger is checked the same way.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bkc_contract::names::SOURCE_SNAPSHOTS;
use bkc_contract::spec::{JobSpec, Watch};
use jiff::Timestamp;

use crate::inotify::Inotify;
use crate::report::{self, say};
use crate::{child, exit, load_spec};

/// The debounce, fed with times and never reading a clock itself, so that it is tested without
/// sleeping. Times are any monotonic clock's, as offsets from one origin.
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    /// When the changes not yet answered may start the job: `quiet` after the last of them.
    due: Option<Duration>,
    /// When the job was last started.
    last: Option<Duration>,
}

impl Debounce {
    pub fn new(quiet: Duration) -> Debounce {
        Debounce {
            quiet,
            due: None,
            last: None,
        }
    }

    /// Something changed: the quiet time starts again.
    pub fn change(&mut self, now: Duration) {
        self.due = Some(now + self.quiet);
    }

    /// A run ended that had begun before the last start: that start merged into it, and what
    /// changed before it is not copied yet. Start again as soon as the pace allows.
    pub fn merged(&mut self, now: Duration) {
        if self.due.is_none() {
            self.due = Some(now);
        }
    }

    /// Whether changes are waiting to start the job.
    pub fn pending(&self) -> bool {
        self.due.is_some()
    }

    /// When the job may start next, if anything waits: after the quiet time, and at least
    /// `quiet` after the last start.
    pub fn deadline(&self) -> Option<Duration> {
        let due = self.due?;
        Some(self.last.map_or(due, |l| due.max(l + self.quiet)))
    }

    /// Whether to start the job now; when it says yes, the start is counted as made.
    pub fn fire(&mut self, now: Duration) -> bool {
        match self.deadline() {
            Some(d) if now >= d => {
                self.due = None;
                self.last = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// Names in a watched tree that are bkc's own, never data: a change there starts nothing.
fn ignored(name: &OsStr) -> bool {
    let n = name.as_bytes();
    n == SOURCE_SNAPSHOTS.as_bytes() || n.starts_with(b".bkc-fresh.")
}

/// What inotify reports, for directories and the roots that may be files.
const MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;

/// How often a missing root is looked for again.
const MISSING_RETRY: Duration = Duration::from_secs(5);
/// How often the state file is read while a start is not yet answered by a run.
const STATE_POLL: Duration = Duration::from_secs(1);

/// A recursive inotify watch over the roots.
struct Tree {
    ino: Inotify,
    /// Watch descriptor -> the directory (or root file) it watches.
    dirs: BTreeMap<i32, PathBuf>,
    roots: Vec<PathBuf>,
    /// Roots that do not exist now (or were moved away): looked for again every few seconds.
    missing: Vec<PathBuf>,
}

impl Tree {
    fn new(roots: &[String]) -> Result<Tree, String> {
        let ino = Inotify::new().map_err(|e| format!("cannot start inotify: {e}"))?;
        let roots: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
        let mut t = Tree {
            ino,
            dirs: BTreeMap::new(),
            missing: roots.clone(),
            roots,
        };
        t.find_missing()?;
        Ok(t)
    }

    /// Add the roots that were missing and exist now; true when any did.
    fn find_missing(&mut self) -> Result<bool, String> {
        let mut found = false;
        for root in std::mem::take(&mut self.missing) {
            if self.add(&root, true)? {
                found = true;
            } else {
                self.missing.push(root);
            }
        }
        Ok(found)
    }

    /// Watch `top` and every directory below it, not following symlinks and leaving out bkc's
    /// own directories. False when `top` is not there. Only running out of watches is an error:
    /// a directory that vanished meanwhile is simply not watched.
    fn add(&mut self, top: &Path, root: bool) -> Result<bool, String> {
        let mut stack = vec![top.to_path_buf()];
        let mut first = true;
        while let Some(dir) = stack.pop() {
            let only_dir = if root && first { 0 } else { libc::IN_ONLYDIR };
            let wd = match self.ino.add(&dir, MASK | only_dir) {
                Ok(wd) => wd,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    return Err(format!(
                        "cannot watch {}: the limit of inotify watches is reached (raise fs.inotify.max_user_watches)",
                        dir.display()
                    ));
                }
                Err(_) if first => return Ok(false),
                Err(_) => continue,
            };
            first = false;
            self.dirs.insert(wd, dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) && !ignored(&e.file_name()) {
                    stack.push(e.path());
                }
            }
        }
        Ok(true)
    }

    /// Stop watching `dir` and everything below it (moved away or deleted).
    fn remove_below(&mut self, dir: &Path) {
        let gone: Vec<i32> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.starts_with(dir))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            self.ino.remove(wd);
        }
    }

    /// Wait for events at most `timeout`; whether any of them is a change to the data.
    fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        let events = self
            .ino
            .wait(timeout.max(Duration::from_millis(1)))
            .map_err(|e| format!("cannot read inotify events: {e}"))?;
        let mut changed = false;
        for ev in events {
            let name = ev.name.as_deref().unwrap_or_else(|| OsStr::new(""));
            changed |= self.event(ev.wd, ev.mask, name)?;
        }
        Ok(changed)
    }

    fn event(&mut self, wd: i32, mask: u32, name: &OsStr) -> Result<bool, String> {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost, new directories among them perhaps: count it as a change and
            // look at the whole tree again (a directory watched already keeps its watch).
            for root in self.roots.clone() {
                if !self.add(&root, true)? && !self.missing.contains(&root) {
                    self.missing.push(root);
                }
            }
            return Ok(true);
        }
        if mask & libc::IN_IGNORED != 0 {
            self.dirs.remove(&wd);
            return Ok(false);
        }
        let Some(dir) = self.dirs.get(&wd).cloned() else {
            return Ok(false);
        };
        if mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
            // A root deleted or renamed: what it held is gone from here. A directory below
            // one is handled by its parent's event.
            if let Some(root) = self.roots.iter().find(|r| **r == dir).cloned() {
                self.remove_below(&root);
                if !self.missing.contains(&root) {
                    self.missing.push(root);
                }
                return Ok(true);
            }
            return Ok(false);
        }
        if !name.is_empty() && ignored(name) {
            return Ok(false);
        }
        if mask & libc::IN_ISDIR != 0 && !name.is_empty() {
            let path = dir.join(name);
            if mask & (libc::IN_MOVED_FROM | libc::IN_DELETE) != 0 {
                self.remove_below(&path);
            }
            if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                self.add(&path, false)?;
            }
        }
        Ok(true)
    }

    fn watched(&self) -> usize {
        self.dirs.len()
    }
}

/// The run the state file reports: its start and end as written.
fn last_run(spec: &JobSpec) -> Option<(Option<String>, Option<String>)> {
    let path = report::state_path(&spec.state_dir, &spec.job);
    match report::read_state(&path) {
        Ok(Some(s)) => Some((s.start, s.end)),
        _ => None,
    }
}

/// Write the trigger file: its close is what the path unit starts the job on.
fn trigger(w: &Watch, at: Timestamp) -> Result<(), String> {
    let path = Path::new(&w.trigger);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, format!("{at}\n"))
        .map_err(|e| format!("cannot write the trigger {}: {e}", path.display()))
}

/// A start made and not yet answered by a run's end in the state file.
struct Unanswered {
    at: Timestamp,
    /// The state file's last run when the start was made.
    before: Option<(Option<String>, Option<String>)>,
}

/// `bkc-run watch <spec>`: watch until stopped; returns the exit code.
pub fn main(path: &Path) -> i32 {
    child::install_signal_handlers();
    let spec = match load_spec(path) {
        Ok(s) => s,
        Err(m) => {
            say!("bkc-run watch: {m}");
            return exit::USAGE;
        }
    };
    // Its paths, trigger and quiet time were checked with the rest of the spec.
    let Some(w) = spec.watch.clone() else {
        say!(
            "bkc-run watch: {}: job {} has no watch",
            path.display(),
            spec.job
        );
        return exit::USAGE;
    };
    match watch(&spec, &w) {
        Ok(()) => exit::SUCCESS,
        Err(m) => {
            say!("bkc-run watch: job {}: {m}", spec.job);
            exit::FAILED
        }
    }
}

fn watch(spec: &JobSpec, w: &Watch) -> Result<(), String> {
    let quiet = Duration::from_secs(w.quiet_secs);
    let mut tree = Tree::new(&w.paths)?;
    say!(
        "bkc-run watch: job {}: watching {} director{} under {}{}; starting the job once changes are quiet for {} s",
        spec.job,
        tree.watched(),
        if tree.watched() == 1 { "y" } else { "ies" },
        w.paths.join(", "),
        if tree.missing.is_empty() {
            String::new()
        } else {
            format!(
                " ({} missing for now)",
                tree.missing
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        w.quiet_secs
    );
    let origin = Instant::now();
    let mut d = Debounce::new(quiet);
    let mut open: Option<Unanswered> = None;
    loop {
        let now = origin.elapsed();
        if child::interrupted().is_some() {
            // Stopping (a deploy restarts a changed watcher, or the host shuts down): changes
            // waiting for their quiet time start the job now rather than never.
            if d.pending() {
                trigger(w, Timestamp::now())?;
                say!(
                    "bkc-run watch: job {}: stopping with changes waiting: started the job",
                    spec.job
                );
            }
            return Ok(());
        }
        if let Some(u) = &open {
            let run = last_run(spec);
            if run != u.before {
                let began = run
                    .as_ref()
                    .and_then(|(s, _)| s.as_ref())
                    .and_then(|s| s.parse::<Timestamp>().ok());
                if began.is_some_and(|b| b < u.at) {
                    say!(
                        "bkc-run watch: job {}: the start merged into a run already going on; starting it again",
                        spec.job
                    );
                    d.merged(now);
                }
                open = None;
            }
        }
        if d.fire(now) {
            let at = Timestamp::now();
            let before = last_run(spec);
            trigger(w, at)?;
            say!(
                "bkc-run watch: job {}: changes quiet for {} s: started the job",
                spec.job,
                w.quiet_secs
            );
            open = Some(Unanswered { at, before });
        }
        let mut timeout = d
            .deadline()
            .map_or(Duration::from_secs(3600), |t| t.saturating_sub(now));
        if open.is_some() {
            timeout = timeout.min(STATE_POLL);
        }
        if !tree.missing.is_empty() {
            timeout = timeout.min(MISSING_RETRY);
        }
        let changed = tree.wait(timeout)?;
        let now = origin.elapsed();
        if changed | tree.find_missing()? {
            d.change(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn a_burst_starts_the_job_once_after_the_quiet_time() {
        let mut d = Debounce::new(s(5));
        assert_eq!(d.deadline(), None);
        for t in 0..100 {
            d.change(Duration::from_millis(t * 10));
            assert!(!d.fire(Duration::from_millis(t * 10)));
        }
        // The last change was at 0.99 s: not before 5.99 s.
        assert!(!d.fire(Duration::from_millis(5989)));
        assert_eq!(d.deadline(), Some(Duration::from_millis(5990)));
        assert!(d.fire(Duration::from_millis(5990)));
        assert!(!d.fire(s(100)), "one start for the whole burst");
        assert!(!d.pending());
    }

    #[test]
    fn every_change_restarts_the_quiet_time() {
        let mut d = Debounce::new(s(5));
        d.change(s(0));
        d.change(s(4));
        assert!(!d.fire(s(5)));
        d.change(s(8));
        assert!(!d.fire(s(12)));
        assert!(d.fire(s(13)));
    }

    #[test]
    fn never_more_often_than_once_per_quiet_time() {
        let mut d = Debounce::new(s(5));
        d.change(s(0));
        assert!(d.fire(s(5)));
        // A run that began before the start ended at once: start again, but not before 10 s.
        d.merged(s(6));
        assert_eq!(d.deadline(), Some(s(10)));
        assert!(!d.fire(s(9)));
        assert!(d.fire(s(10)));
        // A later single change starts it once more.
        d.change(s(30));
        assert!(!d.fire(s(34)));
        assert!(d.fire(s(35)));
        assert!(!d.fire(s(60)));
    }

    #[test]
    fn a_merged_start_waits_for_changes_still_quieting() {
        let mut d = Debounce::new(s(5));
        d.change(s(0));
        assert!(d.fire(s(5)));
        d.change(s(7));
        // The merged run's end does not cut short the quiet time of the change at 7 s.
        d.merged(s(8));
        assert!(!d.fire(s(11)));
        assert!(d.fire(s(12)));
    }

    #[test]
    fn bkc_own_names_are_not_changes() {
        assert!(ignored(OsStr::new(".bkc-snapshots")));
        assert!(ignored(OsStr::new(".bkc-fresh.docs")));
        assert!(!ignored(OsStr::new(".bkc-other")));
        assert!(!ignored(OsStr::new("letters")));
    }
}
