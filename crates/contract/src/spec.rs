//! The job spec: the one contract between the compiler and the runner.
//!
//! `bkc build` writes one of these per job to `/etc/bkc/jobs/<job>.json`; `bkc-run` reads it and
//! needs nothing else. Every value is resolved at compile time: host addresses, ports, users, the
//! host and path of every lock the job takes or waits on. The runner never sees the topology.
//!
//! Hosts are always named. A location whose `host` equals [`JobSpec::host`] is local to the runner;
//! any other host is reached over SSH through its entry in [`JobSpec::hosts`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped on any change a runner of the previous version would misread.
pub const SPEC_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobSpec {
    pub version: u32,
    /// The job's name, as in `bkc-<job>.service`.
    pub job: String,
    /// The host this job runs on.
    pub host: String,
    /// Where the runner keeps `<job>.json`, the report of the last run.
    pub state_dir: String,
    /// Where the runner writes `bkc_<job>.prom` for node_exporter's textfile collector, if anywhere.
    pub metrics_dir: Option<String>,
    /// The pinned known_hosts file for every SSH connection the runner makes.
    pub known_hosts: String,
    /// The SSH private key the runner uses; `None` leaves the choice to ssh.
    pub identity: Option<String>,
    /// Every host the job reaches over SSH (never the job's own host).
    pub hosts: BTreeMap<String, Endpoint>,
    /// `every "4d"`: run only when the last success is at least this old.
    pub every: Option<Interval>,
    /// Give up the whole run after this many seconds.
    pub timeout_secs: Option<u64>,
    pub nice: Option<i32>,
    pub io_class: Option<IoClass>,
    /// Network failures of a sync are retried this many times.
    pub retries: u32,
    /// The first retry waits this long; each further one waits twice as long as the one before.
    pub retry_delay_secs: u64,
    /// Locks taken before anything else, already in the one global order (host, path), so that
    /// two runners can never deadlock. Own locks are exclusive; `blocks-on` locks are shared.
    pub locks: Vec<Lock>,
    /// Seed-style lock files created exclusively while the job runs and removed at the end.
    pub lock_files: Vec<Location>,
    /// Seed-style lock files this job waits on until they are gone.
    pub wait_files: Vec<WaitFile>,
    pub hooks: Vec<Hook>,
    pub syncs: Vec<Sync>,
    /// Commands told of the run's end (`bkc-run --notify`, started by systemd's `OnFailure=` and
    /// `OnSuccess=`). Absent from the file when there are none, as in specs before they existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
    /// A healthchecks.io-style URL: `/start` when the run begins, the URL itself on success,
    /// `/fail` with the run's last log lines on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<String>,
    /// Where the runner leaves a freshness marker at the end of each successful run: one per
    /// destination on another host, read there by `bkc-fresh-<job>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fresh_markers: Vec<Location>,
    /// Directories on other hosts a restore may write into (`restore-to`), through those hosts'
    /// serve: the job's key writes nowhere else there but its destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_to: Vec<Location>,
    /// `verify "weekly"`: compare the sources with their copies on a schedule of its own
    /// (`bkc-verify@<job>`), recording the result in the state file and the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<ScheduledVerify>,
    /// `max-parallel` of the job's host: once its locks are held, the run takes one of the
    /// host's slots before it does anything else, and gives it back at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// `watch "/srv/data" quiet="5m"`: the job also starts when something under these paths
    /// changes, once changes have been quiet for a while (`bkc-run watch`, as `bkc-watch@<job>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<Watch>,
}

/// The most slots a host may have (`max-parallel`): more would only be files nobody waits for.
pub const MAX_SLOTS: u32 = 1024;

/// The highest `priority`, and minus it the lowest.
pub const MAX_PRIORITY: i32 = 1000;

/// One of a host's `max-parallel` slots: a counting lock made of `count` files under `dir`, each
/// held with flock(2), so that the kernel frees a slot when its runner dies however it dies.
/// Waiters queue in `dir/queue/`: higher `priority` first, then the one waiting longest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Slot {
    /// The host's slot directory, under its lock directory.
    pub dir: String,
    /// How many jobs of the host may run at once.
    pub count: u32,
    /// The job's `priority`: among waiters, the higher goes first.
    pub priority: i32,
    /// Give up waiting for a slot after this long; none waits for as long as the run may.
    pub queue_timeout_secs: Option<u64>,
    /// How often a waiting run says that it waits.
    pub wait_secs: u64,
}

/// What `bkc-run watch` watches for a job, and how it starts the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Watch {
    /// Absolute paths on the job's host, each watched with everything below it.
    pub paths: Vec<String>,
    /// Start the job once changes have stopped for this long, and never more often.
    pub quiet_secs: u64,
    /// The file the watcher writes to start the job: `bkc-watch@<job>.path` watches it and
    /// starts the job's service, so the watcher itself needs no right to start units.
    pub trigger: String,
}

/// A job's scheduled verify: `bkc-verify@<job>.timer` starts `bkc-run verify --record` on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduledVerify {
    /// The timer's `OnCalendar=`, as written.
    pub calendar: String,
    /// Read and compare every byte, not only sizes and modification times.
    pub checksum: bool,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// A run ended with a result other than success or skipped, or its service failed.
    Failure,
    /// The last success is older than the job's `alert-after` (seen on the destination).
    Stale,
    /// A run succeeded after one that failed, or data arrived again after the job was stale.
    Recovery,
    /// A run succeeded.
    Success,
}

