//! Locks, lock files and wait files on serve's host.
//!
//! A lock session takes flock(2) on each listed lock file in the order asked and then holds them
//! while the runner's stdin stays open: when the runner or its link dies, sshd closes the
//! session, this process sees the end of its stdin and exits, and the kernel frees every lock.
//! A lock file is opened without following a symlink and must be a regular file; the holder line
//! is written through that open descriptor, never through a path someone could redirect.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bkc_contract::serve::{LockRequest, Reply, ServeFile};
use bkc_contract::spec::LockMode;

use super::Session;
use super::fsx::{self, Dir, Kind};
use super::stdin;

/// The longest holder line serve writes: the runner's is about 150 bytes.
const MAX_HOLDER: usize = 1024;

/// `lock`: take every lock, say so, hold them until stdin ends, then clear the holder lines.
pub fn session(s: &Session, file: &ServeFile, holder: &str, locks: &[LockRequest]) -> i32 {
    if holder.len() > MAX_HOLDER || holder.contains(['\n', '\r', '\0']) {
        return s.refuse("the holder is not one line of at most 1 KiB");
    }
    for l in locks {
        if !file
            .locks
            .iter()
            .any(|m| m.path == l.path && m.mode == l.mode)
        {
            return s.refuse(&format!(
                "lock {} ({}) is not one of the job's locks here",
                l.path, l.mode
            ));
        }
    }
    let mut held: Vec<(File, bool)> = Vec::new();
    for (index, l) in locks.iter().enumerate() {
        let f = match open_lock(&l.path) {
            Ok(f) => f,
            Err(e) => return s.fail(&format!("cannot open lock file {}: {e}", l.path)),
        };
        s.reply(&Reply::Holder {
            index,
            holder: fsx::first_line(&f),
        });
        match wait_for(&f, l) {
            Waited::Locked => {}
            Waited::Timeout => {
                s.reply(&Reply::Timeout { index });
                return 1;
            }
            // The runner gave up or died: nothing to report to anyone.
            Waited::Gone => return 0,
            Waited::Error(e) => return s.fail(&format!("cannot lock {}: {e}", l.path)),
        }
        // Said before the holder is written, so a runner that gave up meanwhile never leaves
        // a holder line behind: this write fails, serve exits, the kernel frees the lock.
        s.reply(&Reply::Locked { index });
        let exclusive = l.mode == LockMode::Exclusive;
        if exclusive {
            let _ = f.set_len(0);
            let _ = f.write_all_at(format!("{holder}\n").as_bytes(), 0);
        }
        held.push((f, exclusive));
    }
    stdin::wait_for_end();
    for (f, exclusive) in held {
        if exclusive {
            let _ = f.set_len(0);
        }
    }
    0
}

/// Open (creating it, and its directory, when missing) a lock file: never through a symlink,
/// and only a regular file. A shared holder that may not write another user's lock file can
/// still lock it read-only.
pub fn open_lock(path: &str) -> io::Result<File> {
    let (dir, name) = Dir::parent_of(path, true)?;
    let rw = libc::O_RDWR | libc::O_NONBLOCK;
    let f = match dir.open_file(&name, rw, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            match dir.open_file(&name, rw | libc::O_CREAT | libc::O_EXCL, 0o644) {
                // Someone made it in between: open what is there now.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => dir.open_file(&name, rw, 0)?,
                r => r?,
            }
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            dir.open_file(&name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?
        }
        r => r?,
    };
    if !fsx::is_regular(&f) {
        return Err(io::Error::other("it is not a regular file"));
    }
    Ok(f)
}

enum Waited {
    Locked,
    Timeout,
    /// stdin ended: the runner is gone.
    Gone,
    Error(io::Error),
}

