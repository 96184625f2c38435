//! The topology as written: every value with the span it came from, nothing resolved yet.
//!
//! Lowering guarantees only the shape (a `port` is an integer, a `sync` has two strings); whether
//! names exist, paths are absolute or schedules make sense is `analyze`'s business.

use miette::SourceSpan;

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: SourceSpan) -> Spanned<T> {
        Spanned { value, span }
    }
}

pub type Str = Spanned<String>;

#[derive(Debug, Default)]
pub struct File {
    pub defaults: Option<Defaults>,
    pub hosts: Vec<Host>,
    pub jobs: Vec<Job>,
}

#[derive(Debug)]
pub struct Defaults {
    pub span: SourceSpan,
    pub user: Option<Str>,
    pub port: Option<Spanned<i128>>,
    pub identity: Option<Str>,
    pub lock_dir: Option<Str>,
    pub state_dir: Option<Str>,
    pub metrics_dir: Option<Str>,
    pub runner: Option<Str>,
    pub lock_wait: Option<Str>,
    pub lock_timeout: Option<Str>,
    /// `"restricted"` (a key per job, a forced command per edge) or `"operator"` (one identity).
    pub ssh_keys: Option<Str>,
    /// The default `max-parallel` of every host.
    pub max_parallel: Option<Spanned<i128>>,
}

#[derive(Debug)]
pub struct Host {
    pub span: SourceSpan,
    pub name: Str,
    pub address: Option<Str>,
    pub port: Option<Spanned<i128>>,
    pub user: Option<Str>,
    pub lock_dir: Option<Str>,
    /// At most this many of the host's jobs run at once.
    pub max_parallel: Option<Spanned<i128>>,
    pub host_keys: Vec<Str>,
    pub tags: Vec<Str>,
}

#[derive(Debug)]
pub struct Job {
    pub span: SourceSpan,
    pub name: Str,
    pub on: Option<Str>,
    pub description: Option<Str>,
    pub schedules: Vec<Str>,
    pub crons: Vec<Str>,
    pub every: Option<Str>,
    pub persistent: Option<Spanned<bool>>,
    pub random_delay: Option<Str>,
    pub accuracy: Option<Str>,
    pub blocks_on: Vec<BlocksOn>,
    pub lock_files: Vec<LockFile>,
    /// `restore-to`: directories on hosts the job reaches that a restore may write into.
    pub restore_to: Vec<LockFile>,
    pub blocks_on_files: Vec<BlocksOnFile>,
    pub syncs: Vec<Sync>,
    pub nice: Option<Spanned<i128>>,
    pub io_class: Option<Str>,
    pub bwlimit: Option<Str>,
    pub timeout: Option<Str>,
    pub retries: Option<Retries>,
    pub hooks: Vec<Hook>,
    pub allow_empty_source: Option<Spanned<bool>>,
    pub expected_duration: Option<Str>,
    /// The longest a job may go without a successful run before it counts as stale.
    pub alert_after: Option<Str>,
    pub notify: Vec<Notify>,
    pub ping: Option<Str>,
    /// The public half of the job's own SSH key, pinned.
    pub key: Option<Str>,
    /// `verify "weekly" checksum=#true`: compare the copies on a schedule of their own.
    pub verify: Option<Verify>,
    /// Among the jobs of a host waiting for a `max-parallel` slot, the higher goes first.
    pub priority: Option<Spanned<i128>>,
    /// How long a run may wait for a `max-parallel` slot.
    pub queue_timeout: Option<Str>,
    /// `watch "/srv/data" quiet="5m"`, repeatable: also start the job when files there change.
    pub watch: Vec<Watch>,
}

#[derive(Debug)]
pub struct Watch {
    pub span: SourceSpan,
    pub path: Str,
    /// How long changes must stop before the job starts; a duration, as `timeout` takes.
    pub quiet: Option<Str>,
}

#[derive(Debug)]
pub struct Verify {
    pub span: SourceSpan,
    /// A calendar, as `schedule` takes.
    pub calendar: Str,
    pub checksum: Option<Spanned<bool>>,
}

#[derive(Debug)]
pub struct Notify {
    pub span: SourceSpan,
    /// `on="failure"`, or several events separated by commas.
    pub on: Option<Str>,
    /// One string: a shell line. Several: an argv.
    pub command: Vec<Str>,
}

/// A duration may be written as a string ("5m") or as a number of seconds (300); both arrive
/// here as text and `analyze` parses them with one parser.
#[derive(Debug)]
pub struct BlocksOn {
    pub span: SourceSpan,
    pub job: Str,
    pub wait: Option<Str>,
    pub timeout: Option<Str>,
}

/// A path on a host: the job's own unless `host` names another (`lock-file`, `restore-to`).
#[derive(Debug)]
pub struct LockFile {
    pub span: SourceSpan,
    pub path: Str,
    pub host: Option<Str>,
}

#[derive(Debug)]
pub struct BlocksOnFile {
    pub span: SourceSpan,
    pub path: Str,
    pub host: Option<Str>,
    pub wait: Option<Str>,
    pub timeout: Option<Str>,
}

#[derive(Debug)]
pub struct Sync {
    pub span: SourceSpan,
    pub source: Str,
    pub dest: Str,
    pub opts: Option<Vec<Str>>,
    pub exclude: Vec<Str>,
    pub bwlimit: Option<Str>,
    pub snapshot: Option<Snapshot>,
    pub allow_empty_source: Option<Spanned<bool>>,
    /// `source-snapshot "btrfs"`: copy from a file-system snapshot of the source.
    pub source_snapshot: Option<SourceSnapshot>,
}

/// `source-snapshot "btrfs"`, `"zfs" dataset="pool/home"` or `"lvm" volume="vg0/home" size="5G"`.
#[derive(Debug)]
pub struct SourceSnapshot {
    pub span: SourceSpan,
    pub kind: Str,
    pub dataset: Option<Str>,
    pub volume: Option<Str>,
    pub size: Option<Str>,
}

#[derive(Debug)]
pub struct Snapshot {
    pub span: SourceSpan,
    pub keep_last: Option<Spanned<i128>>,
    pub keep_daily: Option<Spanned<i128>>,
    pub keep_weekly: Option<Spanned<i128>>,
    pub keep_monthly: Option<Spanned<i128>>,
    pub append_only: Option<Spanned<bool>>,
}

#[derive(Debug)]
pub struct Retries {
    pub span: SourceSpan,
    pub count: Spanned<i128>,
    pub delay: Option<Str>,
}

#[derive(Debug)]
pub struct Hook {
    pub span: SourceSpan,
    pub when: Str,
    /// One string: a shell line. Several: an argv.
    pub command: Vec<Str>,
    pub host: Option<Str>,
    pub on_failure: Option<Str>,
    /// A local path the hook writes, opened in the service's sandbox.
    pub writes: Option<Str>,
}
