//! `bkc-run serve <job>`: the far end of every remote step a runner takes, and what it allows.
//!
//! On every host a job reaches, `bkc build` writes `/etc/bkc/serve/<job>.json`, a [`ServeFile`]:
//! the exact paths the job's rsync may read and write there, its snapshot roots with their
//! retention, the locks, lock files and wait files it may take or watch, and the commands of its
//! hooks on that host. `bkc-run serve <job>` reads that file and nothing from the peer decides
//! what it may do. The runner speaks to it in [`Request`] and [`Reply`] lines, one JSON object
//! per line, over the SSH session (docs/SERVE.md has the protocol).
//!
//! The file is computed from the job spec by [`ServeFile::for_host`], so the compiler that emits
//! it and anything else that needs it (tests, a hand-made setup) derive it the same way.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::spec::{Command, JobSpec, LockMode, Retention};
use crate::state::RunResult;

/// Bumped on any change a `bkc-run serve` of the previous version would misread.
pub const SERVE_VERSION: u32 = 1;

/// Where the serve files live on every host.
pub const SERVE_DIR: &str = "/etc/bkc/serve";

/// The serve file of `job` on the host it is on.
pub fn serve_path(job: &str) -> String {
    format!("{SERVE_DIR}/{job}.json")
}

/// What one job may do on one host through `bkc-run serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeFile {
    pub version: u32,
    /// The job, as in the forced command `bkc-run serve <job>`.
    pub job: String,
    /// The host this file is for, as the topology names it.
    pub host: String,
    /// The job's host, where its runner and its key live.
    pub from: String,
    /// Paths rsync may send from (the job pulls them), exactly as the job's syncs name them;
    /// also the paths the empty-source check may look at.
    pub read: Vec<String>,
    /// Paths rsync may receive into (the job pushes to them), exactly as named.
    pub write: Vec<WriteRoot>,
    /// Directories of snapshots the job pushes.
    pub snapshots: Vec<SnapshotRoot>,
    /// Lock files the job may flock, each in the one mode it takes it in.
    pub locks: Vec<ServeLock>,
    /// Seed-style lock files the job may create, and remove while they hold its holder line.
    pub lock_files: Vec<String>,
    /// Seed-style files the job may watch, and remove once their holder is provably gone.
    pub wait_files: Vec<String>,
    /// The exact commands of the job's hooks on this host.
    pub hooks: Vec<Command>,
    /// The freshness markers a successful run leaves in the job's destinations here (see
    /// `fresh`), each written whole with the job's marker and nothing else.
    pub fresh_markers: Vec<String>,
    /// Directories a restore may write into, at or below each (`restore-to`), and whose state
    /// (missing, empty) it may ask. Nothing else here is ever written for a restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WriteRoot {
    pub path: String,
    /// The sync deletes on the receiver (`--delete` and its kin are allowed).
    pub delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SnapshotRoot {
    pub path: String,
    pub retention: Retention,
    /// The job may add snapshots but never remove or change a complete one; pruning runs on
    /// this host (`bkc-run prune <job>`), and serve names each new snapshot by its own clock.
    pub append_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeLock {
    pub path: String,
    pub mode: LockMode,
}

impl ServeFile {
    /// What the job of `spec` does on `host`; `None` when it does nothing there (or `host` is
    /// the job's own host, where its runner works without serve).
    pub fn for_host(spec: &JobSpec, host: &str) -> Option<ServeFile> {
        if spec.is_local(host) {
            return None;
        }
        let mut f = ServeFile {
            version: SERVE_VERSION,
            job: spec.job.clone(),
            host: host.to_string(),
            from: spec.host.clone(),
            read: Vec::new(),
            write: Vec::new(),
            snapshots: Vec::new(),
            locks: Vec::new(),
            lock_files: Vec::new(),
            wait_files: Vec::new(),
            hooks: Vec::new(),
            fresh_markers: Vec::new(),
            restore_to: Vec::new(),
        };
        for s in &spec.syncs {
            if s.source.host == host {
                f.read.push(s.source.path.clone());
            }
            if s.dest.host != host {
                continue;
            }
            match &s.snapshot {
                Some(snap) => f.snapshots.push(SnapshotRoot {
                    path: s.dest.path.clone(),
                    retention: snap.retention.clone(),
                    append_only: snap.append_only,
                }),
                None => f.write.push(WriteRoot {
                    path: s.dest.path.clone(),
                    delete: s.deletes,
                }),
            }
        }
        f.locks.extend(
            spec.locks
                .iter()
                .filter(|l| l.at.host == host)
                .map(|l| ServeLock {
                    path: l.at.path.clone(),
                    mode: l.mode,
                }),
        );
        let here = |l: &crate::spec::Location| (l.host == host).then(|| l.path.clone());
        f.lock_files
            .extend(spec.lock_files.iter().filter_map(&here));
        f.wait_files
            .extend(spec.wait_files.iter().filter_map(|w| here(&w.at)));
        f.hooks.extend(
            spec.hooks
                .iter()
                .filter(|h| h.host == host)
                .map(|h| h.command.clone()),
        );
        f.fresh_markers
            .extend(spec.fresh_markers.iter().filter_map(&here));
        f.restore_to
            .extend(spec.restore_to.iter().filter_map(&here));
        f.read = dedup(f.read);
        f.restore_to = dedup(f.restore_to);
        f.fresh_markers = dedup(f.fresh_markers);
        f.lock_files = dedup(f.lock_files);
        f.wait_files = dedup(f.wait_files);
        let empty = f.read.is_empty()
            && f.write.is_empty()
            && f.snapshots.is_empty()
            && f.locks.is_empty()
            && f.lock_files.is_empty()
            && f.wait_files.is_empty()
            && f.hooks.is_empty()
            && f.fresh_markers.is_empty()
            && f.restore_to.is_empty();
        (!empty).then_some(f)
    }

    /// The `restore-to` directory that holds `path`, if one does: `path` absolute, with no `.`
    /// or `..` component, at or below it.
    pub fn restore_root(&self, path: &str) -> Option<&str> {
        self.restore_to
            .iter()
            .map(String::as_str)
            .find(|root| at_or_below(root, path))
    }

    /// Parse and check a serve file as `bkc-run serve` reads it.
    pub fn from_json(text: &str) -> Result<ServeFile, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The JSON bkc writes: pretty, with a trailing newline, byte-stable.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a ServeFile always serialises");
        s.push('\n');
        s
    }
}