/// Take `l` on `f`: at once if free, else block in flock(2) on a helper thread (so the kernel
/// wakes serve the moment the lock is freed) while this thread watches stdin and the clock. The
/// helper says it is done through a pipe this thread polls with stdin, so the hand-off to the
/// runner waits for nothing.
fn wait_for(f: &File, l: &LockRequest) -> Waited {
    let op = match l.mode {
        LockMode::Exclusive => libc::LOCK_EX,
        LockMode::Shared => libc::LOCK_SH,
    };
    // SAFETY: flock(2) on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
        return Waited::Locked;
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Waited::Error(e);
    }
    let (fd, (wake_rd, wake_wr)) = match f.try_clone().and_then(|c| Ok((c, pipe()?))) {
        Ok(x) => x,
        Err(e) => return Waited::Error(e),
    };
    let (tx, rx) = mpsc::channel();
    // The helper is never joined: serve exits when it gives up, which ends the helper too.
    std::thread::spawn(move || {
        let r = loop {
            // SAFETY: flock(2) on a descriptor the thread owns.
            if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
                break Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                break Err(e);
            }
        };
        let _ = tx.send(r);
        // Dropping the write end wakes the poll below.
        drop(wake_wr);
    });
    let end = crate::child::later(Instant::now(), Duration::from_secs(l.timeout_secs));
    loop {
        let now = Instant::now();
        if now >= end {
            return Waited::Timeout;
        }
        match stdin::wait(Some(wake_rd.as_raw_fd()), end - now) {
            stdin::Woke::Ended => return Waited::Gone,
            stdin::Woke::Timeout => {}
            stdin::Woke::Other => {
                return match rx.recv() {
                    Ok(Ok(())) => Waited::Locked,
                    Ok(Err(e)) => Waited::Error(e),
                    Err(_) => Waited::Error(io::Error::other("the lock helper ended")),
                };
            }
        }
    }
}

/// A pipe, both ends close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2(2) into a local array; both descriptors are owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `create-file`: make a seed-style lock file exclusively, with the holder as its first line.
pub fn create_file(s: &Session, file: &ServeFile, path: &str, holder: &str) -> i32 {
    if !file.lock_files.iter().any(|p| p == path) {
        return s.refuse(&format!("{path} is not one of the job's lock files here"));
    }
    if holder.len() > MAX_HOLDER || holder.contains(['\n', '\r', '\0']) {
        return s.refuse("the holder is not one line of at most 1 KiB");
    }
    let (dir, name) = match Dir::parent_of(path, true) {
        Ok(x) => x,
        Err(e) => return s.fail(&format!("cannot create lock file {path}: {e}")),
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
    match dir.open_file(&name, flags, 0o644) {
        Ok(f) => {
            let _ = f.write_all_at(format!("{holder}\n").as_bytes(), 0);
            let _ = f.sync_all();
            s.reply(&Reply::Created);
            0
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            s.reply(&Reply::Exists {
                first_line: read_first_line(&dir, &name),
            });
            0
        }
        Err(e) => s.fail(&format!("cannot create lock file {path}: {e}")),
    }
}

/// The first line of `name` if it is a regular file; empty for anything else.
fn read_first_line(dir: &Dir, name: &std::ffi::CStr) -> String {
    match dir.open_file(name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
        Ok(f) if fsx::is_regular(&f) => fsx::first_line(&f),
        _ => String::new(),
    }
}

/// `remove-if`: remove a lock file or wait file whose first line is still `line`.
pub fn remove_if(s: &Session, file: &ServeFile, path: &str, line: &str) -> i32 {
    let listed = file.lock_files.iter().chain(&file.wait_files);
    if !listed.into_iter().any(|p| p == path) {
        return s.refuse(&format!(
            "{path} is not one of the job's lock files or wait files here"
        ));
    }
    match Dir::parent_of(path, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return s.fail(&format!("cannot look at {path}: {e}")),
        Ok((dir, name)) => {
            let ours = matches!(dir.kind(&name), Ok(Some(Kind::File)))
                && read_first_line(&dir, &name) == line;
            if ours && let Err(e) = dir.unlink(&name) {
                return s.fail(&format!("cannot remove {path}: {e}"));
            }
        }
    }
    s.reply(&Reply::Done);
    0
}

/// `file-state`: whether a wait file exists, and its first line.
pub fn file_state(s: &Session, file: &ServeFile, path: &str) -> i32 {
    if !file.wait_files.iter().any(|p| p == path) {
        return s.refuse(&format!("{path} is not one of the job's wait files here"));
    }
    let reply = match Dir::parent_of(path, false) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Reply::Gone,
        Err(e) => return s.fail(&format!("cannot look at {path}: {e}")),
        Ok((dir, name)) => match dir.kind(&name) {
            Ok(None) => Reply::Gone,
            Ok(Some(_)) => Reply::Exists {
                first_line: read_first_line(&dir, &name),
            },
            Err(e) => return s.fail(&format!("cannot look at {path}: {e}")),
        },
    };
    s.reply(&reply);
    0
}
