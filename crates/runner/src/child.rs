//! Child processes and signals: every process the runner starts (rsync, hooks, ssh) goes through
//! here, so that a SIGTERM or SIGINT reaches whatever is running, a run deadline can stop it, and
//! nothing outlives a runner that is killed outright.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The first SIGTERM/SIGINT received, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many SIGTERM/SIGINT have arrived, so a child started after one (an after hook run while
/// stopping) is told apart from a child the signal was meant for.
static COUNT: AtomicU32 = AtomicU32::new(0);
/// Process group of the child currently in the foreground (rsync or a hook), or 0.
static FOREGROUND: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: two atomics and kill(2).
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
    let pgid = FOREGROUND.load(Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: kill(2) is async-signal-safe; a stale pgid at worst gets ESRCH.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

extern "C" fn on_wakeup(_: libc::c_int) {}

/// Install the handlers. Without SA_RESTART, so a blocking flock(2) or poll(2) returns EINTR and
/// the caller gets to look at the flag at once.
pub fn install_signal_handlers() {
    // SAFETY: plain sigaction(2) calls with handlers that only touch atomics and call kill(2).
    unsafe {
        for (sig, handler) in [
            (
                libc::SIGTERM,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            ),
            (
                libc::SIGINT,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            ),
            (
                WAKEUP,
                on_wakeup as extern "C" fn(libc::c_int) as libc::sighandler_t,
            ),
        ] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Sent to a helper thread to break it out of a blocking flock(2).
pub const WAKEUP: libc::c_int = libc::SIGUSR1;

/// The signal that asked the runner to stop, if any.
pub fn interrupted() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Put the child in its own process group (so a signal can be forwarded to it and to whatever it
/// starts, such as rsync's ssh) and have the kernel send it SIGTERM if the runner dies, so a
/// `kill -9` of the runner does not leave an rsync writing on without its locks.
pub fn prepare(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            );
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(143);
            }
            // The runner blocks nothing, but be explicit: children start with a clean mask.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// A stderr handle for a child's stdout, so the runner's own stdout carries only JSON events.
pub fn stderr_stdio() -> Stdio {
    // SAFETY: dup(2) of fd 2; the new fd is owned by the returned Stdio.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Stdio::null();
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Stdio::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Why a wait ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The run's deadline passed; the child was terminated.
    Deadline,
    /// A signal arrived; it was forwarded and the child has exited.
    Signal(i32),
}

/// A started child and a pidfd to wait on it with a timeout.
pub struct Running {
    pub child: Child,
    pidfd: Option<OwnedFd>,
    foreground: bool,
    signals_before: u32,
}

/// Spawn a prepared command. A foreground child receives forwarded signals; background ones
/// (the ssh sessions that hold remote locks) are ended by the runner in its own order.
pub fn spawn(cmd: &mut Command, foreground: bool) -> io::Result<Running> {
    prepare(cmd);
    let signals_before = COUNT.load(Ordering::SeqCst);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // SAFETY: pidfd_open(2) on our own child; the fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
    if foreground {
        FOREGROUND.store(pid, Ordering::SeqCst);
        // A signal that arrived between fork and the store above was not forwarded.
        if COUNT.load(Ordering::SeqCst) != signals_before {
            kill_group(pid, SIGNAL.load(Ordering::SeqCst));
        }
    }
    Ok(Running {
        child,
        pidfd,
        foreground,
        signals_before,
    })
}

pub fn kill_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: plain kill(2).
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A signal that arrived since this child started.
    fn new_signal(&self) -> Option<i32> {
        (COUNT.load(Ordering::SeqCst) != self.signals_before).then(|| SIGNAL.load(Ordering::SeqCst))
    }

    /// Wait up to `timeout` for the child to exit, without reaping it on timeout.
    pub fn wait_for(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let end = later(Instant::now(), timeout);
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(Some(st));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match &self.pidfd {
                Some(fd) => {
                    let mut p = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    let ms = left.as_millis().clamp(1, 200) as i32;
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, ms) };
                }
                None => std::thread::sleep(left.min(Duration::from_millis(5))),
            }
        }
    }

    /// Wait for the child; on the deadline terminate its group (SIGTERM, then SIGKILL after a
    /// grace period). A received signal has already been forwarded by the handler; the child is
    /// then given the same grace before SIGKILL.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<(ExitStatus, Option<Stop>)> {
        let mut stop = None;
        let mut kill_at: Option<Instant> = None;
        loop {
            let slice = Duration::from_millis(200);
            if let Some(st) = self.wait_for(slice)? {
                self.clear_foreground();
                if stop.is_none() {
                    stop = self.new_signal().map(Stop::Signal);
                }
                return Ok((st, stop));
            }
            let now = Instant::now();
            if stop.is_none() {
                if let Some(sig) = self.new_signal() {
                    stop = Some(Stop::Signal(sig));
                    if !self.foreground {
                        kill_group(self.pid(), libc::SIGTERM);
                    }
                    kill_at = Some(now + GRACE);
                } else if deadline.is_some_and(|d| now >= d) {
                    stop = Some(Stop::Deadline);
                    kill_group(self.pid(), libc::SIGTERM);
                    kill_at = Some(now + GRACE);
                }
            }
            if kill_at.is_some_and(|k| now >= k) {
                kill_group(self.pid(), libc::SIGKILL);
                let _ = self.child.kill();
                kill_at = None;
            }
        }
    }

    /// End a background child now: SIGTERM to its group, SIGKILL if it lingers.
    pub fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        kill_group(self.pid(), libc::SIGTERM);
        if !matches!(self.wait_for(GRACE), Ok(Some(_))) {
            kill_group(self.pid(), libc::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn clear_foreground(&self) {
        if self.foreground {
            let _ = FOREGROUND.compare_exchange(self.pid(), 0, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.clear_foreground();
        // Never leave a child behind, whatever path dropped it.
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// `t + d` that never overflows: any spec value, however large, means "very long", not a panic.
pub fn later(t: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86400);
    t.checked_add(d.min(CENTURY)).unwrap_or(t)
}

/// How long a terminated child gets before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The exit code of a status, with death by signal as 128 + signal (as shells report it).
pub fn code(st: &ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Run a command in the foreground and collect its stdout; with `echo`, also copy it to stderr
/// as it comes (rsync's output belongs in the journal, but stdout is for events only).
pub fn capture_echo(
    cmd: Command,
    deadline: Option<Instant>,
    echo: bool,
) -> io::Result<(i32, String, Option<Stop>)> {
    run_capture(cmd, None, deadline, echo)
}

/// Run a short helper command with `input` on its stdin (a serve request over ssh) and collect
/// its stdout.
pub fn capture(
    cmd: Command,
    input: &[u8],
    deadline: Option<Instant>,
) -> io::Result<(i32, String, Option<Stop>)> {
    run_capture(cmd, Some(input), deadline, false)
}

fn run_capture(
    mut cmd: Command,
    input: Option<&[u8]>,
    deadline: Option<Instant>,
    echo: bool,
) -> io::Result<(i32, String, Option<Stop>)> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(stderr_stdio());
    let mut r = spawn(&mut cmd, true)?;
    if let (Some(mut stdin), Some(bytes)) = (r.child.stdin.take(), input) {
        // A request is one short line, well within a pipe's buffer, so this never blocks on a
        // child that does not read; a child that died already gives EPIPE, which its exit code
        // explains better.
        let _ = stdin.write_all(bytes);
    }
    let out = r.child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        if let Some(mut o) = out {
            let mut buf = [0u8; 8192];
            loop {
                match o.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if echo {
                            let _ = io::stderr().write_all(&buf[..n]);
                        }
                        all.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let (st, stop) = r.wait(deadline)?;
    let text = reader.join().unwrap_or_default();
    Ok((code(&st), text, stop))
}

/// Reads lines from a pipe with a timeout, for the ssh lock sessions whose "locked" line must be
/// waited for while still logging and honouring signals.
pub struct LineReader {
    fd: OwnedFd,
    buf: Vec<u8>,
    eof: bool,
}

pub enum Line {
    Text(String),
    Timeout,
    Eof,
}

impl LineReader {
    pub fn new(fd: OwnedFd) -> LineReader {
        LineReader {
            fd,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn read_line(&mut self, timeout: Duration) -> Line {
        let end = later(Instant::now(), timeout);
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Line::Text(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.eof {
                if self.buf.is_empty() {
                    return Line::Eof;
                }
                let rest = std::mem::take(&mut self.buf);
                return Line::Text(String::from_utf8_lossy(&rest).into_owned());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Line::Timeout;
            }
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, 200) as i32) };
            if n <= 0 {
                // Timeout or EINTR: the caller checks signals between calls.
                if interrupted().is_some() {
                    return Line::Timeout;
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: reading into a local buffer of the given size.
            let r =
                unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match r {
                0 => self.eof = true,
                r if r > 0 => self.buf.extend_from_slice(&chunk[..r as usize]),
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted
                        && e.kind() != io::ErrorKind::WouldBlock
                    {
                        self.eof = true;
                    }
                }
            }
        }
    }
}

/// Sleep up to `d`, waking early on a signal or the deadline. Returns why it stopped early.
pub fn sleep(d: Duration, deadline: Option<Instant>) -> Option<Stop> {
    let end = later(Instant::now(), d);
    loop {
        if let Some(s) = interrupted() {
            return Some(Stop::Signal(s));
        }
        let now = Instant::now();
        if deadline.is_some_and(|dl| now >= dl) {
            return Some(Stop::Deadline);
        }
        if now >= end {
            return None;
        }
        std::thread::sleep(
            end.saturating_duration_since(now)
                .min(Duration::from_millis(100)),
        );
    }
}
