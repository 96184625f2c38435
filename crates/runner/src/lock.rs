//! Locks: the job's own lock (exclusive) and the locks of the jobs it blocks on (shared), local
//! through flock(2) and remote through a live SSH session to `bkc-run serve`, which takes them
//! with flock(2) there; plus seed-style lock files created exclusively for other tools to see.
//!
//! Every lock is tied to something the kernel cleans up: an open file descriptor locally, a
//! process on the far side whose stdin is our pipe remotely. A runner that dies, however it dies,
//! leaves nothing held.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::thread::JoinHandleExt;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bkc_contract::event::{Event, LockWait};
use bkc_contract::lockfile::Holder;
use bkc_contract::serve::{LockRequest, Reply, Request};
use bkc_contract::spec::{Endpoint, Location, Lock, LockMode};

use super::child::{self, Line, LineReader, Running, Stop};
use super::{Ctx, Fail, loc, report, ssh};

pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn pid_alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A readable account of a holder line, for messages.
pub fn describe(content: &str) -> String {
    let line = content.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return String::new();
    }
    match Holder::read(line) {
        Some(h) => format!(
            "job {} on host {} (pid {}, since {})",
            h.job, h.host, h.pid, h.start
        ),
        None => line.to_string(),
    }
}

/// Why the holder named in `content` is known to be gone, if it is: it names one of `my_hosts`
/// (the spec's name for this host, or the kernel's hostname, as seed-style tools write
/// `host pid`) and either another boot or a pid that no longer exists. Holders on other hosts
/// cannot be checked from here and are never stale.
pub fn stale(content: &str, my_hosts: &[&str], my_boot: &str) -> Option<String> {
    let line = content.lines().next().unwrap_or("").trim();
    let (host, pid, boot) = match Holder::read(line) {
        Some(h) => (h.host, h.pid, Some(h.boot_id)),
        None => {
            let mut it = line.split_whitespace();
            let (Some(h), Some(p), None) = (it.next(), it.next(), it.next()) else {
                return None;
            };
            (h.to_string(), p.parse::<u32>().ok()?, None)
        }
    };
    if !my_hosts.contains(&host.as_str()) {
        return None;
    }
    if let Some(b) = boot
        && !b.is_empty()
        && !my_boot.is_empty()
        && b != my_boot
    {
        return Some(format!(
            "its holder ({host}, pid {pid}) ran before the last reboot"
        ));
    }
    (!pid_alive(pid)).then(|| format!("its holder ({host}, pid {pid}) is no longer running"))
}

pub enum Held {
    Local {
        file: File,
        exclusive: bool,
    },
    Remote {
        run: Running,
        stdin: Option<ChildStdin>,
    },
    /// A seed-style lock file this run created, removed on release if it is still ours.
    File {
        at: Location,
        content: String,
    },
}

/// The end of waiting: the lock's own timeout or the run's deadline, whichever is first.
pub fn give_up_at(ctx: &Ctx, start: Instant, timeout_secs: u64) -> (Instant, bool) {
    let own = child::later(start, Duration::from_secs(timeout_secs));
    match ctx.deadline {
        Some(d) if d < own => (d, true),
        _ => (own, false),
    }
}

fn whom(lock: &Lock, holder: &str) -> String {
    let h = describe(holder);
    match (lock.mode, h.is_empty()) {
        (LockMode::Shared, true) => lock.owner.clone(),
        (LockMode::Shared, false) => format!("{} ({h})", lock.owner),
        (LockMode::Exclusive, false) => h,
        (LockMode::Exclusive, true) => format!("jobs that block on {}", lock.owner),
    }
}

fn wait_event(ctx: &Ctx, lock: &Lock, holder: &str, start: Instant) {
    ctx.report.event(Event::LockWait(LockWait::Lock {
        holder: describe(holder),
        lock: loc(&lock.at),
        mode: lock.mode,
        owner: lock.owner.clone(),
        waited_secs: start.elapsed().as_secs_f64(),
        waiting_for: whom(lock, holder),
    }));
    report::say!(
        "bkc-run: {}: waiting for {} (lock {})",
        ctx.spec.job,
        whom(lock, holder),
        loc(&lock.at)
    );
}

