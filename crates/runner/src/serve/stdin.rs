//! serve's stdin: the request line, then (for a lock session) the runner's liveness. Read
//! straight from descriptor 0, a byte at a time for the request, so that nothing after it is
//! taken from whoever reads stdin next.

use std::io;
use std::time::Duration;

/// The first line on stdin, without its newline; `None` at once-closed stdin. At most `max`
/// bytes: a longer line is an error, not a request.
pub fn line(max: usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let mut b = 0u8;
        // SAFETY: read(2) of one byte into a local.
        let n = unsafe { libc::read(0, (&raw mut b).cast(), 1) };
        match n {
            0 if buf.is_empty() => return Ok(None),
            0 => break,
            1 if b == b'\n' => break,
            1 => {
                if buf.len() >= max {
                    return Err(io::Error::other(format!(
                        "the request is longer than {max} bytes"
                    )));
                }
                buf.push(b);
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::other("the request is not UTF-8"))
}

/// What [`wait`] saw first.
#[derive(Debug, PartialEq, Eq)]
pub enum Woke {
    /// `other` became readable.
    Other,
    /// stdin ended (or failed): the peer is gone.
    Ended,
    /// Neither, within the time given.
    Timeout,
}

/// Wait up to `d` for stdin to end or for `other` (a descriptor, if any) to become readable.
/// Anything the peer sends meanwhile is read and dropped: a lock session has nothing more to say.
pub fn wait(other: Option<i32>, d: Duration) -> Woke {
    let mut fds = [
        libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: other.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds (a negative fd is ignored by poll).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, d.as_millis().clamp(1, 1000) as i32) };
    if n <= 0 {
        return Woke::Timeout;
    }
    if fds[1].revents != 0 {
        return Woke::Other;
    }
    let mut buf = [0u8; 512];
    // SAFETY: read(2) into a local buffer of its size.
    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Woke::Timeout,
            _ => Woke::Ended,
        };
    }
    if r == 0 { Woke::Ended } else { Woke::Timeout }
}

/// Block until stdin ends.
pub fn wait_for_end() {
    while wait(None, Duration::from_secs(1)) != Woke::Ended {}
}
