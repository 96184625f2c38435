//! The run state file, `<state-dir>/<job>.json`: how the last run of a job went, and what runs
//! carry over to the next (the last success, the run counts). bkc-run writes it at the end of
//! every run that is not a dry run; `bkc status` and anyone's monitoring read it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Bumped on any change a reader of the previous version would misread. Files written before
/// the version was recorded read as version 0 and mean the same as version 1.
pub const STATE_VERSION: u32 = 1;

/// Where the state file of `job` is, under the spec's `state-dir`.
pub fn state_file(state_dir: &str, job: &str) -> String {
    format!("{}/{job}.json", state_dir.trim_end_matches('/'))
}

/// How a run ended. The same words are the `result` of the `end` and `error` events, the
/// `result` label of `bkc_runs_total`, and `BKC_RESULT` for after hooks. The variants are in
/// alphabetical order, so `runs_total` keeps the order it had as a map of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// A before hook whose policy is `break` failed (exit 4).
    Break,
    /// The spec could not be used (exit 2).
    Error,
    /// A sync failed, or a hook whose policy is `continue` (exit 1).
    Failed,
    /// A signal stopped the run (exit 128 + the signal).
    Interrupted,
    /// A lock, lock file or wait file could not be had (exit 3).
    LockFailed,
    /// A sync's source was missing or empty and the sync deletes or snapshots; or a restore
    /// would have written into a directory that is not empty, or found nothing to restore (exit 5).
    Refused,
    /// An `every` job that was not due yet (exit 0).
    Skipped,
    /// Everything ran and every sync succeeded (exit 0).
    Success,
    /// The run's own timeout, or a lock's, passed (exit 6).
    Timeout,
}

impl RunResult {
    pub const ALL: [RunResult; 9] = [
        RunResult::Break,
        RunResult::Error,
        RunResult::Failed,
        RunResult::Interrupted,
        RunResult::LockFailed,
        RunResult::Refused,
        RunResult::Skipped,
        RunResult::Success,
        RunResult::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Skipped => "skipped",
            RunResult::Failed => "failed",
            RunResult::Error => "error",
            RunResult::LockFailed => "lock-failed",
            RunResult::Break => "break",
            RunResult::Refused => "refused",
            RunResult::Timeout => "timeout",
            RunResult::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sync's figures in the state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct SyncReport {
    /// `host:path`.
    pub source: String,
    /// `host:path`.
    pub dest: String,
    /// Exit code of each attempt, in order.
    pub exit_codes: Vec<i32>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The name of the snapshot this sync completed.
    pub snapshot: Option<String>,
}

/// The state file. Unknown or missing fields read as defaults, so an older file never stops a
/// run; a damaged one is reported and the run starts afresh.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct RunState {
    pub version: u32,
    pub job: String,
    /// The run's id, as in its event lines.
    pub run: String,
    /// RFC 3339.
    pub start: Option<String>,
    /// RFC 3339.
    pub end: Option<String>,
    pub duration_secs: f64,
    pub result: Option<RunResult>,
    pub exit_code: i32,
    /// Why the run was skipped, or what made it fail.
    pub reason: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub lock_wait_secs: f64,
    /// Time the run waited for one of its host's `max-parallel` slots.
    #[serde(skip_serializing_if = "is_zero")]
    pub slot_wait_secs: f64,
    /// While a run waits for a slot: since when (RFC 3339). Written when the wait begins and
    /// gone from the file the run writes at its end; a reader trusts it only while the job's
    /// service is running (a killed run leaves it behind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_since: Option<String>,
    pub syncs: Vec<SyncReport>,
    /// Kept across runs: the end of the last successful run (RFC 3339).
    pub last_success: Option<String>,
    /// Kept across runs: when the last successful run began. `every` counts from here, so an
    /// `every "4d"` job starts every four days however long each run takes (as anacron does).
    pub last_success_start: Option<String>,
    /// Kept across runs: how many runs ended with each result.
    pub runs_total: BTreeMap<RunResult, u64>,
    /// The result of the last run before this one that was not skipped: a success after a
    /// failure is a recovery.
    pub previous_result: Option<RunResult>,
    /// systemd's `INVOCATION_ID` of the service run that wrote this file, so that the
    /// notification of a service's end can tell whether this report is that run's.
    pub invocation: Option<String>,
    /// The last recorded verify (`bkc-run verify --record`, what `bkc-verify@<job>` runs). A run
    /// keeps it as it found it; a verify changes nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyState>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// How the last recorded verify of the job went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct VerifyState {
    /// The verify's id, as in its event lines.
    pub run: String,
    /// RFC 3339.
    pub start: Option<String>,
    /// RFC 3339.
    pub end: Option<String>,
    pub duration_secs: f64,
    /// `success` (nothing corrupted or missing), `failed` (something was), `error` (a sync could
    /// not be compared), `lock-failed`, `interrupted`.
    pub result: Option<RunResult>,
    pub exit_code: i32,
    /// Every byte was read and compared.
    pub checksum: bool,
    /// The counts of findings by class, over every sync compared.
    pub corrupted: u64,
    pub missing: u64,
    pub changed: u64,
    /// What was found, or why the comparison failed.
    pub reason: Option<String>,
    /// Kept across verifies: the end of the last verify that found nothing wrong (RFC 3339).
    pub last_success: Option<String>,
    /// systemd's `INVOCATION_ID` of the service run that wrote it (see [`RunState::invocation`]).
    pub invocation: Option<String>,
}

impl VerifyState {
    /// Files found corrupted or missing: what makes a verify fail.
    pub fn problems(&self) -> u64 {
        self.corrupted + self.missing
    }
}

impl RunResult {
    /// Whether a run with this result went wrong (`skipped` is an `every` job not due).
    pub fn is_failure(self) -> bool {
        !matches!(self, RunResult::Success | RunResult::Skipped)
    }
}

impl RunState {
    /// The JSON bkc-run writes: pretty, with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a RunState always serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_written_as_their_names_and_sort_as_them() {
        for w in RunResult::ALL.windows(2) {
            assert!(w[0] < w[1] && w[0].as_str() < w[1].as_str(), "{w:?}");
        }
        for r in RunResult::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }

    #[test]
    fn an_older_file_reads_with_defaults() {
        let s: RunState = serde_json::from_str(
            r#"{"last_success":"2026-01-01T00:00:00Z","result":"lock-failed","runs_total":{"success":3},"future":1}"#,
        )
        .unwrap();
        assert_eq!(s.version, 0);
        assert_eq!(s.result, Some(RunResult::LockFailed));
        assert_eq!(s.runs_total[&RunResult::Success], 3);
        assert_eq!(s.last_success.as_deref(), Some("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn a_state_without_a_verify_is_written_as_before() {
        let s = RunState::default();
        assert!(!s.to_json().contains("verify"));
        let with = RunState {
            verify: Some(VerifyState {
                result: Some(RunResult::Failed),
                corrupted: 1,
                missing: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let back: RunState = serde_json::from_str(&with.to_json()).unwrap();
        assert_eq!(back, with);
        assert_eq!(back.verify.unwrap().problems(), 3);
    }

    #[test]
    fn state_file_path() {
        assert_eq!(state_file("/var/lib/bkc/", "a.b"), "/var/lib/bkc/a.b.json");
    }
}