fn timeout_fail(lock: &Lock, holder: &str, start: Instant, run_deadline: bool) -> Fail {
    if run_deadline {
        return Fail::Timeout(format!(
            "the run's timeout passed while waiting for lock {}",
            loc(&lock.at)
        ));
    }
    Fail::LockTimeout(format!(
        "timed out after {}s waiting for lock {} held by {}",
        start.elapsed().as_secs(),
        loc(&lock.at),
        whom(lock, holder)
    ))
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let open = |write: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(write)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    };
    // A shared holder that may not write (another user's lock file) can still lock it.
    open(true).or_else(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            open(false)
        } else {
            Err(e)
        }
    })
}

fn flock(fd: i32, op: i32) -> io::Result<()> {
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(fd, op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Take a lock on this host, waiting as the spec says. Returns the lock and the time waited.
pub fn acquire_local(ctx: &Ctx, lock: &Lock) -> Result<(Held, Duration), Fail> {
    let start = Instant::now();
    let path = Path::new(&lock.at.path);
    let file = open_lock_file(path)
        .map_err(|e| Fail::Lock(format!("cannot open lock file {}: {e}", lock.at.path)))?;
    let op = match lock.mode {
        LockMode::Exclusive => libc::LOCK_EX,
        LockMode::Shared => libc::LOCK_SH,
    };
    match flock(file.as_raw_fd(), op | libc::LOCK_NB) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            wait_local(ctx, lock, &file, op, start)?
        }
        Err(e) => return Err(Fail::Lock(format!("cannot lock {}: {e}", lock.at.path))),
    }
    let exclusive = lock.mode == LockMode::Exclusive;
    if exclusive {
        // Only the exclusive holder writes, so shared holders never clobber the owner's line.
        let _ = file.set_len(0);
        let _ = file.write_all_at(format!("{}\n", ctx.holder).as_bytes(), 0);
    }
    Ok((Held::Local { file, exclusive }, start.elapsed()))
}

enum Flocked {
    Done(io::Result<()>),
    Cancelled,
}

