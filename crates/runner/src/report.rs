//! What a run tells the world: one JSON event per line on stdout (for the journal and for anyone
//! piping the runner), the state file that survives between runs, and the Prometheus textfile.
//! Their formats are bkc-contract's; this is where the runner writes them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bkc_contract::event::{Event, EventLine};
use bkc_contract::state::{RunState, state_file};

use crate::journal::Journal;

/// `eprintln!` without its panic when stderr is gone (a closed journal pipe must not stop a
/// backup halfway, with its locks held).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{line}");
        $crate::report::remember(line);
    }};
}
pub(crate) use say;

/// The runner's own last lines (errors, warnings, its result), for a failure ping.
static LAST: std::sync::Mutex<std::collections::VecDeque<String>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
const KEEP_LINES: usize = 40;

pub fn remember(line: String) {
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.len() == KEEP_LINES {
        last.pop_front();
    }
    last.push_back(line);
}

/// The lines [`say!`] printed last, at most 40 and 10 KB (the end kept).
pub fn last_lines() -> String {
    let last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let mut text: String = last.iter().map(|l| format!("{l}\n")).collect();
    if text.len() > 10_240 {
        let mut cut = text.len() - 10_240;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

/// Writes events. Write errors are ignored on purpose: a closed stdout (the reader went away)
/// must not stop a backup or leave its locks held.
pub struct Reporter {
    job: String,
    run: String,
    /// The journal, when the runner runs under systemd: events go there with fields.
    journal: Option<Journal>,
}

impl Reporter {
    pub fn new(job: &str, run: &str) -> Reporter {
        Reporter {
            job: job.to_string(),
            run: run.to_string(),
            journal: Journal::open(),
        }
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn event(&self, event: Event) {
        let line = EventLine {
            job: self.job.clone(),
            run: self.run.clone(),
            event,
        };
        if let Some(j) = &self.journal
            && j.send(&journal_fields(&line))
        {
            return;
        }
        let line = line.to_line();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    pub fn warning(&self, message: &str) {
        say!("bkc-run: {}: warning: {message}", self.job);
        self.event(Event::Warning {
            message: message.to_string(),
        });
    }
}

/// An event as a journal entry: its line as MESSAGE, and the fields to search by.
fn journal_fields(line: &EventLine) -> Vec<(&'static str, String)> {
    let text = line.to_line();
    let value = serde_json::to_value(line).unwrap_or_default();
    let word = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut f = vec![
        ("MESSAGE", text.trim_end().to_string()),
        ("SYSLOG_IDENTIFIER", "bkc-run".to_string()),
        ("JOB", line.job.clone()),
        ("RUN", line.run.clone()),
        ("EVENT", word("event").unwrap_or_default()),
    ];
    let priority = match &line.event {
        Event::Error { .. } => "3",
        Event::Warning { .. } => "4",
        _ => "6",
    };
    f.push(("PRIORITY", priority.to_string()));
    if let Some(r) = word("result") {
        f.push(("RESULT", r));
    }
    f
}

pub fn state_path(state_dir: &str, job: &str) -> PathBuf {
    PathBuf::from(state_file(state_dir, job))
}

/// The previous state, if there is a readable one. A damaged file is reported by the caller and
/// treated as absent.
pub fn read_state(path: &Path) -> Result<Option<RunState>, String> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "state file {} is not readable JSON ({e}); starting afresh",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read state file {}: {e}", path.display())),
    }
}

/// Replace the state file at `path` with `change` of what it holds now (`None` when there is no
/// readable one), under an exclusive lock on its directory: a run and a recorded verify each
/// write their own part, and one that ends while the other writes keeps the other's part.
/// Returns the state written.
pub fn update_state(
    path: &Path,
    change: impl FnOnce(Option<RunState>) -> RunState,
) -> (RunState, std::io::Result<()>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let _ = fs::create_dir_all(dir);
    // Released when the file closes. Without the lock (a directory that cannot be opened, a
    // file system without flock) the state is still written, as it was before verifies.
    let guard = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .ok();
    if let Some(g) = &guard {
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        unsafe { libc::flock(g.as_raw_fd(), libc::LOCK_EX) };
    }
    let state = change(read_state(path).ok().flatten());
    let written = write_atomic(path, state.to_json().as_bytes());
    drop(guard);
    (state, written)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or node_exporter) never sees half a file.
///
/// The temporary file has an unpredictable name and is created with O_EXCL, which never follows
/// a symlink: a metrics directory is often writable by another account (node_exporter's textfile
/// directory), and a predictable name there let that account plant a symlink that root then
/// wrote through. The file is synced before the rename and the directory after it, so a power
/// cut leaves the old record or the new one, never an empty file or no file; a lost state file
/// would make an `every` job run again at once.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dropped on any error below, which removes it.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // Readable by node_exporter and `bkc status`, as the file it replaces was.
        .permissions(fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn damaged_state_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("bkc-state-{}", std::process::id()));
        let p = dir.join("x.json");
        write_atomic(&p, b"{not json").unwrap();
        assert!(read_state(&p).is_err());
        write_atomic(&p, br#"{"last_success":"2026-01-01T00:00:00Z","future":1}"#).unwrap();
        assert_eq!(
            read_state(&p).unwrap().unwrap().last_success.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn an_update_keeps_what_it_does_not_change() {
        let dir = std::env::temp_dir().join(format!("bkc-update-{}", std::process::id()));
        let p = dir.join("j.json");
        let _ = fs::remove_dir_all(&dir);
        let (s, r) = update_state(&p, |now| {
            assert!(now.is_none());
            RunState {
                job: "j".into(),
                exit_code: 1,
                ..Default::default()
            }
        });
        r.unwrap();
        assert_eq!(s.exit_code, 1);
        let (s, r) = update_state(&p, |now| {
            let mut s = now.unwrap();
            s.verify = Some(bkc_contract::state::VerifyState {
                missing: 2,
                ..Default::default()
            });
            s
        });
        r.unwrap();
        let back = read_state(&p).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!((back.exit_code, back.verify.unwrap().missing), (1, 2));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = std::env::temp_dir().join(format!("bkc-symlink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "root's file").unwrap();
        // Another account that may write the metrics directory plants links where a writer
        // that picks names from the pid (or from any rule it can guess) would put its file.
        for guess in [
            format!(".bkc_j.prom.tmp-{}", std::process::id()),
            ".bkc_j.prom.tmp".to_string(),
        ] {
            std::os::unix::fs::symlink(&victim, dir.join(guess)).unwrap();
        }
        write_atomic(&dir.join("bkc_j.prom"), b"metrics").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file");
        assert_eq!(
            fs::read_to_string(dir.join("bkc_j.prom")).unwrap(),
            "metrics"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn temporary_names_are_not_predictable_and_nothing_is_left() {
        let dir = std::env::temp_dir().join(format!("bkc-tmpname-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let p = dir.join("s.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["s.json"]);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let _ = fs::remove_dir_all(dir);
    }
}
