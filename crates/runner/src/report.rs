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

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or node_exporter) never sees half a file. No fsync: it cost more than the rest of the
/// runner's own work on a busy disk, and losing the newest state to a power cut only means an
/// `every` job runs once more (ext4 also flushes a file renamed over another).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