/// Block in flock(2) on a helper thread, so the kernel wakes us the moment the lock is freed,
/// while this thread keeps the clock: it logs every `wait_secs`, honours signals and gives up at
/// the timeout by interrupting the helper with a signal (flock then returns EINTR).
fn wait_local(ctx: &Ctx, lock: &Lock, file: &File, op: i32, start: Instant) -> Result<(), Fail> {
    let read_holder = || fs::read_to_string(&lock.at.path).unwrap_or_default();
    wait_event(ctx, lock, &read_holder(), start);
    let fd: OwnedFd = file
        .try_clone()
        .map_err(|e| Fail::Lock(format!("cannot lock {}: {e}", lock.at.path)))?
        .into();
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let c = cancel.clone();
    let helper = std::thread::spawn(move || {
        loop {
            match flock(fd.as_raw_fd(), op) {
                Ok(()) => break tx.send(Flocked::Done(Ok(()))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if c.load(Ordering::SeqCst) {
                        break tx.send(Flocked::Cancelled);
                    }
                }
                Err(e) => break tx.send(Flocked::Done(Err(e))),
            }
        }
    });
    let stop_helper = || {
        cancel.store(true, Ordering::SeqCst);
        let t = helper.as_pthread_t();
        loop {
            // SAFETY: the thread is not joined yet, so its pthread_t is valid.
            unsafe { libc::pthread_kill(t, child::WAKEUP) };
            match rx.recv_timeout(Duration::from_millis(10)) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                // Acquired at the last moment or cancelled: either way the caller drops the file.
                _ => break,
            }
        }
    };
    let wait = Duration::from_secs(lock.wait_secs.max(1));
    let (end, is_run_deadline) = give_up_at(ctx, start, lock.timeout_secs);
    let mut next_log = child::later(start, wait);
    let res = loop {
        if let Some(sig) = child::interrupted() {
            stop_helper();
            break Err(Fail::Stopped(Stop::Signal(sig)));
        }
        let now = Instant::now();
        if now >= end {
            stop_helper();
            break Err(timeout_fail(lock, &read_holder(), start, is_run_deadline));
        }
        if now >= next_log {
            wait_event(ctx, lock, &read_holder(), start);
            next_log = child::later(next_log, wait);
        }
        let slice = Duration::from_millis(100)
            .min(end - now)
            .min(next_log.saturating_duration_since(now));
        match rx.recv_timeout(slice) {
            Ok(Flocked::Done(Ok(()))) => break Ok(()),
            Ok(Flocked::Done(Err(e))) => {
                break Err(Fail::Lock(format!("cannot lock {}: {e}", lock.at.path)));
            }
            Ok(Flocked::Cancelled) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(Fail::Lock(format!(
                    "lock helper for {} ended unexpectedly",
                    lock.at.path
                )));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    let _ = helper.join();
    res
}

/// Slack over a lock's timeout for connecting and for flock(1)'s own clock.
const REMOTE_SLACK: Duration = Duration::from_secs(15);

/// Take `locks` (consecutive in the global order, all on one remote host) through one SSH
/// session to `bkc-run serve`: one connection instead of one per lock, and no new handshake
/// between taking one lock and the next. Returns the session and the wait for each lock.
pub fn acquire_remote(ctx: &Ctx, locks: &[&Lock]) -> Result<(Held, Vec<Duration>), Fail> {
    let Some(first) = locks.first() else {
        return Err(Fail::Lock("no locks to take".into()));
    };
    let host = &first.at.host;
    let ep = ssh::endpoint(&ctx.spec, host).map_err(Fail::Spec)?;
    let started = Instant::now();
    let (mut run, stdin, mut reader) = start_remote_locks(ctx, ep, host, locks, started)?;
    let mut waits = Vec::new();
    // The lock being waited for: its index, when its wait began, its holder, the next log time.
    let mut cur = 0usize;
    let mut cur_start = started;
    let mut holder = String::new();
    let mut next_log: Option<Instant> = None;
    let mut refused: Option<String> = None;
    loop {
        let lock = locks[cur.min(locks.len() - 1)];
        let (end, is_run_deadline) = give_up_at(ctx, cur_start, lock.timeout_secs);
        if let Some(sig) = child::interrupted() {
            run.terminate();
            return Err(Fail::Stopped(Stop::Signal(sig)));
        }
        let now = Instant::now();
        if now >= child::later(end, REMOTE_SLACK) {
            run.terminate();
            return Err(timeout_fail(lock, &holder, cur_start, is_run_deadline));
        }
        if next_log.is_some_and(|t| now >= t) {
            wait_event(ctx, lock, &holder, cur_start);
            next_log = Some(child::later(
                now,
                Duration::from_secs(lock.wait_secs.max(1)),
            ));
        }
        match reader.read_line(Duration::from_millis(100)) {
            Line::Text(l) => match serde_json::from_str::<Reply>(&l) {
                Ok(Reply::Holder { holder: h, .. }) => {
                    holder = h;
                    cur_start = if cur == 0 { started } else { Instant::now() };
                    // Say that we wait only once the lock has not come at once.
                    next_log = Some(Instant::now() + Duration::from_millis(300));
                }
                Ok(Reply::Locked { .. }) => {
                    waits.push(cur_start.elapsed());
                    cur += 1;
                    next_log = None;
                    if cur == locks.len() {
                        return Ok((Held::Remote { run, stdin }, waits));
                    }
                }
                Ok(Reply::Refused { message } | Reply::Failed { message }) => {
                    refused = Some(message);
                }
                // A timeout reply is followed by the end of the session, handled below.
                _ => {}
            },
            Line::Timeout => {}
            Line::Eof => {
                drop(stdin);
                let ended = Ended {
                    lock,
                    host,
                    ep,
                    holder: &holder,
                    since: cur_start,
                    run_deadline: is_run_deadline,
                    refused,
                };
                return Err(session_ended(&mut run, ended));
            }
        }
    }
}

/// What a lock session that ended before it held everything was doing.
struct Ended<'a> {
    lock: &'a Lock,
    host: &'a str,
    ep: &'a Endpoint,
    holder: &'a str,
    since: Instant,
    run_deadline: bool,
    /// The reason serve gave, if it refused or failed.
    refused: Option<String>,
}

