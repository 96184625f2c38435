//! The event lines: bkc-run prints one JSON object per line on stdout while it runs, for the
//! journal and for anyone piping the runner. Every line starts with `job`, `run` and `event`, so
//! a person reading the journal sees them before the figures; the other fields follow in
//! alphabetical order, the order the lines had before they were typed.

use serde::{Deserialize, Serialize};

use crate::spec::{HookWhen, LockMode, OnFailure};
use crate::state::RunResult;
use crate::verify::VerifyReport;

/// Bumped on any change a reader of the previous version would misread.
pub const EVENT_VERSION: u32 = 1;

/// One line: the job, the run's id, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventLine {
    pub job: String,
    pub run: String,
    #[serde(flatten)]
    pub event: Event,
}

impl EventLine {
    /// The line as bkc-run prints it, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("an event always serialises");
        s.push('\n');
        s
    }
}

/// What an rsync exit code means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SyncClass {
    Ok,
    /// 24: files vanished on the sender while it ran; normal on a live filesystem.
    Warning,
    /// The link, not the data: worth retrying (10 socket I/O, 12 protocol stream, 30 timeout in
    /// data send/receive, 35 timeout waiting for daemon connection, 255 ssh failed).
    Network,
    Failed,
}

/// Every kind of line, by its `event` field. Times are seconds; places are `host:path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// An `every` job that is not due: nothing else happens but `end`.
    Skipped {
        reason: String,
    },
    /// A lock is held.
    Locked {
        lock: String,
        mode: LockMode,
        waited_secs: f64,
    },
    /// One of the host's `max-parallel` slots is held.
    Slot {
        count: u32,
        waited_secs: f64,
    },
    /// Still waiting for a lock or for a wait file to go; repeated while the wait lasts.
    LockWait(LockWait),
    /// A wait file that was waited for has gone.
    WaitEnd {
        file: String,
        waited_secs: f64,
    },
    /// A seed-style lock file was created.
    LockFile {
        file: String,
    },
    /// What a dry run would have done.
    DryRun {
        would: String,
    },
    /// A hook ran.
    Hook {
        command: String,
        error: Option<String>,
        host: String,
        ok: bool,
        on_failure: OnFailure,
        secs: f64,
        when: HookWhen,
    },
    /// One attempt of a sync begins; `index` is the sync's place in the spec.
    SyncStart {
        argv: Vec<String>,
        attempt: u32,
        dest: String,
        dry_run: bool,
        index: usize,
        source: String,
    },
    SyncEnd {
        attempt: u32,
        bytes_received: u64,
        bytes_sent: u64,
        class: SyncClass,
        exit_code: i32,
        index: usize,
        secs: f64,
    },
    /// A network failure of a sync; the next attempt comes after `delay_secs`.
    Retry {
        attempt: u32,
        delay_secs: u64,
        exit_code: i32,
        index: usize,
    },
    /// A snapshot is complete; `base` is the snapshot it hardlinks unchanged files to.
    Snapshot {
        base: Option<String>,
        dest: String,
        index: usize,
        name: String,
    },
    /// Retention removed these snapshots.
    Prune {
        dest: String,
        index: usize,
        removed: Vec<String>,
    },
    Warning {
        message: String,
    },
    /// `bkc-run restore`: what is copied back, from where to where, once the job's locks are
    /// held. `from` is the snapshot (or mirror) directory, `paths` are relative to it (none: all
    /// of it), `to` is the directory that receives them.
    Restore {
        delete: bool,
        dry_run: bool,
        from: String,
        paths: Vec<String>,
        snapshot: Option<String>,
        sync: usize,
        to: String,
    },
    /// One item a restore changes (or would change), as rsync itemizes it (`>f+++++++++`,
    /// `*deleting`); `path` is relative to the restore's `to`.
    Change {
        itemized: String,
        path: String,
    },
    /// `bkc-run restore --confirm`: the changes above are what an in-place restore would do; it
    /// goes ahead only when the next line on its standard input is `yes`.
    Confirm {
        changes: u64,
    },
    /// `bkc-run verify`: the comparison of every sync, before `end`.
    Verified {
        report: VerifyReport,
    },
    /// Something made the run fail; `result` is what it made of the run.
    Error {
        message: String,
        result: RunResult,
    },
    /// The last line of every run.
    End {
        bytes_received: u64,
        bytes_sent: u64,
        dry_run: bool,
        exit_code: i32,
        lock_wait_secs: f64,
        message: Option<String>,
        result: RunResult,
        secs: f64,
    },
}

/// A `lock-wait` line: for a lock (flock), or for a seed-style wait file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum LockWait {
    Lock {
        /// Who holds it, as its lock file says; empty when nobody wrote.
        holder: String,
        lock: String,
        mode: LockMode,
        /// The job that owns the lock.
        owner: String,
        waited_secs: f64,
        /// In words: whom this run waits for.
        waiting_for: String,
    },
    File {
        file: String,
        holder: String,
        waited_secs: f64,
    },
    /// Waiting for one of the host's `max-parallel` slots.
    Slot {
        /// Live waiters that go before this run.
        ahead: usize,
        /// The host's `max-parallel`.
        count: u32,
        priority: i32,
        waited_secs: f64,
        /// In words: who holds the slots, and who is ahead.
        waiting_for: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: Event) -> String {
        EventLine {
            job: "j\"1".into(),
            run: "r".into(),
            event,
        }
        .to_line()
    }

    #[test]
    fn identifying_keys_come_first_then_fields_in_order() {
        let l = line(Event::Locked {
            lock: "a:/l".into(),
            mode: LockMode::Shared,
            waited_secs: 1.5,
        });
        assert_eq!(
            l,
            "{\"job\":\"j\\\"1\",\"run\":\"r\",\"event\":\"locked\",\"lock\":\"a:/l\",\"mode\":\"shared\",\"waited_secs\":1.5}\n"
        );
    }

    #[test]
    fn lines_read_back_as_what_was_written() {
        let events = [
            Event::LockWait(LockWait::File {
                file: "b:/x".into(),
                holder: String::new(),
                waited_secs: 0.0,
            }),
            Event::LockWait(LockWait::Lock {
                holder: "job x".into(),
                lock: "a:/l".into(),
                mode: LockMode::Exclusive,
                owner: "x".into(),
                waited_secs: 2.0,
                waiting_for: "job x".into(),
            }),
            Event::End {
                bytes_received: 1,
                bytes_sent: 2,
                dry_run: false,
                exit_code: 3,
                lock_wait_secs: 0.5,
                message: None,
                result: RunResult::LockFailed,
                secs: 4.0,
            },
        ];
        for e in events {
            let l = line(e.clone());
            let back: EventLine = serde_json::from_str(&l).unwrap();
            assert_eq!(back.event, e, "{l}");
        }
    }
}
