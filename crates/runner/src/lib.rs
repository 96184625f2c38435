//! `bkc-run`: execute one job from its spec. The order of a run:
//!
//! 1. read and check the spec; an `every` job that is not due is skipped;
//! 2. take the locks in the spec's order (the compiler sorted them, which is what rules out
//!    deadlocks between runners), wait for seed-style wait files, create seed-style lock files
//!    (and start over if a wait file appeared meanwhile);
//!    then take one of the host's `max-parallel` slots, if it has them (slot.rs);
//! 3. before hooks, syncs (with retries, snapshots), pruning after a fully successful run,
//!    after hooks;
//! 4. release everything, write the state file and metrics, exit with a documented code.
//!
//! This crate depends on `bkc-contract` (the job spec it reads, and the state file, events,
//! metrics and lock-file lines it writes) and on no crate of the compiler: the runner ships to
//! every host and must not drag the compiler along.

mod child;
mod freeze;
mod fresh;
mod hold;
mod hooks;
mod inotify;
mod itemize;
mod journal;
pub mod listing;
mod lock;
mod notify;
mod ping;
mod report;
pub mod restore;
mod rsync;
mod serve;
mod slot;
mod snapshot;
mod ssh;
mod sync;
pub mod verify;
mod volume;
mod wait;
pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bkc_contract::event::Event;
use bkc_contract::lockfile::Holder;
use bkc_contract::names;
use bkc_contract::serve::{HookResult, Reply, Request};
use bkc_contract::spec::{
    HookWhen, IoClass, JobSpec, Location, Lock, MAX_PRIORITY, MAX_SLOTS, OnFailure, SourceSnapshot,
    Sync, WaitFile,
};
use bkc_contract::state::{RunResult, RunState, STATE_VERSION, SyncReport};
use jiff::Timestamp;

use child::Stop;
use lock::Held;
use report::Reporter;

/// Exit codes of `bkc-run`; docs/RUNNER.md explains each.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const LOCK: i32 = 3;
    pub const HOOK_BREAK: i32 = 4;
    pub const EMPTY_SOURCE: i32 = 5;
    pub const TIMEOUT: i32 = 6;
}

/// Set to an RFC 3339 time to make the run believe it started then (snapshot names, retention,
/// `every`). For tests and for replaying a schedule; never needed in production.
pub const NOW_ENV: &str = "BKC_RUN_NOW";

pub struct Options {
    pub spec: PathBuf,
    pub dry_run: bool,
    pub mode: Mode,
}

/// What `bkc-run` is asked to do with the file it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the job of a job spec.
    Run,
    /// Tell the job's notify commands how its last run ended (systemd's `OnFailure=` and
    /// `OnSuccess=` start this).
    Notify,
    /// Check a freshness spec: has the job's data arrived here recently enough?
    Fresh,
}

/// Why part of a run could not go on.
pub(crate) enum Fail {
    Spec(String),
    /// A lock, lock file or wait file could not be had (other than by timing out).
    Lock(String),
    LockTimeout(String),
    /// The run's own `timeout` passed.
    Timeout(String),
    Stopped(Stop),
}

impl Fail {
    pub fn message(&self) -> String {
        match self {
            Fail::Spec(m) | Fail::Lock(m) | Fail::LockTimeout(m) | Fail::Timeout(m) => m.clone(),
            Fail::Stopped(Stop::Signal(s)) => format!("stopped by signal {s}"),
            Fail::Stopped(Stop::Deadline) => "the run's timeout passed".into(),
        }
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    /// A sync failed, or a hook whose policy is `continue`.
    Failed,
    Spec,
    Lock,
    Break,
    Refused,
    Timeout,
    Interrupted(i32),
}

impl Outcome {
    fn result(self) -> RunResult {
        match self {
            Outcome::Success => RunResult::Success,
            Outcome::Failed => RunResult::Failed,
            Outcome::Spec => RunResult::Error,
            Outcome::Lock => RunResult::LockFailed,
            Outcome::Break => RunResult::Break,
            Outcome::Refused => RunResult::Refused,
            Outcome::Timeout => RunResult::Timeout,
            Outcome::Interrupted(_) => RunResult::Interrupted,
        }
    }

    fn exit_code(self) -> i32 {
        match self {
            Outcome::Success => exit::SUCCESS,
            Outcome::Failed => exit::FAILED,
            Outcome::Spec => exit::USAGE,
            Outcome::Lock => exit::LOCK,
            Outcome::Break => exit::HOOK_BREAK,
            Outcome::Refused => exit::EMPTY_SOURCE,
            Outcome::Timeout => exit::TIMEOUT,
            Outcome::Interrupted(sig) => 128 + sig,
        }
    }

    /// Outcomes after which nothing more runs but the after hooks.
    fn stops(self) -> bool {
        !matches!(self, Outcome::Success | Outcome::Failed | Outcome::Refused)
    }
}

/// What every part of the run needs to know.
pub(crate) struct Ctx {
    pub spec: JobSpec,
    pub report: Reporter,
    /// The holder line written into lock files: one JSON object.
    pub holder: String,
    pub deadline: Option<Instant>,
    pub dry_run: bool,
    pub start: Timestamp,
    pub boot_id: String,
    pub hostname: String,
}

impl Ctx {
    pub fn stale(&self, content: &str) -> Option<String> {
        lock::stale(
            content,
            &[self.spec.host.as_str(), self.hostname.as_str()],
            &self.boot_id,
        )
    }

    /// Ask `bkc-run serve` on `host` for `req` within the run's deadline; see [`request`].
    pub fn request(&self, host: &str, req: &Request) -> Result<Reply, Fail> {
        request(&self.spec, host, req, self.deadline)
    }