/// Whether `path` is `root` or inside it: absolute, with no `.` or `..` component (which would
/// make the comparison of components mean nothing).
pub fn at_or_below(root: &str, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if !path.starts_with('/') || parts.iter().any(|c| *c == "." || *c == "..") {
        return false;
    }
    let r: Vec<&str> = root.split('/').filter(|c| !c.is_empty()).collect();
    parts.starts_with(&r)
}

/// Sorted and without repeats, so two syncs from one source give one entry.
fn dedup(v: Vec<String>) -> Vec<String> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// One request, the first line the runner writes on the session's stdin (rsync sessions are
/// the exception: they name `rsync` on the command line, see docs/SERVE.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Take these locks in this order and hold them until stdin closes. Replies: `holder` and
    /// `locked` for each lock in turn, or `timeout`.
    Lock {
        /// The line written into each exclusive lock once it is held.
        holder: String,
        locks: Vec<LockRequest>,
    },
    /// Create a seed-style lock file exclusively with `holder` as its first line. Replies:
    /// `created` or `exists`.
    CreateFile { path: String, holder: String },
    /// Remove a lock file or wait file if its first line is still `line`. Reply: `done`.
    RemoveIf { path: String, line: String },
    /// Whether a wait file exists. Replies: `gone` or `exists`.
    FileState { path: String },
    /// What a pull source holds, for the empty-source guard. Reply: `source`.
    SourceState { path: String },
    /// The entries under a snapshot root, made first when `create`. Reply: `listing`.
    SnapshotList { root: String, create: bool },
    /// Rename an interrupted run's partial snapshot to this run's. Reply: `done`.
    SnapshotRename {
        root: String,
        from: String,
        to: String,
    },
    /// Make the partial snapshot complete as `name` and point `latest` at it. Reply:
    /// `completed`, with the name it got (an append-only root names it by its own clock).
    SnapshotComplete {
        root: String,
        partial: String,
        name: String,
    },
    /// Apply the root's retention, as serve computes it, keeping `current` whatever it says.
    /// Reply: `pruned`. Refused on an append-only root.
    SnapshotPrune { root: String, current: String },
    /// Write the job's freshness marker `content` (a [`crate::fresh::Marker`] of this job, one
    /// line) to each of `paths`, whole: through a new file renamed over the old. Reply: `done`.
    WriteMarkers { paths: Vec<String>, content: String },
    /// For `bkc snapshots`: walk every snapshot (complete and partial) under a snapshot root and
    /// count its entries and bytes, a file with several names once. Reply: `walked`.
    SnapshotWalk { root: String },
    /// For a restore: which of `paths` (relative, without `..`) each of `dirs` has, where `dirs`
    /// are complete snapshots under a snapshot root, or `.` for a mirror's root. Reply: `have`.
    Have {
        root: String,
        dirs: Vec<String>,
        paths: Vec<String>,
    },
    /// Run one of the job's hooks on this host. Its output is the session's; its exit code is
    /// serve's.
    Hook {
        command: Command,
        /// For after hooks: how the run went (`BKC_RESULT`, `BKC_EXIT_CODE`).
        result: Option<HookResult>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockRequest {
    pub path: String,
    pub mode: LockMode,
    /// Give up waiting for this lock after this many seconds.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HookResult {
    pub result: RunResult,
    pub exit_code: i32,
}

/// What a pull source holds, as far as the empty-source guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SourceState {
    NonEmpty,
    Empty,
    Missing,
}

