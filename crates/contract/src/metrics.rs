//! The Prometheus textfile, `<metrics-dir>/bkc_<job>.prom`, that bkc-run writes for
//! node_exporter's textfile collector after every run that is not a dry run. The metric names
//! and labels are what users' dashboards and alerts are built on.

use std::fmt::Write as _;

use serde::Serialize;

use crate::state::RunState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Gauge,
    Counter,
}

/// One metric of the textfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        help,
        labels: &["job"],
    }
}

pub const LAST_SUCCESS: Metric = gauge(
    "bkc_last_success_timestamp_seconds",
    "Unix time the last successful run ended.",
);
pub const LAST_DURATION: Metric = gauge("bkc_last_duration_seconds", "Duration of the last run.");
pub const LAST_EXIT_CODE: Metric = gauge(
    "bkc_last_exit_code",
    "Exit code of the last run (see docs/RUNNER.md).",
);
pub const BYTES_TRANSFERRED: Metric = gauge(
    "bkc_bytes_transferred",
    "Bytes rsync sent and received in the last run.",
);
pub const LOCK_WAIT: Metric = gauge(
    "bkc_lock_wait_seconds",
    "Time the last run waited for locks and lock files.",
);
pub const RUNS_TOTAL: Metric = Metric {
    name: "bkc_runs_total",
    kind: Kind::Counter,
    help: "Runs by result.",
    labels: &["job", "result"],
};

/// Every metric, in the order of the file.
pub const METRICS: [Metric; 6] = [
    LAST_SUCCESS,
    LAST_DURATION,
    LAST_EXIT_CODE,
    BYTES_TRANSFERRED,
    LOCK_WAIT,
    RUNS_TOTAL,
];

/// A label value in the text format's escaping.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, m: Metric) {
    let kind = match m.kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    let _ = write!(
        out,
        "# HELP {} {}\n# TYPE {} {kind}\n",
        m.name, m.help, m.name
    );
}

/// The textfile for the run `state`; `last_success_unix` is its `last_success` in Unix time.
pub fn textfile(state: &RunState, last_success_unix: Option<i64>) -> String {
    let job = label(&state.job);
    let mut out = String::new();
    let mut gauge = |m: Metric, value: String| {
        head(&mut out, m);
        let _ = writeln!(out, "{}{{job=\"{job}\"}} {value}", m.name);
    };
    if let Some(t) = last_success_unix {
        gauge(LAST_SUCCESS, t.to_string());
    }
    gauge(LAST_DURATION, format!("{:.3}", state.duration_secs));
    gauge(LAST_EXIT_CODE, state.exit_code.to_string());
    gauge(
        BYTES_TRANSFERRED,
        (state.bytes_sent + state.bytes_received).to_string(),
    );
    gauge(LOCK_WAIT, format!("{:.3}", state.lock_wait_secs));
    head(&mut out, RUNS_TOTAL);
    for (result, n) in &state.runs_total {
        let _ = writeln!(
            out,
            "{}{{job=\"{job}\",result=\"{result}\"}} {n}",
            RUNS_TOTAL.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunResult;

    #[test]
    fn textfile_lines() {
        let mut s = RunState {
            job: "a\"b".into(),
            exit_code: 1,
            bytes_sent: 5,
            bytes_received: 2,
            ..Default::default()
        };
        s.runs_total.insert(RunResult::Failed, 2);
        s.runs_total.insert(RunResult::LockFailed, 1);
        let m = textfile(&s, Some(100));
        assert!(m.starts_with(
            "# HELP bkc_last_success_timestamp_seconds Unix time the last successful run ended.\n# TYPE bkc_last_success_timestamp_seconds gauge\nbkc_last_success_timestamp_seconds{job=\"a\\\"b\"} 100\n"
        ), "{m}");
        assert!(m.contains("bkc_bytes_transferred{job=\"a\\\"b\"} 7\n"));
        assert!(m.contains("# TYPE bkc_runs_total counter\n"));
        assert!(m.contains("bkc_runs_total{job=\"a\\\"b\",result=\"failed\"} 2\n"));
        assert!(m.contains("bkc_runs_total{job=\"a\\\"b\",result=\"lock-failed\"} 1\n"));
        let without = textfile(&s, None);
        assert!(!without.contains("bkc_last_success"));
    }
}