    fn say(&self, what: &str) {
        report::say!("bkc-run: {}: {what}", self.spec.job);
    }
}

/// The run's mutable record.
struct Run {
    outcome: Outcome,
    reason: Option<String>,
    held: Vec<Held>,
    lock_wait: Duration,
    slot_wait: Duration,
    syncs: Vec<SyncReport>,
    /// Syncs whose snapshot completed, with the entries now under their dest (we hold the
    /// locks, so nobody else changed them), pruned once the whole run has succeeded.
    /// The entry is the sync's index, the snapshot it made and the names.
    snapshotted: Vec<(usize, String, Vec<String>)>,
}

impl Run {
    fn new() -> Run {
        Run {
            outcome: Outcome::Success,
            reason: None,
            held: Vec::new(),
            lock_wait: Duration::ZERO,
            slot_wait: Duration::ZERO,
            syncs: Vec::new(),
            snapshotted: Vec::new(),
        }
    }

    /// Record a failure. The first outcome that stops the run wins; a plain failure never hides
    /// one that stops, and a later stopping one replaces a plain failure.
    fn fail(&mut self, ctx: &Ctx, o: Outcome, msg: String) {
        ctx.say(&format!("error: {msg}"));
        ctx.report.event(Event::Error {
            message: msg.clone(),
            result: o.result(),
        });
        let replace = match self.outcome {
            Outcome::Success => true,
            Outcome::Failed | Outcome::Refused => o.stops(),
            _ => false,
        };
        if replace {
            self.outcome = o;
            self.reason = Some(msg);
        }
    }

    /// Record a failure while taking locks, lock files and waits: a lock that cannot be had is
    /// `lock-failed` (exit 3). [`outcome_of`] maps the same failures inside a sync differently
    /// on purpose.
    fn fail_with(&mut self, ctx: &Ctx, f: Fail) {
        let o = match &f {
            Fail::Spec(_) => Outcome::Spec,
            Fail::Lock(_) | Fail::LockTimeout(_) => Outcome::Lock,
            Fail::Timeout(_) | Fail::Stopped(Stop::Deadline) => Outcome::Timeout,
            Fail::Stopped(Stop::Signal(s)) => Outcome::Interrupted(*s),
        };
        self.fail(ctx, o, f.message());
    }
}

/// `bkc-run serve <job> ...` with the words after `serve`; returns the process exit code.
pub fn serve(args: &[std::ffi::OsString]) -> i32 {
    serve::main(args)
}

/// `bkc-run prune <job>`: retention for the job's append-only snapshots on this host.
pub fn prune(args: &[std::ffi::OsString]) -> i32 {
    serve::prune(args)
}

/// `bkc-run drop-source-snapshots <spec>`: delete the job's source snapshots (the unit runs it
/// outside the sandbox before and after the job); returns the exit code.
pub fn drop_source_snapshots(path: &std::path::Path) -> i32 {
    match load_spec(path) {
        Ok(spec) => freeze::drop_all(&spec),
        Err(m) => {
            eprintln!("bkc-run: {m}");
            exit::USAGE
        }
    }
}

/// `bkc-run take-source-snapshots <spec>`: take and mount the job's ZFS and LVM source
/// snapshots, holding the job's locks meanwhile (so that no job of the chain is halfway through
/// writing the source), outside the sandbox, which cannot (the unit runs it after
/// `drop-source-snapshots`, before the run). A snapshot that cannot be had is said here and
/// fails its sync in the run, which records why; so this exits 0 but for a spec it cannot read.
pub fn take_source_snapshots(path: &std::path::Path) -> i32 {
    let (spec, start) = match load_spec(path).and_then(|s| Ok((s, now()?))) {
        Ok(v) => v,
        Err(m) => {
            eprintln!("bkc-run: {m}");
            return exit::USAGE;
        }
    };
    if !spec.syncs.iter().any(|s| volume::kind(s).is_some()) {
        return exit::SUCCESS;
    }
    child::install_signal_handlers();
    let run_id = format!("{}-snapshots", start.strftime("%Y%m%dT%H%M%SZ"));
    let ctx = new_ctx(spec, start, &run_id, false);
    let mut run = Run::new();
    take_locks(&ctx, &mut run);
    if run.outcome.stops() {
        ctx.say("source snapshots not taken: the job's locks could not be had");
    } else {
        volume::take_all(&ctx.spec);
    }
    while let Some(h) = run.held.pop() {
        lock::release(&ctx, h);
    }
    exit::SUCCESS
}

/// Read and check the spec at `path`, or say why it cannot be used.
pub(crate) fn load_spec(path: &std::path::Path) -> Result<JobSpec, String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read job spec {shown}: {e}"))?;
    let mut spec = read_spec(&text).map_err(|m| format!("{shown}: {m}"))?;
    // A spec writes an IPv6 address in brackets, as the topology does; ssh takes it bare (a
    // bracketed one is looked up as a host name), and ssh::rsync_remote brackets it again for
    // rsync's `user@[addr]:path`.
    for ep in spec.hosts.values_mut() {
        ep.address = names::ssh_host(&ep.address).to_string();
    }
    Ok(spec)
}

/// The run's start: now, or what [`NOW_ENV`] says.
pub(crate) fn now() -> Result<Timestamp, String> {
    match std::env::var(NOW_ENV) {
        Ok(v) => v
            .parse::<Timestamp>()
            .map_err(|e| format!("{NOW_ENV}={v:?} is not an RFC 3339 time: {e}")),
        Err(_) => Ok(Timestamp::now()),
    }
}

/// Run the job whose spec is at `opts.spec` (or what `opts.mode` asks); returns the process
/// exit code.
pub fn run(opts: &Options) -> i32 {
    child::install_signal_handlers();
    if opts.mode == Mode::Fresh {
        let path = opts.spec.display();
        let text = match std::fs::read_to_string(&opts.spec) {
            Ok(t) => t,
            Err(e) => {
                report::say!("bkc-run: cannot read freshness spec {path}: {e}");
                return exit::USAGE;
            }
        };
        return match (bkc_contract::fresh::FreshSpec::from_json(&text), now()) {
            (Ok(spec), Ok(now)) => fresh::check(&spec, now),
            (Err(m), _) | (_, Err(m)) => {
                report::say!("bkc-run: {path}: {m}");
                exit::USAGE
            }
        };
    }
    let (spec, start) = match load_spec(&opts.spec).and_then(|s| Ok((s, now()?))) {
        Ok(v) => v,
        Err(m) => {
            report::say!("bkc-run: {m}");
            return exit::USAGE;
        }
    };
    if opts.mode == Mode::Notify {
        return notify::main(&spec);
    }
    let ctx = new_ctx(
        spec,
        start,
        &start.strftime("%Y%m%dT%H%M%SZ").to_string(),
        opts.dry_run,
    );
    execute(&ctx, Instant::now())
}

