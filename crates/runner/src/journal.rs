//! Events into the journal with fields, through journald's native protocol, when the runner's
//! stdout is the journal (it runs as a systemd service). Then `journalctl -u bkc-<job>
//! EVENT=end` finds a job's results, and `bkc report` reads them, without parsing text: each
//! entry's MESSAGE is the event line as it would have been printed, and JOB=, RUN=, EVENT= and
//! (for `end` and `error`) RESULT= are fields of their own.

use std::os::unix::net::UnixDatagram;

/// Where journald listens for native messages.
const SOCKET: &str = "/run/systemd/journal/socket";

/// A connection to the journal, when stdout is the journal's stream for this service
/// (`JOURNAL_STREAM` names the device and inode of the stream, as systemd.exec(5) says to check).
pub struct Journal {
    socket: UnixDatagram,
}

impl Journal {
    pub fn open() -> Option<Journal> {
        let stream = std::env::var("JOURNAL_STREAM").ok()?;
        let (dev, ino) = stream.split_once(':')?;
        let (dev, ino): (u64, u64) = (dev.parse().ok()?, ino.parse().ok()?);
        // SAFETY: fstat(2) of fd 1 into a zeroed stat buffer we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(1, &mut st) } != 0 || st.st_dev != dev || st.st_ino != ino {
            return None;
        }
        let socket = UnixDatagram::unbound().ok()?;
        Some(Journal { socket })
    }

    /// Send one entry; false when journald did not take it (the caller prints the line instead).
    pub fn send(&self, fields: &[(&str, String)]) -> bool {
        self.socket.send_to(&encode(fields), SOCKET).is_ok()
    }
}

/// The native protocol: `KEY=value\n`, or for a value with a newline in it, `KEY\n`, its
/// length as a little-endian u64, the value and `\n`.
pub fn encode<V: AsRef<str>>(fields: &[(&str, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        let v = v.as_ref();
        out.extend_from_slice(k.as_bytes());
        if v.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_the_native_format() {
        assert_eq!(
            encode(&[("JOB", "a"), ("EVENT", "end")]),
            b"JOB=a\nEVENT=end\n"
        );
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"x\ny\n");
        assert_eq!(encode(&[("MESSAGE", "x\ny")]), want);
    }
}
