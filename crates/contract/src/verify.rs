//! The verify report: what `bkc-run verify` found when it compared a job's sources with their
//! destinations (rsync in dry-run, with itemized changes), and what `bkc verify --json` prints.
//! bkc-run sends it as the `verified` event; docs/RESTORE.md explains the classes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bumped on any change a reader of the previous version would misread.
pub const VERIFY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyReport {
    pub version: u32,
    pub job: String,
    /// The job's host: where the comparison ran.
    pub host: String,
    /// Every byte was read and compared (`--checksum`), not only sizes and times.
    pub checksum: bool,
    /// When the job's last successful run began (RFC 3339): a mirror's files changed at the
    /// source since then are expected to differ.
    pub last_success_start: Option<String>,
    pub syncs: Vec<SyncVerify>,
}

/// One sync's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncVerify {
    /// The sync's number in the job, from 1.
    pub sync: usize,
    /// `host:path`.
    pub source: String,
    /// `host:path` of what was compared: the mirror, or the latest complete snapshot.
    pub compared: String,
    /// The snapshot compared, for a snapshot sync.
    pub snapshot: Option<String>,
    /// Source files changed at or after this time (RFC 3339) are expected to differ: the
    /// snapshot's run start, or the last successful run's start for a mirror.
    pub since: Option<String>,
    pub findings: Vec<Finding>,
    /// Why this sync could not be compared; nothing was found then.
    pub error: Option<String>,
}

/// One difference between a source and its copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Finding {
    pub class: Class,
    /// Relative to the sync's source, as rsync names it (a directory ends with `/`).
    pub path: String,
    /// rsync's itemized change (`>fc.t......`, `*deleting`), which says what differs.
    pub itemized: String,
    /// The source's modification time (RFC 3339), when it has one.
    pub source_mtime: Option<String>,
}

/// What a difference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Changed at the source since the copy was made (or deleted there, or only its
    /// attributes differ): expected, the next run takes it.
    Changed,
    /// Content or size differs though the source has not changed since the copy was made: bit
    /// rot or tampering on one side.
    Corrupted,
    /// In the source since before the copy was made, and not in the copy.
    Missing,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Changed => "changed",
            Class::Corrupted => "corrupted",
            Class::Missing => "missing",
        }
    }

    /// Whether this finding makes `verify` fail.
    pub fn is_fault(self) -> bool {
        self != Class::Changed
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl VerifyReport {
    /// How many findings of `class` there are, over every sync.
    pub fn count(&self, class: Class) -> usize {
        self.syncs
            .iter()
            .flat_map(|s| &s.findings)
            .filter(|f| f.class == class)
            .count()
    }

    /// Something corrupted or missing was found.
    pub fn has_faults(&self) -> bool {
        self.syncs
            .iter()
            .flat_map(|s| &s.findings)
            .any(|f| f.class.is_fault())
    }

    /// A sync could not be compared.
    pub fn has_errors(&self) -> bool {
        self.syncs.iter().any(|s| s.error.is_some())
    }
}
