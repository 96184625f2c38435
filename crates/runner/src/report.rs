//! What a run tells the world: one JSON event per line on stdout (for the journal and for anyone
//! piping the runner), the state file that survives between runs, and the Prometheus textfile.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `eprintln!` without its panic when stderr is gone (a closed journal pipe must not stop a
/// backup halfway, with its locks held).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// Writes events. Write errors are ignored on purpose: a closed stdout (the reader went away)
/// must not stop a backup or leave its locks held.
pub struct Reporter {
    job: String,
    run: String,
}

impl Reporter {
    pub fn new(job: &str, run: &str) -> Reporter {
        Reporter {
            job: job.to_string(),
            run: run.to_string(),
        }
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn event(&self, event: &str, fields: Value) {
        let line = event_line(&self.job, &self.run, event, fields);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    pub fn warning(&self, message: &str) {
        say!("bkc-run: {}: warning: {message}", self.job);
        self.event("warning", serde_json::json!({ "message": message }));
    }
}

/// `{"job":..,"run":..,"event":..,<fields>}` with the three identifying keys first, so a human
/// reading the journal sees them before the figures.
pub fn event_line(job: &str, run: &str, event: &str, fields: Value) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
    let mut line = format!(
        "{{\"job\":{},\"run\":{},\"event\":{}",
        s(job),
        s(run),
        s(event)
    );
    if let Value::Object(f) = fields {
        for (k, v) in f {
            if matches!(k.as_str(), "job" | "run" | "event") {
                continue;
            }
            line.push(',');
            line.push_str(&serde_json::to_string(&k).unwrap_or_default());
            line.push(':');
            line.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into()));
        }
    }
    line.push_str("}\n");
    line
}

/// One sync's figures in the state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SyncReport {
    pub source: String,
    pub dest: String,
    /// Exit code of each attempt, in order.
    pub exit_codes: Vec<i32>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub snapshot: Option<String>,
}

/// `<state_dir>/<job>.json`. Unknown or missing fields read as defaults so an older or damaged
/// file never stops a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    pub job: String,
    pub run: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_secs: f64,
    pub result: String,
    pub exit_code: i32,
    /// Why the run was skipped, or what made it fail.
    pub reason: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub lock_wait_secs: f64,
    pub syncs: Vec<SyncReport>,
    /// Kept across runs: the end of the last successful run.
    pub last_success: Option<String>,
    /// Kept across runs: when the last successful run began. `every` counts from here, so an
    /// `every "4d"` job starts every four days however long each run takes (as anacron does).
    pub last_success_start: Option<String>,
    /// Kept across runs: how many runs ended with each result.
    pub runs_total: BTreeMap<String, u64>,
}

pub fn state_path(state_dir: &str, job: &str) -> PathBuf {
    Path::new(state_dir).join(format!("{job}.json"))
}

/// The previous state, if there is a readable one. A damaged file is reported by the caller and
/// treated as absent.
pub fn read_state(path: &Path) -> Result<Option<State>, String> {
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

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus textfile for one job.
pub fn metrics(state: &State, last_success_unix: Option<i64>) -> String {
    let job = label(&state.job);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{job=\"{job}\"}} {value}\n"
        ));
    };
    if let Some(t) = last_success_unix {
        gauge(
            "bkc_last_success_timestamp_seconds",
            "Unix time the last successful run ended.",
            t.to_string(),
        );
    }
    gauge(
        "bkc_last_duration_seconds",
        "Duration of the last run.",
        format!("{:.3}", state.duration_secs),
    );
    gauge(
        "bkc_last_exit_code",
        "Exit code of the last run (see docs/RUNNER.md).",
        state.exit_code.to_string(),
    );
    gauge(
        "bkc_bytes_transferred",
        "Bytes rsync sent and received in the last run.",
        (state.bytes_sent + state.bytes_received).to_string(),
    );
    gauge(
        "bkc_lock_wait_seconds",
        "Time the last run waited for locks and lock files.",
        format!("{:.3}", state.lock_wait_secs),
    );
    out.push_str("# HELP bkc_runs_total Runs by result.\n# TYPE bkc_runs_total counter\n");
    for (result, n) in &state.runs_total {
        out.push_str(&format!(
            "bkc_runs_total{{job=\"{job}\",result=\"{}\"}} {n}\n",
            label(result)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_come_first_and_line_is_json() {
        let l = event_line(
            "j\"1",
            "r",
            "locked",
            serde_json::json!({"waited_secs": 1.5, "job": "x"}),
        );
        assert!(
            l.starts_with(r#"{"job":"j\"1","run":"r","event":"locked","#),
            "{l}"
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["waited_secs"], 1.5);
        assert_eq!(v["job"], "j\"1");
    }

    #[test]
    fn metrics_text() {
        let mut s = State {
            job: "a".into(),
            exit_code: 1,
            bytes_sent: 5,
            bytes_received: 2,
            ..Default::default()
        };
        s.runs_total.insert("failed".into(), 2);
        let m = metrics(&s, Some(100));
        assert!(m.contains("bkc_last_success_timestamp_seconds{job=\"a\"} 100\n"));
        assert!(m.contains("bkc_bytes_transferred{job=\"a\"} 7\n"));
        assert!(m.contains("bkc_runs_total{job=\"a\",result=\"failed\"} 2\n"));
    }

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
