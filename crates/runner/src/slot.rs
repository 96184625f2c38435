//! A host's `max-parallel` slots: at most `count` runs of the host's jobs at once.
//!
//! The counting lock is `count` files, `<dir>/0` .. `<dir>/<count-1>`, each taken with an
//! exclusive flock(2): a run holds one for as long as it works, and the kernel frees it when the
//! runner exits, however it exits. A run that finds none free queues: it puts a file of its own
//! into `<dir>/queue/`, holding an flock on it for as long as it waits, with its priority and
//! the time it began to wait. A queue file whose flock nobody holds is a dead waiter's and
//! counts for nothing; nobody but its own job ever removes or rewrites it (the job's own lock,
//! held before any slot is asked for, makes that job the only one with its name).
//!
//! Order: a waiter takes a free slot only when no live waiter ranks before it, higher priority
//! first, then the one waiting longest (then the name, so that two waiters never tie). inotify
//! tells the waiters the moment a slot file is closed (its holder ended, or died) or a queue
//! file goes, so the next in line starts within milliseconds; they re-check once a second
//! besides, which costs nothing and covers an event lost to a full inotify queue.
//!
//! Why after the locks: a run that holds a slot then waits for nothing, so no run holding a slot
//! ever waits for one holding a lock, and slots and locks cannot deadlock. A run waiting for a
//! slot holds its locks meanwhile; that it keeps its blocks-on partners waiting is what any
//! running job does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bkc_contract::event::{Event, LockWait};
use bkc_contract::lockfile::Waiter;
use bkc_contract::spec::Slot;
use bkc_contract::state::{RunState, STATE_VERSION};
use jiff::Timestamp;

use super::child::{self, Stop};
use super::inotify::{IN_CLOSE_WRITE, IN_DELETE, IN_MOVED_TO, Inotify};
use super::lock::{self, Held};
use super::{Ctx, Fail, report};

/// How often a waiter looks again without an event, and how long it may sleep before it checks
/// for a signal.
const RECHECK: Duration = Duration::from_secs(1);
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn flock(f: &File, op: i32) -> io::Result<()> {
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn is_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EWOULDBLOCK)
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// The live waiters of the queue other than `me`; dead waiters' files and anything unreadable
/// count for nothing.
fn live_waiters(queue: &Path, me: &str) -> Vec<Waiter> {
    let Ok(entries) = fs::read_dir(queue) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // Files being written start with a dot and are not in the queue yet.
        if name.starts_with('.') || name == me {
            continue;
        }
        // Non-blocking, and regular files only: a FIFO put there must not hang every waiter.
        let Ok(mut f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(e.path())
        else {
            continue;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            continue;
        }
        // A shared lock we get means nobody holds its exclusive one: the waiter is gone.
        match flock(&f, libc::LOCK_SH | libc::LOCK_NB) {
            Err(e) if is_busy(&e) => {}
            _ => continue,
        }
        let mut text = String::new();
        if Read::by_ref(&mut f)
            .take(4096)
            .read_to_string(&mut text)
            .is_ok()
            && let Some(w) = Waiter::read(&text)
            && w.job == name
        {
            out.push(w);
        }
    }
    out
}

/// Put `me` into the queue: written under a temporary name, locked, then renamed into place,
/// so that no one ever sees it unlocked while this run waits.
fn enqueue(queue: &Path, me: &Waiter) -> io::Result<(File, PathBuf)> {
    let tmp = queue.join(format!(".{}.{}", me.job, me.pid));
    let _ = fs::remove_file(&tmp);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    flock(&f, libc::LOCK_EX)?;
    (&f).write_all(format!("{}\n", me.to_line()).as_bytes())?;
    let at = queue.join(&me.job);
    fs::rename(&tmp, &at)?;
    Ok((f, at))
}