/// The context of a run, or of a restore or verify (`run_id` then says which), that started at
/// `start`.
pub(crate) fn new_ctx(spec: JobSpec, start: Timestamp, run_id: &str, dry_run: bool) -> Ctx {
    let started = Instant::now();
    let boot_id = lock::boot_id();
    let holder = Holder {
        job: spec.job.clone(),
        host: spec.host.clone(),
        pid: std::process::id(),
        boot_id: boot_id.clone(),
        start: start.to_string(),
    }
    .to_line();
    let run_id = format!("{run_id}-{}", std::process::id());
    Ctx {
        report: Reporter::new(&spec.job, &run_id),
        deadline: spec
            .timeout_secs
            .map(|t| child::later(started, Duration::from_secs(t))),
        dry_run,
        start,
        boot_id,
        hostname: hostname(),
        holder,
        spec,
    }
}

/// Ask `bkc-run serve <job>` on `host` for `req` over SSH and return its one reply: how every
/// short remote step runs (source checks, lock and wait files, snapshot directories). A refused
/// or failed request, or one whose answer is not a reply line, is a `Fail::Lock` naming the host.
pub(crate) fn request(
    spec: &JobSpec,
    host: &str,
    req: &Request,
    deadline: Option<Instant>,
) -> Result<Reply, Fail> {
    let ep = ssh::endpoint(spec, host).map_err(Fail::Spec)?;
    let cmd = ssh::command(spec, ep, &ssh::serve_line(spec, ep));
    let (code, out, stop) = child::capture(cmd, req.to_line().as_bytes(), deadline)
        .map_err(|e| Fail::Lock(format!("cannot run ssh: {e}")))?;
    if let Some(stop) = stop {
        return Err(Fail::Stopped(stop));
    }
    if code == 255 {
        return Err(Fail::Lock(format!(
            "cannot reach host {host} ({}): ssh failed",
            ep.address
        )));
    }
    let reply = out
        .lines()
        .find_map(|l| serde_json::from_str::<Reply>(l).ok());
    match reply {
        Some(Reply::Refused { message }) => Err(Fail::Lock(format!(
            "bkc-run serve on host {host} refused: {message}"
        ))),
        Some(Reply::Failed { message }) => Err(Fail::Lock(format!("on host {host}: {message}"))),
        Some(r) if code == 0 => Ok(r),
        _ => Err(Fail::Lock(format!(
            "bkc-run serve on host {host} ended with exit code {code} and no answer (is bkc-run {} installed there?)",
            ep.runner
        ))),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) into a local buffer of the given size.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A job spec as the runner reads it: the contract's JSON, then what [`check`] demands. Public
/// for the fuzz target that feeds it arbitrary bytes (fuzz/fuzz_targets/job_spec.rs).
pub fn read_spec(text: &str) -> Result<JobSpec, String> {
    let spec = JobSpec::from_json(text).map_err(|e| e.to_string())?;
    check(&spec).map_err(|m| format!("job spec is not valid: {m}"))?;
    Ok(spec)
}

/// What the runner itself must be able to rely on beyond the types: names that are safe as file
/// names, every host reachable, rsync's one-remote-side rule.
fn check(spec: &JobSpec) -> Result<(), String> {
    // The compiler's own rules: a spec from anywhere else gets no more than a topology could
    // say. A name starting with `-` would read as an option where it becomes an argument; an
    // address with `/` would turn a push into a local copy.
    if !names::is_valid_name(&spec.job) {
        return Err(format!("job name {:?} is not a valid name", spec.job));
    }
    for name in spec.hosts.keys().chain([&spec.host]) {
        if !names::is_valid_name(name) {
            return Err(format!("host name {name:?} is not a valid name"));
        }
    }
    for (name, ep) in &spec.hosts {
        if let Some(why) = names::address_problem(&ep.address) {
            return Err(format!("host {name:?} has address {:?}: {why}", ep.address));
        }
        if !names::is_valid_user(&ep.user) {
            return Err(format!(
                "host {name:?} has user {:?}, which is not a user name",
                ep.user
            ));
        }
    }
    check_lock_order(&spec.locks)?;
    let known = |h: &str| spec.is_local(h) || spec.hosts.contains_key(h);
    let mut places: Vec<(&str, &str)> = Vec::new();
    places.extend(
        spec.locks
            .iter()
            .map(|l| (l.at.host.as_str(), l.at.path.as_str())),
    );
    places.extend(
        spec.lock_files
            .iter()
            .map(|l| (l.host.as_str(), l.path.as_str())),
    );
    places.extend(
        spec.wait_files
            .iter()
            .map(|w| (w.at.host.as_str(), w.at.path.as_str())),
    );
    places.extend(
        spec.fresh_markers
            .iter()
            .map(|m| (m.host.as_str(), m.path.as_str())),
    );
    for s in &spec.syncs {
        places.push((&s.source.host, &s.source.path));
        places.push((&s.dest.host, &s.dest.path));
        check_sync(spec, s)?;
    }
    for (h, p) in places {
        if !known(h) {
            return Err(format!(
                "host {h:?} (for {p}) is neither the job's host nor in `hosts`"
            ));
        }
        // A relative path would be taken from the runner's working directory, or the remote
        // user's home: somewhere the topology never named.
        if !p.starts_with('/') {
            return Err(format!(
                "path {p:?} on host {h} is not usable: it must be absolute"
            ));
        }
        if p.contains('\0') {
            return Err(format!("path {p:?} on host {h} holds a NUL byte"));
        }
    }
    for h in &spec.hooks {
        if !known(&h.host) {
            return Err(format!(
                "hook host {:?} is neither the job's host nor in `hosts`",
                h.host
            ));
        }
    }
    for (what, path) in [
        ("identity", spec.identity.as_ref()),
        ("known-hosts", Some(&spec.known_hosts)),
    ] {
        if let Some(p) = path
            && let Some(why) = names::ssh_path_problem(p)
        {
            return Err(format!("{what} {p:?} {why}"));
        }
    }
    check_scheduling(spec)?;
    for (what, dir) in [
        ("state-dir", Some(&spec.state_dir)),
        ("metrics-dir", spec.metrics_dir.as_ref()),
    ] {
        if let Some(d) = dir
            && !d.starts_with('/')
        {
            return Err(format!("{what} {d:?} is not an absolute path"));
        }
    }
    Ok(())
}

/// Deadlock freedom rests on every runner taking its locks in one order; the compiler writes
/// them sorted, so anything else is a spec from somewhere else and is not run.
/// The slot, the watch and the source snapshots, by the compiler's rules: their values become
/// paths the runner creates and arguments of the volume manager's programs, run as root.
fn check_scheduling(spec: &JobSpec) -> Result<(), String> {
    if let Some(s) = &spec.slot
        && (!s.dir.starts_with('/')
            || s.dir.contains('\0')
            || !(1..=MAX_SLOTS).contains(&s.count)
            || s.priority.abs() > MAX_PRIORITY)
    {
        return Err(format!(
            "slot {:?} of {} at priority {} is not usable: an absolute directory, 1 to {MAX_SLOTS} slots, a priority of at most {MAX_PRIORITY} either way",
            s.dir, s.count, s.priority
        ));
    }
    if let Some(w) = &spec.watch {
        if w.paths.is_empty() {
            return Err("the watch has no path".into());
        }
        for p in w.paths.iter().chain([&w.trigger]) {
            if !p.starts_with('/') || p.contains('\0') {
                return Err(format!(
                    "watch path {p:?} is not usable: it must be absolute"
                ));
            }
        }
        if w.quiet_secs == 0 || w.quiet_secs > u64::from(u32::MAX) {
            return Err(format!(
                "the watch's quiet of {} s is out of range",
                w.quiet_secs
            ));
        }
    }
    for s in &spec.syncs {
        let bad = match &s.source_snapshot {
            Some(SourceSnapshot::Zfs { dataset }) if !names::is_zfs_dataset(dataset) => {
                format!("dataset {dataset:?}")
            }
            Some(SourceSnapshot::Lvm { volume, size })
                if !names::is_lvm_volume(volume) || !names::is_lvm_size(size) =>
            {
                format!("volume {volume:?} of size {size:?}")
            }
            _ => continue,
        };
        return Err(format!(
            "source snapshot {bad} of {} is not usable: not a name the topology could give",
            s.source.path
        ));
    }
    Ok(())
}

fn check_lock_order(locks: &[Lock]) -> Result<(), String> {
    for w in locks.windows(2) {
        let (a, b) = (&w[0].at, &w[1].at);
        if a == b {
            return Err(format!("lock {} is listed twice", loc(a)));
        }
        if a > b {
            return Err(format!(
                "locks are not in the order (host, path): {} comes before {}",
                loc(a),
                loc(b)
            ));
        }
    }
    Ok(())
}

/// rsync's one-remote-side rule, and what snapshots build on.
fn check_sync(spec: &JobSpec, s: &Sync) -> Result<(), String> {
    if !spec.is_local(&s.source.host) && !spec.is_local(&s.dest.host) {
        return Err(format!(
            "sync {}:{} -> {}:{} has two remote sides",
            s.source.host, s.source.path, s.dest.host, s.dest.path
        ));
    }
    if s.snapshot.is_some() && s.dest.path.trim_end_matches('/').is_empty() {
        return Err("a snapshotting sync needs a destination directory other than /".into());
    }
    // The compiler only writes absolute paths; `--link-dest` is built on that.
    if s.snapshot.is_some() && !s.dest.path.starts_with('/') {
        return Err(format!(
            "the destination {} of a snapshotting sync is not an absolute path",
            loc(&s.dest)
        ));
    }
    Ok(())
}

/// Lower our own CPU and I/O priority; children inherit both.
fn apply_priority(ctx: &Ctx) {
    if let Some(n) = ctx.spec.nice {
        // SAFETY: setpriority(2) on this process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } != 0 {
            ctx.report.warning(&format!(
                "cannot set nice {n}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    if let Some(c) = ctx.spec.io_class {
        let (class, level) = match c {
            IoClass::Realtime => (1, 4),
            IoClass::BestEffort => (2, 4),
            IoClass::Idle => (3, 0),
        };
        // SAFETY: ioprio_set(2) with IOPRIO_WHO_PROCESS on this process.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, (class << 13) | level) } != 0 {
            ctx.report.warning(&format!(
                "cannot set io class: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

fn previous_state(ctx: &Ctx) -> RunState {
    match report::read_state(&report::state_path(&ctx.spec.state_dir, &ctx.spec.job)) {
        Ok(Some(s)) => s,
        Ok(None) => RunState::default(),
        Err(m) => {
            ctx.report.warning(&m);
            RunState::default()
        }
    }
}

/// `Some(reason)` when an `every` job is not due yet.
fn not_due(ctx: &Ctx, prev: &RunState) -> Option<String> {
    let every = ctx.spec.every.as_ref()?;
    // State files written before `last_success_start` existed only have the end.
    let last: Timestamp = prev
        .last_success_start
        .as_deref()
        .or(prev.last_success.as_deref())?
        .parse()
        .ok()?;
    let age = ctx.start.as_second().saturating_sub(last.as_second());
    let need = every.secs.saturating_sub(every.slack_secs);
    (age < i64::try_from(need).unwrap_or(i64::MAX)).then(|| {
        format!(
            "not due: last successful run began at {last}, {age}s ago; the job runs every {}s (due after {need}s)",
            every.secs
        )
    })
}

fn execute(ctx: &Ctx, started: Instant) -> i32 {
    apply_priority(ctx);
    let prev = previous_state(ctx);
    let mut run = Run::new();
    if let Some(reason) = not_due(ctx, &prev) {
        ctx.say(&format!("skipped: {reason}"));
        ctx.report.event(Event::Skipped {
            reason: reason.clone(),
        });
        return finish(ctx, started, prev, run, Some(reason));
    }
    ping::send(ctx, ping::Ping::Start, "");

    take_locks(ctx, &mut run);
    take_slot(ctx, &mut run, prev.queued_since.is_some());
    let reached_hooks = !run.outcome.stops();
    if reached_hooks {
        run_hooks(ctx, &mut run, HookWhen::Before);
    }
    if !run.outcome.stops() {
        for (i, sync) in ctx.spec.syncs.iter().enumerate() {
            if run.outcome.stops() {
                break;
            }
            sync::run_sync(ctx, &mut run, i, sync);
        }
    }
    if run.outcome == Outcome::Success && !ctx.dry_run {
        sync::prune(ctx, &mut run);
    }
    if reached_hooks {
        run_hooks(ctx, &mut run, HookWhen::After);
    }
    // Release in the reverse order of taking; lock files go first since they were created last.
    while let Some(h) = run.held.pop() {
        lock::release(ctx, h);
    }
    let reason = run.reason.clone();
    finish(ctx, started, prev, run, reason)
}

fn take_locks(ctx: &Ctx, run: &mut Run) {
    let spec = &ctx.spec;
    if ctx.dry_run {
        for l in &spec.locks {
            dry(
                ctx,
                &format!("would lock {}:{} ({})", l.at.host, l.at.path, l.mode),
            );
        }
        for w in &spec.wait_files {
            dry(
                ctx,
                &format!("would wait while {}:{} exists", w.at.host, w.at.path),
            );
        }
        for f in &spec.lock_files {
            dry(
                ctx,
                &format!("would create lock file {}:{}", f.host, f.path),
            );
        }
        if let Some(s) = &spec.slot {
            dry(
                ctx,
                &format!("would take one of the {} slots in {}", s.count, s.dir),
            );
        }
        return;
    }
    // Consecutive locks on one remote host share one session; the order stays the spec's.
    let mut i = 0;
    while i < spec.locks.len() {
        let l = &spec.locks[i];
        let group: Vec<&Lock> = if spec.is_local(&l.at.host) {
            vec![l]
        } else {
            spec.locks[i..]
                .iter()
                .take_while(|m| m.at.host == l.at.host)
                .collect()
        };
        let res = if spec.is_local(&l.at.host) {
            lock::acquire_local(ctx, l).map(|(h, w)| (h, vec![w]))
        } else {
            lock::acquire_remote(ctx, &group)
        };
        match res {
            Ok((h, waits)) => {
                run.held.push(h);
                for (l, waited) in group.iter().zip(waits) {
                    run.lock_wait += waited;
                    ctx.report.event(Event::Locked {
                        lock: loc(&l.at),
                        mode: l.mode,
                        waited_secs: waited.as_secs_f64(),
                    });
                }
            }
            Err(f) => return run.fail_with(ctx, f),
        }
        i += group.len();
    }
    lock_and_wait_files(ctx, run);
}

/// One of the host's `max-parallel` slots, once the locks are held (slot.rs says why then).
fn take_slot(ctx: &Ctx, run: &mut Run, stale_mark: bool) {
    if ctx.dry_run {
        return;
    }
    if let Some(s) = &ctx.spec.slot
        && !run.outcome.stops()
    {
        let asked = Instant::now();
        let res = slot::acquire(ctx, s, stale_mark);
        // Also when it gave up: a queue timeout is a wait the state and metrics show.
        run.slot_wait = asked.elapsed();
        match res {
            Ok(h) => {
                run.held.push(h);
                ctx.report.event(Event::Slot {
                    count: s.count,
                    waited_secs: run.slot_wait.as_secs_f64(),
                });
            }
            Err(f) => run.fail_with(ctx, f),
        }
    }
}

/// Seed-style lock files and wait files. Kernel locks cannot deadlock because every runner takes
/// them in one order; lock files have no such order (job x creates A and waits while B exists,
/// job y creates B and waits while A exists). So: wait until the wait files are gone, create the
/// lock files, then look at the wait files once more. If one has appeared meanwhile, the two
/// runners collided, and the job whose name sorts first wins: it keeps its lock files and waits
/// for the other's file to go, while the other removes its lock files and waits. Without an
/// order both would back off alike and could collide again and again. A file whose holder is
/// not a bkc runner (another tool's) always makes this job give way, pause for a time that
/// differs between runners and grows with each try, and start over. All of it is bounded by the
/// wait files' own timeouts.
fn lock_and_wait_files(ctx: &Ctx, run: &mut Run) {
    if let Err(f) = take_files(ctx, run) {
        run.fail_with(ctx, f);
    }
}

/// [`lock_and_wait_files`], round after round until the job holds its lock files with no wait
/// file present.
fn take_files(ctx: &Ctx, run: &mut Run) -> Result<(), Fail> {
    let spec = &ctx.spec;
    let since = Instant::now();
    // Whether this job kept its lock files after the last collision (see above).
    let mut kept = false;
    for round in 1u32.. {
        for w in &spec.wait_files {
            run.lock_wait += wait::wait(ctx, w, since)?;
        }
        if spec.lock_files.is_empty() {
            return Ok(());
        }
        let attempt = Instant::now();
        if !kept {
            for at in &spec.lock_files {
                run.held.push(lock::create_file(ctx, at)?);
            }
        }
        let Some((w, first)) = appeared(ctx)? else {
            return Ok(());
        };
        let other = Holder::read(&first).map(|h| h.job);
        if other.as_deref().is_some_and(|o| spec.job.as_str() < o) {
            kept = true;
            ctx.say(&format!(
                "lock file {} appeared while this job's lock files were created; job `{}` gives way, this one keeps its lock files and waits",
                loc(&w.at),
                other.unwrap_or_default()
            ));
            continue;
        }
        kept = false;
        // Only lock files are held at this point (kernel locks came before and stay).
        for _ in &spec.lock_files {
            if let Some(h) = run.held.pop() {
                lock::release(ctx, h);
            }
        }
        run.lock_wait += give_way(ctx, w, since, attempt, round)?;
    }
    Ok(())
}

/// The first wait file that appeared while this job created its lock files, with its first
/// line (its holder).
fn appeared(ctx: &Ctx) -> Result<Option<(&WaitFile, String)>, Fail> {
    for w in &ctx.spec.wait_files {
        if let Some(first) = wait::holder(ctx, w)? {
            return Ok(Some((w, first)));
        }
    }
    Ok(None)
}

/// After a collision on `w`, pause before the next round (see [`backoff`]), or give up when the
/// wait files' timeouts, counted from `since`, have passed. Returns the pause.
fn give_way(
    ctx: &Ctx,
    w: &WaitFile,
    since: Instant,
    attempt: Instant,
    round: u32,
) -> Result<Duration, Fail> {
    let (end, is_run_deadline) = ctx
        .spec
        .wait_files
        .iter()
        .map(|w| lock::give_up_at(ctx, since, w.timeout_secs))
        .min_by_key(|e| e.0)
        .unwrap_or((Instant::now(), false));
    let now = Instant::now();
    if now >= end {
        let what = format!(
            "lock file {} appeared each time this job's lock files were created",
            loc(&w.at)
        );
        return Err(if is_run_deadline {
            Fail::Timeout(format!("the run's timeout passed: {what}"))
        } else {
            Fail::LockTimeout(format!(
                "timed out after {}s: {what}",
                since.elapsed().as_secs()
            ))
        });
    }
    let pause = backoff(attempt.elapsed(), round, std::process::id()).min(end - now);
    ctx.say(&format!(
        "lock file {} appeared while this job's lock files were created; removed them, trying again in {} ms",
        loc(&w.at),
        pause.as_millis()
    ));
    match child::sleep(pause, ctx.deadline) {
        Some(s) => Err(Fail::Stopped(s)),
        None => Ok(pause),
    }
}

/// The pause before trying round `round + 1` of [`lock_and_wait_files`]: `slot` (how long the
/// try took, at least 50 ms) times a factor between 1/2 and 1/2 + 2^round (at most 16), drawn
/// from `seed` (the pid), the round and the clock, so that two runners that collided once are
/// unlikely to collide again.
fn backoff(slot: Duration, round: u32, seed: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // splitmix64
    let mut x = ((u64::from(seed) << 32) | u64::from(round)) ^ (u64::from(nanos) << 16);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let frac = (x >> 11) as f64 / (1u64 << 53) as f64;
    let span = f64::from(1u32 << round.min(4));
    slot.max(Duration::from_millis(50))
        .mul_f64(0.5 + frac * span)
}

fn dry(ctx: &Ctx, what: &str) {
    ctx.say(&format!("dry run: {what}"));
    ctx.report.event(Event::DryRun {
        would: what.to_string(),
    });
}

fn run_hooks(ctx: &Ctx, run: &mut Run, when: HookWhen) {
    // After hooks see how the run went, and are not bound by the run's timeout: they usually undo
    // what the before hooks did (restart a service, unmount a snapshot).
    let (deadline, result) = match when {
        HookWhen::Before => (ctx.deadline, None),
        HookWhen::After => (
            None,
            Some(HookResult {
                result: run.outcome.result(),
                exit_code: run.outcome.exit_code(),
            }),
        ),
    };
    let when_s = if when == HookWhen::Before {
        "before"
    } else {
        "after"
    };
    for hook in ctx.spec.hooks.iter().filter(|h| h.when == when) {
        let shown = hooks::display(&hook.command);
        if ctx.dry_run {
            dry(
                ctx,
                &format!("would run {when_s} hook on {}: {shown}", hook.host),
            );
            continue;
        }
        if when == HookWhen::Before && run.outcome.stops() {
            break;
        }
        let t = Instant::now();
        let res = hooks::run(ctx, hook, result, deadline);
        let (ok, error) = match &res {
            hooks::HookResult::Ok => (true, None),
            hooks::HookResult::Failed(m) => (false, Some(m.clone())),
            hooks::HookResult::Stopped(s) => (false, Some(Fail::Stopped(*s).message())),
        };
        ctx.report.event(Event::Hook {
            command: shown.clone(),
            error,
            host: hook.host.clone(),
            ok,
            on_failure: hook.on_failure,
            secs: t.elapsed().as_secs_f64(),
            when,
        });
        match res {
            hooks::HookResult::Ok => {}
            hooks::HookResult::Stopped(s) => {
                run.fail_with(ctx, Fail::Stopped(s));
                break;
            }
            hooks::HookResult::Failed(m) => {
                let msg = format!("{when_s} hook `{shown}` on {} failed: {m}", hook.host);
                match hook.on_failure {
                    OnFailure::Ignore => ctx.report.warning(&format!("{msg} (ignored)")),
                    OnFailure::Continue => run.fail(ctx, Outcome::Failed, msg),
                    OnFailure::Break => {
                        run.fail(ctx, Outcome::Break, msg);
                        break;
                    }
                }
            }
        }
    }
}

/// `host:path`, as messages and events name a place.
pub(crate) fn loc(l: &Location) -> String {
    format!("{}:{}", l.host, l.path)
}

fn finish(ctx: &Ctx, started: Instant, prev: RunState, run: Run, reason: Option<String>) -> i32 {
    let skipped = run.outcome == Outcome::Success && reason.is_some();
    let (result, code) = if skipped {
        (RunResult::Skipped, exit::SUCCESS)
    } else {
        (run.outcome.result(), run.outcome.exit_code())
    };
    let elapsed = started.elapsed();
    let end = jiff::SignedDuration::try_from(elapsed)
        .ok()
        .and_then(|d| ctx.start.checked_add(d).ok())
        .unwrap_or(ctx.start);
    let sent: u64 = run.syncs.iter().map(|s| s.bytes_sent).sum();
    let received: u64 = run.syncs.iter().map(|s| s.bytes_received).sum();
    ctx.report.event(Event::End {
        bytes_received: received,
        bytes_sent: sent,
        dry_run: ctx.dry_run,
        exit_code: code,
        lock_wait_secs: run.lock_wait.as_secs_f64(),
        message: reason.clone(),
        result,
        secs: elapsed.as_secs_f64(),
    });
    match (result, &reason) {
        (RunResult::Success | RunResult::Skipped, _) => {}
        (r, Some(m)) => ctx.say(&format!("{r}: {m}")),
        (r, None) => ctx.say(r.as_str()),
    }
    if ctx.dry_run {
        return code;
    }
    if result == RunResult::Success {
        fresh::write_markers(ctx, end);
    }
    match result {
        RunResult::Success => ping::send(ctx, ping::Ping::Success, ""),
        RunResult::Skipped => ping::send(
            ctx,
            ping::Ping::Success,
            &format!("skipped: {}", reason.as_deref().unwrap_or("not due")),
        ),
        _ => ping::send(ctx, ping::Ping::Fail, &report::last_lines()),
    }
    let mut runs_total = prev.runs_total;
    *runs_total.entry(result).or_insert(0) += 1;
    let (last_success, last_success_start) = if result == RunResult::Success {
        (Some(end.to_string()), Some(ctx.start.to_string()))
    } else {
        (prev.last_success, prev.last_success_start)
    };
    // A skipped run is no news: the run before it stays the one a success recovers from.
    let previous_result = match prev.result {
        Some(RunResult::Skipped) | None => prev.previous_result,
        counted => counted,
    };
    let state = RunState {
        version: STATE_VERSION,
        job: ctx.spec.job.clone(),
        run: ctx.report_run_id(),
        start: Some(ctx.start.to_string()),
        end: Some(end.to_string()),
        duration_secs: elapsed.as_secs_f64(),
        result: Some(result),
        exit_code: code,
        reason,
        bytes_sent: sent,
        bytes_received: received,
        lock_wait_secs: run.lock_wait.as_secs_f64(),
        slot_wait_secs: run.slot_wait.as_secs_f64(),
        queued_since: None,
        syncs: run.syncs,
        last_success,
        last_success_start,
        runs_total,
        previous_result,
        // systemd sets it in every service it starts; the notification compares it.
        invocation: std::env::var("INVOCATION_ID").ok(),
        verify: prev.verify,
    };
    // The last verify as it is now: one may have been recorded while this run waited.
    write_report(ctx, |now| RunState {
        verify: now.and_then(|n| n.verify).or(state.verify.clone()),
        ..state
    });
    code
}

/// The state file, through `change` of what it holds now (see [`report::update_state`]), and
/// the metrics if the spec asks for them. A failure to write either is a warning: the run
/// itself is over, and its locks are already released.
pub(crate) fn write_report(ctx: &Ctx, change: impl FnOnce(Option<RunState>) -> RunState) {
    let path = report::state_path(&ctx.spec.state_dir, &ctx.spec.job);
    let (state, written) = report::update_state(&path, change);
    if let Err(e) = written {
        ctx.say(&format!(
            "warning: cannot write state file {}: {e}",
            path.display()
        ));
    }
    if let Some(dir) = &ctx.spec.metrics_dir {
        let p = std::path::Path::new(dir).join(format!("bkc_{}.prom", ctx.spec.job));
        let text = bkc_contract::metrics::textfile(&state, |t| {
            t.parse::<Timestamp>().ok().map(|t| t.as_second())
        });
        if let Err(e) = report::write_atomic(&p, text.as_bytes()) {
            ctx.say(&format!(
                "warning: cannot write metrics {}: {e}",
                p.display()
            ));
        }
    }
}

impl Ctx {
    fn report_run_id(&self) -> String {
        self.report.run().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bkc_contract::spec::LockMode;
    use serde_json::json;

    fn spec_with_locks(locks: &[(&str, &str)]) -> JobSpec {
        let mut s: JobSpec = serde_json::from_value(json!({
            "version": 1, "job": "j", "host": "a", "state-dir": "/var/lib/bkc", "metrics-dir": null,
            "known-hosts": "/etc/bkc/known_hosts", "identity": null,
            "hosts": { "b": { "address": "b.example", "port": 22, "user": "bk", "runner": "/usr/local/bin/bkc-run" } },
            "every": null, "timeout-secs": null, "nice": null, "io-class": null, "retries": 0,
            "retry-delay-secs": 1, "locks": [], "lock-files": [], "wait-files": [], "hooks": [],
            "syncs": [],
        }))
        .unwrap();
        s.locks = locks
            .iter()
            .map(|(h, p)| Lock {
                at: Location {
                    host: h.to_string(),
                    path: p.to_string(),
                },
                mode: LockMode::Exclusive,
                owner: "j".into(),
                wait_secs: 1,
                timeout_secs: 10,
            })
            .collect();
        s
    }

    #[test]
    fn backoff_stays_in_its_bounds_and_differs_between_runners() {
        let slot = Duration::from_millis(200);
        for round in 1..8 {
            let span = f64::from(1u32 << round.min(4));
            for seed in [1, 2, 4242, u32::MAX] {
                let p = backoff(slot, round, seed);
                assert!(p >= slot / 2 && p <= slot.mul_f64(0.5 + span), "{p:?}");
            }
        }
        assert!(backoff(Duration::ZERO, 1, 1) >= Duration::from_millis(25));
        let pauses: std::collections::BTreeSet<Duration> =
            (1000..1010).map(|pid| backoff(slot, 1, pid)).collect();
        assert!(pauses.len() > 5, "{pauses:?}");
    }

    #[test]
    fn a_snapshot_dest_must_be_absolute() {
        let mut s = spec_with_locks(&[]);
        let place = |p: &str| Location {
            host: "a".into(),
            path: p.into(),
        };
        s.syncs.push(Sync {
            snapshot: Some(Default::default()),
            ..plain_sync(place("/src/"), place("snaps/"))
        });
        let e = check(&s).unwrap_err();
        assert!(e.contains("a:snaps/") && e.contains("absolute"), "{e}");
        s.syncs[0].dest = place("/srv/snaps/");
        assert_eq!(check(&s), Ok(()));
    }

    /// `check` refuses the spec `change` makes, saying `what`.
    fn refused(change: &dyn Fn(&mut JobSpec), what: &str) {
        let mut s = spec_with_locks(&[]);
        change(&mut s);
        let e = check(&s).unwrap_err();
        assert!(e.contains(what), "{e}");
    }

    /// A sync with `-a` and nothing else.
    fn plain_sync(source: Location, dest: Location) -> Sync {
        Sync {
            source,
            dest,
            opts: vec!["-a".into()],
            exclude: vec![],
            bwlimit: None,
            deletes: false,
            allow_empty_source: false,
            snapshot: None,
            source_snapshot: None,
        }
    }

    #[test]
    fn a_spec_from_elsewhere_gets_no_more_than_a_topology_could_say() {
        refused(&|s| s.job = "-x".into(), "job name");
        refused(&|s| s.job = "ü".into(), "job name");
        refused(&|s| s.host = "-a".into(), "host name");
        refused(
            &|s| {
                let e = s.hosts.remove("b").unwrap();
                s.hosts.insert("-oProxyCommand=x".into(), e);
            },
            "host name",
        );
        let ep = |s: &mut JobSpec| s.hosts.get_mut("b").unwrap().clone();
        for address in [
            "tmp/x",
            "-oProxyCommand=touch /tmp/x",
            "a b",
            "fd00::1",
            "%h",
        ] {
            refused(
                &|s| {
                    let mut e = ep(s);
                    e.address = address.into();
                    s.hosts.insert("b".into(), e);
                },
                "address",
            );
        }
        for user in ["-oProxyCommand=x", "a b", "a@b"] {
            refused(
                &|s| {
                    let mut e = ep(s);
                    e.user = user.into();
                    s.hosts.insert("b".into(), e);
                },
                "user",
            );
        }
        let place = |host: &str, p: &str| Location {
            host: host.into(),
            path: p.into(),
        };
        for (src, dst) in [
            (place("a", "/src/"), place("a", "dst")),
            (place("b", "src/"), place("a", "/d/")),
        ] {
            refused(
                &|s| s.syncs.push(plain_sync(src.clone(), dst.clone())),
                "must be absolute",
            );
        }
        refused(&|s| s.state_dir = "state".into(), "state-dir");
        refused(
            &|s| s.identity = Some("/k/x' -oProxyCommand=y '".into()),
            "identity",
        );
        refused(&|s| s.known_hosts = "/k/\"h\"".into(), "known-hosts");
        refused(&|s| s.known_hosts = "/k/%h".into(), "known-hosts");
        refused(&|s| s.metrics_dir = Some("m".into()), "metrics-dir");
        let mut ok = spec_with_locks(&[]);
        ok.hosts.get_mut("b").unwrap().address = "[fd00::1]".into();
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn slots_watches_and_volume_names_are_held_to_the_compilers_rules() {
        let place = |host: &str, p: &str| Location {
            host: host.into(),
            path: p.into(),
        };
        let slot = |dir: &str, count| bkc_contract::spec::Slot {
            dir: dir.into(),
            count,
            priority: 0,
            queue_timeout_secs: None,
            wait_secs: 1,
        };
        refused(&|s| s.slot = Some(slot("slots", 2)), "slot");
        refused(&|s| s.slot = Some(slot("/run/s", 0)), "slot");
        let watch = |paths: &[&str], quiet_secs| bkc_contract::spec::Watch {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            quiet_secs,
            trigger: "/run/bkc/watch/j".into(),
        };
        refused(&|s| s.watch = Some(watch(&["srv"], 1)), "watch path");
        refused(&|s| s.watch = Some(watch(&[], 1)), "no path");
        refused(&|s| s.watch = Some(watch(&["/srv"], 0)), "quiet");
        let snapshot_of = |kind: SourceSnapshot| {
            move |s: &mut JobSpec| {
                s.syncs.push(Sync {
                    source_snapshot: Some(kind.clone()),
                    ..plain_sync(place("a", "/src/"), place("b", "/dst/"))
                })
            }
        };
        for kind in [
            SourceSnapshot::Zfs {
                dataset: "-o".into(),
            },
            SourceSnapshot::Zfs {
                dataset: "tank/home@x".into(),
            },
            SourceSnapshot::Lvm {
                volume: "vg0/home".into(),
                size: "--yes".into(),
            },
            SourceSnapshot::Lvm {
                volume: "-vg/x".into(),
                size: "5G".into(),
            },
        ] {
            refused(&snapshot_of(kind), "source snapshot");
        }
        let mut ok = spec_with_locks(&[]);
        snapshot_of(SourceSnapshot::Lvm {
            volume: "vg0/home".into(),
            size: "20%ORIGIN".into(),
        })(&mut ok);
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn locks_must_come_in_the_global_order() {
        let sorted = [("a", "/l/j.lock"), ("a", "/l/k.lock"), ("b", "/l/j.lock")];
        assert_eq!(check(&spec_with_locks(&sorted)), Ok(()));
        let unsorted = [("b", "/l/j.lock"), ("a", "/l/j.lock")];
        let e = check(&spec_with_locks(&unsorted)).unwrap_err();
        assert!(
            e.contains("not in the order") && e.contains("b:/l/j.lock"),
            "{e}"
        );
        let by_path = [("a", "/l/k.lock"), ("a", "/l/j.lock")];
        assert!(check(&spec_with_locks(&by_path)).is_err());
        let twice = [("a", "/l/j.lock"), ("a", "/l/j.lock")];
        let e = check(&spec_with_locks(&twice)).unwrap_err();
        assert!(e.contains("twice") && e.contains("a:/l/j.lock"), "{e}");
    }
}
