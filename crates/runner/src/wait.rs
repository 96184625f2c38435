//! Seed-style `blocks-on-file`: wait while a lock file another tool (or another bkc job's
//! `lock-file`) created exists. Local files are watched with inotify, so a deletion wakes the
//! runner at once; remote ones are checked through `bkc-run serve` every `wait_secs`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use bkc_contract::event::{Event, LockWait};
use bkc_contract::serve::{Reply, Request};
use bkc_contract::spec::WaitFile;

use super::inotify::Inotify;

use super::child::{self, Stop};
use super::lock::{describe, give_up_at, remove_if_unchanged};
use super::{Ctx, Fail, loc, report};

/// Whether `wf` exists: `None` once it is gone, else its content when `read` (only then is it
/// worth a read, or a round trip to a remote host), else an empty string.
fn look(ctx: &Ctx, wf: &WaitFile, local: bool, read: bool) -> Result<Option<String>, Fail> {
    if !local {
        return if read {
            remote_state(ctx, wf)
        } else {
            Ok(Some(String::new()))
        };
    }
    Ok(match fs::symlink_metadata(&wf.at.path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        _ if read => Some(fs::read_to_string(&wf.at.path).unwrap_or_default()),
        _ => Some(String::new()),
    })
}

/// The failure when waiting for `name` (holding `content`) timed out.
fn gave_up(name: &str, content: &str, start: Instant, run_deadline: bool) -> Fail {
    if run_deadline {
        return Fail::Timeout(format!(
            "the run's timeout passed while waiting for {name} to go"
        ));
    }
    let held = match describe(content) {
        d if d.is_empty() => String::new(),
        d => format!(" (held by {d})"),
    };
    Fail::LockTimeout(format!(
        "timed out after {}s waiting for lock file {name} to go{held}",
        start.elapsed().as_secs()
    ))
}

/// Wait until `wf` is gone. The timeout counts from `start`, when waiting for the job's files
/// began (earlier than this call when a conflict made the runner try again). Returns the time
/// spent in this call.
pub fn wait(ctx: &Ctx, wf: &WaitFile, start: Instant) -> Result<Duration, Fail> {
    let called = Instant::now();
    let (end, run_deadline) = give_up_at(ctx, start, wf.timeout_secs);
    let every = Duration::from_secs(wf.wait_secs.max(1));
    let local = ctx.spec.is_local(&wf.at.host);
    let watch = if local {
        watch_parent(Path::new(&wf.at.path))
    } else {
        None
    };
    let name = loc(&wf.at);
    let mut next_check = called;
    let mut logged = false;
    loop {
        if let Some(sig) = child::interrupted() {
            return Err(Fail::Stopped(Stop::Signal(sig)));
        }
        let now = Instant::now();
        let Some(content) = look(ctx, wf, local, now >= next_check)? else {
            if logged {
                ctx.report.event(Event::WaitEnd {
                    file: name.clone(),
                    waited_secs: start.elapsed().as_secs_f64(),
                });
            }
            return Ok(called.elapsed());
        };
        if now >= next_check {
            if let Some(why) = ctx.stale(&content) {
                ctx.report
                    .warning(&format!("removing stale lock file {name}: {why}"));
                remove_if_unchanged(ctx, &wf.at, content.lines().next().unwrap_or(""))?;
                continue;
            }
            if now >= end {
                return Err(gave_up(&name, &content, start, run_deadline));
            }
            ctx.report.event(Event::LockWait(LockWait::File {
                file: name.clone(),
                holder: describe(&content),
                waited_secs: start.elapsed().as_secs_f64(),
            }));
            report::say!(
                "bkc-run: {}: waiting for lock file {name} ({})",
                ctx.spec.job,
                describe(&content)
            );
            logged = true;
            next_check = child::later(next_check, every).min(end);
        }
        let slice = next_check
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        match &watch {
            // Events only wake it: the file is looked at again either way.
            Some(w) => {
                let _ = w.wait(slice.max(Duration::from_millis(1)));
            }
            None => {
                if let Some(stop) = child::sleep(slice, None) {
                    return Err(Fail::Stopped(stop));
                }
            }
        }
    }
}

/// One look at `wf`, no waiting and no staleness judgement (the next [`wait`] makes that): the
/// first line of the file (its holder, if a runner wrote it) when it exists and was
/// not written by this run; `None` when it is gone or is ours.
pub fn holder(ctx: &Ctx, wf: &WaitFile) -> Result<Option<String>, Fail> {
    let content = if ctx.spec.is_local(&wf.at.host) {
        match fs::symlink_metadata(&wf.at.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            _ => Some(fs::read_to_string(&wf.at.path).unwrap_or_default()),
        }
    } else {
        remote_state(ctx, wf)?
    };
    Ok(content
        .map(|c| c.lines().next().unwrap_or("").to_string())
        .filter(|first| *first != ctx.holder))
}

/// `None` when the remote file is gone, else its first line. An unreachable host counts as
/// "still there": the file may well exist, and the timeout bounds the wait.
fn remote_state(ctx: &Ctx, wf: &WaitFile) -> Result<Option<String>, Fail> {
    let req = Request::FileState {
        path: wf.at.path.clone(),
    };
    match ctx.request(&wf.at.host, &req) {
        Ok(Reply::Gone) => Ok(None),
        Ok(Reply::Exists { first_line }) => Ok(Some(first_line)),
        Ok(_) => Ok(Some(String::new())),
        Err(Fail::Stopped(s)) => Err(Fail::Stopped(s)),
        Err(Fail::Spec(m)) => Err(Fail::Spec(m)),
        Err(f) => {
            ctx.report.warning(&format!(
                "cannot check {}:{}: {}",
                wf.at.host,
                wf.at.path,
                f.message()
            ));
            Ok(Some(String::new()))
        }
    }
}

/// An inotify watch on a file's directory, for deletions and renames of anything in it (the
/// file itself cannot be watched for its own removal reliably: it may not exist yet, or be
/// replaced).
fn watch_parent(path: &Path) -> Option<Inotify> {
    let dir = path.parent()?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let ino = Inotify::new().ok()?;
    let mask = libc::IN_DELETE
        | libc::IN_MOVED_FROM
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_CLOSE_WRITE;
    ino.add(dir, mask).ok()?;
    Some(ino)
}