/// The first free slot, taken.
fn try_take(files: &[File]) -> io::Result<Option<usize>> {
    for (i, f) in files.iter().enumerate() {
        match flock(f, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => return Ok(Some(i)),
            Err(e) if is_busy(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whom the slots are held by now, for messages: the jobs named in the slot files.
fn holders(files: &[File]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| {
            let mut buf = vec![0u8; 4096];
            let n = f.read_at(&mut buf, 0).ok()?;
            let d = lock::describe(&String::from_utf8_lossy(&buf[..n]));
            (!d.is_empty()).then_some(d)
        })
        .collect()
}

struct Slots<'a> {
    ctx: &'a Ctx,
    slot: &'a Slot,
    dir: PathBuf,
    files: Vec<File>,
}

impl Slots<'_> {
    fn fail(&self, what: &str, e: &io::Error) -> Fail {
        Fail::Lock(format!(
            "cannot {what} the slots in {}: {e}",
            self.dir.display()
        ))
    }

    /// The slot taken: its holder line written, the rest closed.
    fn taken(mut self, i: usize) -> Held {
        let file = self.files.swap_remove(i);
        let _ = file.set_len(0);
        let _ = file.write_all_at(format!("{}\n", self.ctx.holder).as_bytes(), 0);
        Held::Local {
            file,
            exclusive: true,
        }
    }

    fn waiting_for(&self, ahead: usize) -> String {
        let held = holders(&self.files);
        let by = if held.is_empty() {
            String::new()
        } else {
            format!(" by {}", held.join(", "))
        };
        format!(
            "a slot of this host ({} of {} in use{by}; {ahead} waiting before this job)",
            self.slot.count, self.slot.count
        )
    }

    fn wait_event(&self, start: Instant, ahead: usize) {
        let waiting_for = self.waiting_for(ahead);
        self.ctx.report.event(Event::LockWait(LockWait::Slot {
            ahead,
            count: self.slot.count,
            priority: self.slot.priority,
            waited_secs: start.elapsed().as_secs_f64(),
            waiting_for: waiting_for.clone(),
        }));
        report::say!("bkc-run: {}: waiting for {waiting_for}", self.ctx.spec.job);
    }
}

/// Take one of the host's slots, waiting in the queue as the spec says. Returns the slot, held
/// like a local lock and released with the others. `stale_mark`: the state file the run began
/// with says a run is queued (a killed one's), which this run clears however it gets its slot.
pub fn acquire(ctx: &Ctx, slot: &Slot, stale_mark: bool) -> Result<Held, Fail> {
    let start = Instant::now();
    let dir = PathBuf::from(&slot.dir);
    let queue = dir.join("queue");
    let mut s = Slots {
        ctx,
        slot,
        dir,
        files: Vec::new(),
    };
    fs::create_dir_all(&queue).map_err(|e| s.fail("create", &e))?;
    for i in 0..slot.count {
        let f = open_rw(&s.dir.join(i.to_string())).map_err(|e| s.fail("open", &e))?;
        s.files.push(f);
    }
    let me = Waiter {
        job: ctx.spec.job.clone(),
        priority: slot.priority,
        since_ns: Timestamp::now().as_nanosecond(),
        pid: std::process::id(),
    };
    let ahead = |me: &Waiter| {
        live_waiters(&queue, &me.job)
            .iter()
            .filter(|w| w.rank() < me.rank())
            .count()
    };
    if ahead(&me) == 0
        && let Some(i) = try_take(&s.files).map_err(|e| s.fail("take", &e))?
    {
        // A runner killed while it queued left its mark: it would show this run as queued.
        if stale_mark {
            super::write_report(ctx, |now| RunState {
                queued_since: None,
                ..now.unwrap_or_default()
            });
        }
        return Ok(s.taken(i));
    }
    // Watch before queueing, so that no slot freed in between goes unseen.
    let ino = Inotify::new().map_err(|e| s.fail("watch", &e))?;
    ino.add(&s.dir, IN_CLOSE_WRITE)
        .and_then(|_| ino.add(&queue, IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_TO))
        .map_err(|e| s.fail("watch", &e))?;
    let (entry, at) = enqueue(&queue, &me).map_err(|e| s.fail("queue for", &e))?;
    let queued_at = Timestamp::now();
    super::write_report(ctx, |now| RunState {
        queued_since: Some(queued_at.to_string()),
        ..now.unwrap_or_else(|| RunState {
            version: STATE_VERSION,
            job: ctx.spec.job.clone(),
            ..RunState::default()
        })
    });
    let res = wait(&s, &ino, &me, start, ahead);
    // Out of the queue whatever happened: the file is this job's alone (see the module's text).
    let _ = fs::remove_file(&at);
    drop(entry);
    super::write_report(ctx, |now| RunState {
        queued_since: None,
        ..now.unwrap_or_default()
    });
    let i = res?;
    Ok(s.taken(i))
}

/// Wait in the queue until this job is first in line and a slot is free; the slot's index.
fn wait(
    s: &Slots,
    ino: &Inotify,
    me: &Waiter,
    start: Instant,
    ahead: impl Fn(&Waiter) -> usize,
) -> Result<usize, Fail> {
    // The queue's timeout or the run's, whichever is first, as for a lock; without a queue
    // timeout only the run's.
    let (end, is_run_deadline) = match s.slot.queue_timeout_secs {
        Some(t) => {
            let (end, is_run) = lock::give_up_at(s.ctx, start, t);
            (Some(end), is_run)
        }
        None => (s.ctx.deadline, s.ctx.deadline.is_some()),
    };
    let every = Duration::from_secs(s.slot.wait_secs.max(1));
    let mut next_log = start;
    let mut next_look = start;
    loop {
        if let Some(sig) = child::interrupted() {
            return Err(Fail::Stopped(Stop::Signal(sig)));
        }
        let now = Instant::now();
        if now >= next_look {
            let before = ahead(me);
            if before == 0
                && let Some(i) = try_take(&s.files).map_err(|e| s.fail("take", &e))?
            {
                return Ok(i);
            }
            if now >= next_log {
                s.wait_event(start, before);
                next_log = child::later(now, every);
            }
            next_look = child::later(now, RECHECK);
            if let Some(end) = end {
                // The last look is at the end of the wait, to give up on time.
                next_look = next_look.min(end.max(now));
            }
            if let Some(end) = end
                && now >= end
            {
                return Err(if is_run_deadline {
                    Fail::Timeout("the run's timeout passed while waiting for a slot".into())
                } else {
                    Fail::LockTimeout(format!(
                        "timed out after {}s waiting for {}",
                        start.elapsed().as_secs(),
                        s.waiting_for(before)
                    ))
                });
            }
        }
        let sleep = SIGNAL_CHECK.min(next_look.saturating_duration_since(Instant::now()));
        match ino.wait(sleep.max(Duration::from_millis(1))) {
            // Something closed or left: look again at once.
            Ok(ev) if !ev.is_empty() => next_look = Instant::now(),
            Ok(_) => {}
            Err(e) => return Err(s.fail("watch", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(job: &str, priority: i32, since_ns: i128) -> Waiter {
        Waiter {
            job: job.into(),
            priority,
            since_ns,
            pid: 1,
        }
    }

    #[test]
    fn higher_priority_first_then_the_longest_waiting_then_the_name() {
        let mut q = [
            w("late-low", 0, 30),
            w("early-low", 0, 10),
            w("high", 5, 40),
            w("b-tie", 0, 20),
            w("a-tie", 0, 20),
            w("negative", -3, 0),
        ];
        q.sort_by(|a, b| a.rank().cmp(&b.rank()));
        let order: Vec<&str> = q.iter().map(|w| w.job.as_str()).collect();
        assert_eq!(
            order,
            [
                "high",
                "early-low",
                "a-tie",
                "b-tie",
                "late-low",
                "negative"
            ]
        );
    }

    #[test]
    fn a_dead_waiter_counts_for_nothing_and_a_live_one_is_read() {
        let dir = std::env::temp_dir().join(format!("bkc-queue-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let live = w("live", 1, 5);
        let (held, _) = enqueue(&dir, &live).unwrap();
        // A dead waiter: its file is there, nobody holds its lock.
        fs::write(dir.join("dead"), w("dead", 9, 1).to_line()).unwrap();
        // A file that claims another job's name is not believed.
        let (_liar, _) = enqueue(&dir, &w("other", 9, 1)).unwrap();
        fs::rename(dir.join("other"), dir.join("liar")).unwrap();
        assert_eq!(live_waiters(&dir, "me"), std::slice::from_ref(&live));
        assert!(live_waiters(&dir, "live").is_empty());
        // Unlocked rather than only closed: a process another test forks at this moment holds a
        // copy of the descriptor until it execs, and with it the lock.
        flock(&held, libc::LOCK_UN).unwrap();
        assert!(live_waiters(&dir, "me").is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
