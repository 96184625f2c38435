//! The validated topology: what `analyze` produces and everything after it consumes.
//!
//! A [`Topology`] exists only when the file had no errors: every name resolves, every schedule
//! is translated, every lock is derived. Its fields are public to read; outside this crate it
//! cannot be built (`non_exhaustive`), and inside it only `analyze` builds one, so no later
//! stage can meet an unchecked value.

use std::collections::BTreeMap;

use crate::spec::JobSpec;

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Topology {
    pub hosts: BTreeMap<String, Host>,
    pub jobs: BTreeMap<String, Job>,
    /// Exclusions bkc added because two jobs touch the same data and the file did not relate them.
    pub derived: Vec<Derived>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub host_keys: Vec<String>,
    pub tags: Vec<String>,
    pub lock_dir: String,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub host: String,
    pub description: Option<String>,
    pub timer: Option<Timer>,
    pub service: Service,
    /// What `bkc-run` reads on the host.
    pub spec: JobSpec,
    /// Jobs this one waits on: written in the file, or derived.
    pub blocks_on: Vec<Relation>,
    /// For planning tools (`simulate`): how long a run is expected to take, in seconds.
    pub expected_duration: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub job: String,
    pub derived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// `OnCalendar=` lines; systemd fires when any of them elapses.
    pub on_calendar: Vec<String>,
    /// How a person would say it: "daily", "cron 0 3 */4 * *", "every 4d".
    pub describe: String,
    pub persistent: bool,
    pub random_delay_secs: Option<u64>,
    pub accuracy_secs: Option<u64>,
}

/// What the service unit needs beyond the spec: its sandbox and its runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub runner: String,
    /// Local paths the job writes; everything else is read-only under `ProtectSystem=strict`.
    pub read_write_paths: Vec<String>,
    /// True when a writable path lies under /home, /root or /run/user.
    pub writes_home: bool,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The job that now waits.
    pub job: String,
    /// The job it waits on.
    pub blocks_on: String,
    /// Where the two meet, as `host:/path`.
    pub overlap: String,
}