impl NotifyEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Failure => "failure",
            NotifyEvent::Stale => "stale",
            NotifyEvent::Recovery => "recovery",
            NotifyEvent::Success => "success",
        }
    }
}

/// A command run on the host where its event is seen, with `BKC_JOB`, `BKC_EVENT`,
/// `BKC_RESULT` and `BKC_MESSAGE` in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Notify {
    pub on: Vec<NotifyEvent>,
    pub command: Command,
}

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The bkc-run on that host: every remote step runs `<runner> serve <job>` there.
    pub runner: String,
}

/// A path on a named host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Location {
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Interval {
    pub secs: u64,
    /// The timer fires every `slack * 2` seconds; a run counts as due when the last success is
    /// older than `secs - slack`, so that timer jitter never pushes a run a whole period late.
    pub slack_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum IoClass {
    Realtime,
    BestEffort,
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// The job's own lock: while it is held, no job that blocks on this one can start.
    Exclusive,
    /// Another job's lock, held shared for the whole run: that job cannot start meanwhile, and
    /// any number of jobs blocking on it may still run side by side.
    Shared,
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    #[serde(flatten)]
    pub at: Location,
    pub mode: LockMode,
    /// For a shared lock, the job that owns it (named in timeout messages).
    pub owner: String,
    /// How long one blocking attempt lasts before the runner re-checks and logs that it waits.
    pub wait_secs: u64,
    /// Give up after this long in total.
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WaitFile {
    #[serde(flatten)]
    pub at: Location,
    pub wait_secs: u64,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum HookWhen {
    Before,
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Log the failure and go on as if the hook succeeded.
    Ignore,
    /// Go on, but mark the run failed.
    Continue,
    /// Stop the run here (after hooks still run).
    Break,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// One string: the admin's own command line, run through `sh -c` on its host.
    Shell(String),
    /// Several strings: an argv, run without a shell (quoted for the remote shell over SSH).
    Argv(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hook {
    pub when: HookWhen,
    pub host: String,
    pub command: Command,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sync {
    pub source: Location,
    pub dest: Location,
    /// rsync options, as written in the topology (default `-a`).
    pub opts: Vec<String>,
    pub exclude: Vec<String>,
    /// rsync `--bwlimit` value, already validated.
    pub bwlimit: Option<String>,
    /// True when `opts` deletes on the receiver: the runner then refuses a missing or empty source.
    pub deletes: bool,
    pub allow_empty_source: bool,
    /// Hardlinked snapshots under `dest`.
    pub snapshot: Option<Snapshot>,
    /// Copy from a read-only file-system snapshot of the source, taken once the job's locks are
    /// held, instead of from the live source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot: Option<SourceSnapshot>,
}

/// How a source is frozen for its sync (`source-snapshot` in the topology). The snapshot is
/// always found at `<source>/.bkc-snapshots/<job>.<sync>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum SourceSnapshot {
    /// A read-only btrfs snapshot of the source subvolume, taken by the run itself.
    Btrfs,
    /// A snapshot of the ZFS dataset mounted at the source, taken and mounted read-only outside
    /// the job's sandbox (`bkc-run take-source-snapshots`, under the job's locks).
    Zfs { dataset: String },
    /// A snapshot of the LVM volume (`VG/LV`) mounted at the source, with room for `size` of
    /// changes (lvcreate's `--size`), taken and mounted read-only as a ZFS one is.
    Lvm { volume: String, size: String },
}

impl SourceSnapshot {
    /// The word the topology writes.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSnapshot::Btrfs => "btrfs",
            SourceSnapshot::Zfs { .. } => "zfs",
            SourceSnapshot::Lvm { .. } => "lvm",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Snapshot {
    pub retention: Retention,
    /// Only for a destination on another host: the job may add snapshots there but never remove
    /// or change a complete one; the destination prunes them itself (`bkc-prune-<job>`), and
    /// names each new one by its own clock. The default for snapshots a job pushes.
    pub append_only: bool,
}

/// Snapshot retention. The newest complete snapshot is always kept, whatever these say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
}

impl JobSpec {
    /// Parse and check a spec as the runner reads it from disk.
    pub fn from_json(text: &str) -> Result<JobSpec, SpecError> {
        // Read the version alone first, so a spec from a newer bkc gets a message about versions
        // rather than about whichever field it added.
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned = serde_json::from_str(text).map_err(SpecError::Malformed)?;
        if v.version != SPEC_VERSION {
            return Err(SpecError::Version(v.version));
        }
        serde_json::from_str(text).map_err(SpecError::Malformed)
    }

    /// The JSON bkc writes: pretty, with a trailing newline, byte-stable for a given spec.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a JobSpec always serialises");
        s.push('\n');
        s
    }

    /// True when `host` is the runner's own host, so no SSH is needed to reach it.
    pub fn is_local(&self, host: &str) -> bool {
        host == self.host
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("job spec is not valid: {0}")]
    Malformed(serde_json::Error),
    #[error(
        "job spec version {0} is not understood by this bkc-run (it reads version {SPEC_VERSION}); install the bkc-run that matches the bkc that built it"
    )]
    Version(u32),
}
