//! The snapshot listing: what `bkc-run snapshots` prints for a job (one JSON line per job) and
//! what `bkc snapshots --json` prints for a fleet. Per sync of the job: its snapshots with their
//! time, state, file count, apparent and unique size, which one is `latest` and which ones the
//! next retention would prune; for a mirror sync, the time of the last successful run.

use serde::{Deserialize, Serialize};

/// Bumped on any change a reader of the previous version would misread.
pub const LISTING_VERSION: u32 = 1;

/// `bkc snapshots --json`: every job asked for, in the order of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SnapshotReport {
    pub version: u32,
    pub jobs: Vec<JobSnapshots>,
}

/// One job, as `bkc-run snapshots` prints it (one line of JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSnapshots {
    pub version: u32,
    pub job: String,
    /// The job's host: where the listing was made.
    pub host: String,
    /// When the job's last successful run ended (RFC 3339), from its state file.
    pub last_success: Option<String>,
    pub syncs: Vec<SyncSnapshots>,
}

/// How a sync keeps its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SyncKind {
    /// The destination is a copy of the source, updated in place by each run.
    Mirror,
    /// Each run makes a hardlinked snapshot under the destination.
    Snapshot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncSnapshots {
    /// The sync's number in the job, from 1, as `bkc restore --sync` takes it.
    pub sync: usize,
    /// `host:path`.
    pub source: String,
    /// `host:path`.
    pub dest: String,
    pub kind: SyncKind,
    /// Newest first; empty for a mirror.
    pub snapshots: Vec<Snapshot>,
    /// Why the destination could not be listed (an unreachable host), if it could not.
    pub error: Option<String>,
}

/// One snapshot directory under a sync's destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The directory's name, such as `2026-11-22T021500Z` or `.partial-2026-11-22T021500Z`.
    pub name: String,
    /// The start of the run that made it (RFC 3339, UTC).
    pub time: String,
    /// False for a `.partial-` directory: a run that did not finish, or one running now.
    pub complete: bool,
    /// The newest complete snapshot: what `bkc restore` takes by default.
    pub latest: bool,
    /// The retention would remove it if the job ran now.
    pub prune: bool,
    /// Entries under it (files, directories, links), itself not counted.
    pub files: u64,
    /// The bytes of its files, each file counted once however many names it has in it.
    pub apparent_bytes: u64,
    /// The bytes of its files that no other snapshot of this destination shares (hard links
    /// counted once): what removing it would free.
    pub unique_bytes: u64,
}

impl JobSnapshots {
    /// The line `bkc-run snapshots` prints: one JSON object and a newline.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a listing always serialises");
        s.push('\n');
        s
    }
}