/// Why a lock session ended early, from its exit code and serve's reason.
fn session_ended(run: &mut Running, e: Ended) -> Fail {
    let code = match run.wait_for(Duration::from_secs(5)) {
        Ok(Some(st)) => child::code(&st),
        _ => {
            run.terminate();
            -1
        }
    };
    match (code, e.refused) {
        (1, None) => timeout_fail(e.lock, e.holder, e.since, e.run_deadline),
        (255, _) => Fail::Lock(format!(
            "cannot reach host {} ({}) for lock {}: ssh failed",
            e.host, e.ep.address, e.lock.at.path
        )),
        (_, Some(m)) => Fail::Lock(format!(
            "bkc-run serve on host {} could not give lock {}: {m}",
            e.host, e.lock.at.path
        )),
        (c, None) => Fail::Lock(format!(
            "remote lock session for {} ended with exit code {c} (is bkc-run {} installed there?)",
            loc(&e.lock.at),
            e.ep.runner
        )),
    }
}

/// Start a lock session on `host` for `locks`, each with the time it may wait from `started`:
/// the session, its stdin (which holds the locks while it is open) and its answers.
fn start_remote_locks(
    ctx: &Ctx,
    ep: &Endpoint,
    host: &str,
    locks: &[&Lock],
    started: Instant,
) -> Result<(Running, Option<ChildStdin>, LineReader), Fail> {
    let req = Request::Lock {
        holder: ctx.holder.clone(),
        locks: locks
            .iter()
            .map(|l| LockRequest {
                path: l.at.path.clone(),
                mode: l.mode,
                timeout_secs: give_up_at(ctx, started, l.timeout_secs)
                    .0
                    .saturating_duration_since(started)
                    .as_secs(),
            })
            .collect(),
    };
    let mut cmd = ssh::command(&ctx.spec, ep, &ssh::serve_line(&ctx.spec, ep));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(child::stderr_stdio());
    let mut run = child::spawn(&mut cmd, false)
        .map_err(|e| Fail::Lock(format!("cannot start ssh for locks on {host}: {e}")))?;
    let mut stdin = run.child.stdin.take();
    if let Some(w) = stdin.as_mut() {
        // One short line: it fits the pipe, and a session that died already says so on stdout.
        let _ = w.write_all(req.to_line().as_bytes());
    }
    let Some(out) = run.child.stdout.take() else {
        return Err(Fail::Lock("ssh has no stdout".into()));
    };
    Ok((run, stdin, LineReader::new(out.into())))
}

/// Release a lock: the kernel does the real work when the descriptor closes or the remote
/// session ends; this only makes it prompt and tidy.
pub fn release(ctx: &Ctx, held: Held) {
    match held {
        Held::Local { file, exclusive } => {
            if exclusive {
                let _ = file.set_len(0);
            }
            drop(file);
        }
        Held::Remote { mut run, stdin } => {
            drop(stdin);
            // A dead link never delivers the EOF; do not hang on it (the far sshd's
            // ClientAliveInterval ends the session, and with it the lock).
            if !matches!(run.wait_for(Duration::from_secs(3)), Ok(Some(_))) {
                run.terminate();
            }
        }
        Held::File { at, content } => release_file(ctx, &at, &content),
    }
}