impl std::fmt::Display for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceState::NonEmpty => "not empty",
            SourceState::Empty => "empty",
            SourceState::Missing => "missing",
        })
    }
}

/// One line serve writes on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "reply", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    /// The current first line of lock `index`, before serve waits for it.
    Holder {
        index: usize,
        holder: String,
    },
    /// Lock `index` is held.
    Locked {
        index: usize,
    },
    /// Lock `index` could not be had in its time (serve exits 1).
    Timeout {
        index: usize,
    },
    Created,
    /// The file exists; its first line names its holder, if a runner wrote it.
    Exists {
        first_line: String,
    },
    Gone,
    Done,
    Source {
        state: SourceState,
    },
    /// Names of the directories under a snapshot root (complete and partial snapshots).
    Listing {
        names: Vec<String>,
    },
    Completed {
        name: String,
    },
    /// Per snapshot under the root, what the walk counted.
    Walked {
        snapshots: Vec<WalkedSnapshot>,
    },
    /// For each of the request's `dirs`, in order, whether it has each of its `paths`.
    Have {
        have: Vec<Vec<bool>>,
    },
    Pruned {
        removed: Vec<String>,
    },
    /// The request is not allowed (serve exits [`REFUSED`]).
    Refused {
        message: String,
    },
    /// The request was allowed but did not work (serve exits 1).
    Failed {
        message: String,
    },
}

/// One snapshot directory as a walk counted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WalkedSnapshot {
    pub name: String,
    /// Entries of every kind below it.
    pub files: u64,
    /// Bytes of its regular files, a file with several names in it once.
    pub apparent_bytes: u64,
    /// Bytes of the files no other snapshot under the root has.
    pub unique_bytes: u64,
}

/// serve's exit code for a refused request ("command cannot execute", as shells say).
pub const REFUSED: i32 = 126;

impl Request {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a Request always serialises");
        s.push('\n');
        s
    }
}

