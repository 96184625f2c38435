//! inotify(7) through libc: the kernel tells a waiting runner the moment a file it cares about is
//! closed, deleted or renamed, so that it neither polls nor sleeps past the event.
//!
//! libc already gives the three calls; a crate for them would add a dependency to every host's
//! runner for a hundred lines.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::Duration;

pub use libc::{IN_CLOSE_WRITE, IN_DELETE, IN_MOVED_TO};

/// One inotify instance; its descriptor closes (and its watches go) when it is dropped.
pub struct Inotify {
    fd: OwnedFd,
}

/// An event: the watch it came from, what happened, and the name inside a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InEvent {
    pub wd: i32,
    pub mask: u32,
    pub name: Option<OsString>,
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watch `path` for the events in `mask`; returns the watch descriptor events name.
    pub fn add(&self, path: &Path, mask: u32) -> io::Result<i32> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: a valid C string and our descriptor.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Stop watching `wd`; a watch the kernel dropped already is no error.
    pub fn remove(&self, wd: i32) {
        // SAFETY: a watch descriptor of our instance; a stale one only gets EINVAL.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Wait up to `timeout` for events and return all that are queued (none when the time
    /// passed or a signal came).
    pub fn wait(&self, timeout: Duration) -> io::Result<Vec<InEvent>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one pollfd, alive for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        self.read()
    }

    /// Every event queued now, without waiting.
    fn read(&self) -> io::Result<Vec<InEvent>> {
        let mut out = Vec::new();
        // Room for many events at once; a name is at most NAME_MAX + 1 bytes.
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: the buffer is ours and as long as we say.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(out),
                    Some(libc::EINTR) => continue,
                    _ => Err(e),
                };
            }
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                return Ok(out);
            }
            parse(&buf[..n], &mut out);
        }
    }
}

/// The events in what one read(2) of an inotify descriptor returned.
fn parse(mut bytes: &[u8], out: &mut Vec<InEvent>) {
    const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
    while bytes.len() >= HEAD {
        // SAFETY: HEAD bytes are there; read_unaligned copes with any alignment.
        let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let len = usize::try_from(ev.len).unwrap_or(usize::MAX);
        let Some(name) = bytes.get(HEAD..HEAD.saturating_add(len)) else {
            return;
        };
        // The name is padded with NULs to the event's length.
        let name: Vec<u8> = name.iter().copied().take_while(|b| *b != 0).collect();
        out.push(InEvent {
            wd: ev.wd,
            mask: ev.mask,
            name: (!name.is_empty()).then(|| OsString::from_vec(name)),
        });
        bytes = &bytes[HEAD + len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_file_and_a_deleted_one_are_seen_at_once() {
        let dir = std::env::temp_dir().join(format!("bkc-inotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ino = Inotify::new().unwrap();
        let wd = ino.add(&dir, IN_CLOSE_WRITE | IN_DELETE).unwrap();
        assert!(ino.wait(Duration::from_millis(10)).unwrap().is_empty());
        std::fs::write(dir.join("a"), "x").unwrap();
        std::fs::remove_file(dir.join("a")).unwrap();
        let got = ino.wait(Duration::from_secs(5)).unwrap();
        let seen: Vec<(i32, u32, Option<&str>)> = got
            .iter()
            .map(|e| (e.wd, e.mask, e.name.as_ref().and_then(|n| n.to_str())))
            .collect();
        assert_eq!(
            seen,
            [(wd, IN_CLOSE_WRITE, Some("a")), (wd, IN_DELETE, Some("a"))]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_buffer_gives_the_whole_events_only() {
        let mut out = Vec::new();
        parse(&[0u8; 7], &mut out);
        assert!(out.is_empty());
        let mut one = vec![0u8; std::mem::size_of::<libc::inotify_event>()];
        one[0] = 3; // wd 3, no name
        one.extend_from_slice(&[1, 2]);
        parse(&one, &mut out);
        assert_eq!(
            out,
            [InEvent {
                wd: 3,
                mask: 0,
                name: None
            }]
        );
    }
}