/// Create a seed-style lock file exclusively, with the holder line as content. An existing one
/// whose holder is provably gone (this host, dead pid or another boot) is removed with a
/// warning; any other existing one fails the run naming its holder.
pub fn create_file(ctx: &Ctx, at: &Location) -> Result<Held, Fail> {
    for _ in 0..2 {
        let existing = if ctx.spec.is_local(&at.host) {
            let path = Path::new(&at.path);
            if let Some(dir) = path.parent() {
                let _ = fs::create_dir_all(dir);
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = f.write_all(format!("{}\n", ctx.holder).as_bytes());
                    let _ = f.sync_all();
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    Some(fs::read_to_string(path).unwrap_or_default())
                }
                Err(e) => {
                    return Err(Fail::Lock(format!(
                        "cannot create lock file {}: {e}",
                        loc(at)
                    )));
                }
            }
        } else {
            let req = Request::CreateFile {
                path: at.path.clone(),
                holder: ctx.holder.clone(),
            };
            match ctx.request(&at.host, &req)? {
                Reply::Created => None,
                Reply::Exists { first_line } => Some(first_line),
                other => {
                    return Err(Fail::Lock(format!(
                        "cannot create lock file {}: unexpected answer {other:?}",
                        loc(at)
                    )));
                }
            }
        };
        let Some(content) = existing else {
            ctx.report.event(Event::LockFile { file: loc(at) });
            return Ok(Held::File {
                at: at.clone(),
                content: ctx.holder.clone(),
            });
        };
        match ctx.stale(&content) {
            Some(why) => {
                ctx.report
                    .warning(&format!("removing stale lock file {}: {why}", loc(at)));
                remove_if_unchanged(ctx, at, content.lines().next().unwrap_or(""))?;
            }
            None => {
                return Err(Fail::Lock(format!(
                    "lock file {} exists, held by {}",
                    loc(at),
                    match describe(&content) {
                        d if d.is_empty() => "an unknown holder (empty file)".to_string(),
                        d => d,
                    }
                )));
            }
        }
    }
    Err(Fail::Lock(format!(
        "lock file {} keeps coming back",
        loc(at)
    )))
}

/// Remove `at` only if its first line is still `line`, so we never delete a lock file someone
/// else created after ours was gone.
pub fn remove_if_unchanged(ctx: &Ctx, at: &Location, line: &str) -> Result<(), Fail> {
    if ctx.spec.is_local(&at.host) {
        let now = fs::read_to_string(&at.path).unwrap_or_default();
        if now.lines().next().unwrap_or("") == line {
            match fs::remove_file(&at.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Fail::Lock(format!("cannot remove {}: {e}", loc(at)))),
            }
        }
        Ok(())
    } else {
        let req = Request::RemoveIf {
            path: at.path.clone(),
            line: line.to_string(),
        };
        ctx.request(&at.host, &req).map(drop)
    }
}

fn release_file(ctx: &Ctx, at: &Location, content: &str) {
    if let Err(f) = remove_if_unchanged(ctx, at, content) {
        ctx.report.warning(&format!(
            "could not remove lock file {}: {}",
            loc(at),
            f.message()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let me = std::process::id();
        let boot = "b1";
        let h = |host: &str, pid: u32, b: &str| {
            Holder {
                job: "j".into(),
                host: host.into(),
                pid,
                boot_id: b.into(),
                start: "t".into(),
            }
            .to_line()
        };
        let hosts = ["h1", "box"];
        assert!(
            stale(&h("h1", me, boot), &hosts, boot).is_none(),
            "live pid"
        );
        assert!(
            stale(&h("h1", me, "b0"), &hosts, boot).is_some(),
            "other boot"
        );
        assert!(
            stale(&h("h1", 0x7fff_fff0, boot), &hosts, boot).is_some(),
            "dead pid"
        );
        assert!(
            stale(&h("h2", 0x7fff_fff0, boot), &hosts, boot).is_none(),
            "other host"
        );
        assert!(
            stale("box 2147483632\n", &hosts, boot).is_some(),
            "seed format, dead"
        );
        assert!(
            stale(&format!("box {me}"), &hosts, boot).is_none(),
            "seed format, alive"
        );
        for junk in [
            "",
            "box",
            "box x",
            "box 1 2",
            "{\"job\":1}",
            "\u{0}\u{ffff}",
        ] {
            assert!(stale(junk, &hosts, boot).is_none(), "{junk:?}");
        }
        assert_eq!(
            describe(&h("h1", 7, boot)),
            "job j on host h1 (pid 7, since t)"
        );
    }
}