impl Reply {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a Reply always serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Endpoint, Hook, HookWhen, Location, Lock, OnFailure, Snapshot, Sync};

    fn at(host: &str, path: &str) -> Location {
        Location {
            host: host.into(),
            path: path.into(),
        }
    }

    fn spec() -> JobSpec {
        let ep = Endpoint {
            address: "b.lan".into(),
            port: 22,
            user: "root".into(),
            runner: "/usr/local/bin/bkc-run".into(),
        };
        let sync = |src: Location, dst: Location, snap: bool| Sync {
            source: src,
            dest: dst,
            opts: vec!["-a".into(), "--delete".into()],
            exclude: vec![],
            bwlimit: None,
            deletes: true,
            allow_empty_source: false,
            snapshot: snap.then(|| Snapshot {
                retention: Retention {
                    keep_daily: Some(7),
                    ..Default::default()
                },
                append_only: true,
            }),
            source_snapshot: None,
        };
        JobSpec {
            version: crate::spec::SPEC_VERSION,
            job: "j".into(),
            host: "a".into(),
            state_dir: "/var/lib/bkc/state".into(),
            metrics_dir: None,
            known_hosts: "/etc/bkc/known_hosts".into(),
            identity: None,
            hosts: [("b".to_string(), ep.clone()), ("c".to_string(), ep)].into(),
            every: None,
            timeout_secs: None,
            nice: None,
            io_class: None,
            retries: 0,
            retry_delay_secs: 1,
            locks: vec![Lock {
                at: at("b", "/run/bkc/locks/j.lock"),
                mode: LockMode::Exclusive,
                owner: "j".into(),
                wait_secs: 1,
                timeout_secs: 1,
            }],
            lock_files: vec![at("b", "/srv/lf"), at("a", "/srv/mine")],
            wait_files: vec![],
            hooks: vec![Hook {
                when: HookWhen::Before,
                host: "b".into(),
                command: Command::Argv(vec!["true".into()]),
                on_failure: OnFailure::Break,
            }],
            syncs: vec![
                sync(at("a", "/data/"), at("b", "/srv/plain/"), false),
                sync(at("a", "/data/"), at("b", "/srv/snaps/"), true),
                sync(at("b", "/srv/in/"), at("a", "/pulled/"), false),
                sync(at("b", "/srv/in/"), at("a", "/pulled-again/"), false),
            ],
            notify: vec![],
            ping: None,
            fresh_markers: vec![at("b", "/srv/plain/.bkc-fresh.j")],
            restore_to: vec![at("b", "/srv/in/"), at("c", "/var/tmp/r")],
            verify: None,
            slot: None,
            watch: None,
        }
    }

    #[test]
    fn a_host_gets_exactly_what_the_job_does_there() {
        let s = spec();
        let f = ServeFile::for_host(&s, "b").unwrap();
        assert_eq!(f.read, ["/srv/in/"]);
        assert_eq!(
            f.write,
            [WriteRoot {
                path: "/srv/plain/".into(),
                delete: true
            }]
        );
        assert_eq!(f.snapshots.len(), 1);
        assert!(f.snapshots[0].append_only);
        assert_eq!(f.locks.len(), 1);
        assert_eq!(f.lock_files, ["/srv/lf"]);
        assert_eq!(f.hooks.len(), 1);
        assert_eq!(f.fresh_markers, ["/srv/plain/.bkc-fresh.j"]);
        assert_eq!(f.from, "a");
        assert_eq!(ServeFile::from_json(&f.to_json()).unwrap(), f);
        assert!(ServeFile::for_host(&s, "a").is_none(), "the job's own host");
        assert!(
            ServeFile::for_host(&s, "c").is_some_and(|c| c.restore_to == ["/var/tmp/r"]),
            "only a restore target there"
        );
        let mut nothing = s.clone();
        nothing.restore_to.clear();
        assert!(
            ServeFile::for_host(&nothing, "c").is_none(),
            "nothing to do there"
        );
    }

    #[test]
    fn a_restore_writes_only_at_or_below_its_directories() {
        let f = ServeFile::for_host(&spec(), "b").unwrap();
        assert_eq!(f.restore_to, ["/srv/in/"]);
        for inside in ["/srv/in", "/srv/in/", "/srv/in/x/y", "//srv//in/x"] {
            assert_eq!(f.restore_root(inside), Some("/srv/in/"), "{inside}");
        }
        for outside in [
            "/srv",
            "/srv/inx",
            "/srv/in/../etc",
            "/srv/in/./x",
            "srv/in/x",
            "/",
        ] {
            assert_eq!(f.restore_root(outside), None, "{outside}");
        }
    }

    #[test]
    fn lines_round_trip() {
        let r = Request::SnapshotComplete {
            root: "/srv/snaps/".into(),
            partial: ".partial-2026-01-01T000000Z".into(),
            name: "2026-01-01T000000Z".into(),
        };
        let line = r.to_line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let reply = Reply::Exists {
            first_line: "x\ny".into(),
        };
        assert_eq!(
            serde_json::from_str::<Reply>(&reply.to_line()).unwrap(),
            reply
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"shell","cmd":"id"}"#).is_err());
    }
}
