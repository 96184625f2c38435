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
pub const SLOT_WAIT: Metric = gauge(
    "bkc_slot_wait_seconds",
    "Time the last run waited for one of its host's max-parallel slots.",
);
pub const QUEUED_SINCE: Metric = gauge(
    "bkc_queued_since_timestamp_seconds",
    "Unix time the run now waiting for a max-parallel slot began to wait; absent when none waits.",
);
pub const RUNS_TOTAL: Metric = Metric {
    name: "bkc_runs_total",
    kind: Kind::Counter,
    help: "Runs by result.",
    labels: &["job", "result"],
};

pub const VERIFY_LAST: Metric = gauge(
    "bkc_verify_last_timestamp_seconds",
    "Unix time the last recorded verify ended.",
);
pub const VERIFY_LAST_SUCCESS: Metric = gauge(
    "bkc_verify_last_success_timestamp_seconds",
    "Unix time the last recorded verify that found nothing corrupted or missing ended.",
);
pub const VERIFY_EXIT_CODE: Metric = gauge(
    "bkc_verify_last_exit_code",
    "Exit code of the last recorded verify: 0 all there, 1 corrupted or missing files, 2 could not compare (see docs/RESTORE.md).",
);
pub const VERIFY_PROBLEMS: Metric = Metric {
    name: "bkc_verify_problems",
    kind: Kind::Gauge,
    help: "Files the last recorded verify found corrupted or missing, by class.",
    labels: &["job", "class"],
};

/// Every metric, in the order of the file. The verify's are there once the job has a recorded
/// verify (`bkc-verify@<job>`).
pub const METRICS: [Metric; 12] = [
    LAST_SUCCESS,
    LAST_DURATION,
    LAST_EXIT_CODE,
    BYTES_TRANSFERRED,
    LOCK_WAIT,
    SLOT_WAIT,
    QUEUED_SINCE,
    RUNS_TOTAL,
    VERIFY_LAST,
    VERIFY_LAST_SUCCESS,
    VERIFY_EXIT_CODE,
    VERIFY_PROBLEMS,
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

/// The textfile for the job's `state`; `unix` turns its RFC 3339 times into Unix time. The
/// run's metrics are there once the job has run, the verify's once it has a recorded verify.
pub fn textfile(state: &RunState, unix: impl Fn(&str) -> Option<i64>) -> String {
    let job = label(&state.job);
    let mut out = String::new();
    let mut gauge = |out: &mut String, m: Metric, value: String| {
        head(out, m);
        let _ = writeln!(out, "{}{{job=\"{job}\"}} {value}", m.name);
    };
    if state.result.is_some() {
        run_lines(&mut out, state, &mut gauge, &unix);
    }
    if let Some(v) = &state.verify {
        if let Some(t) = v.end.as_deref().and_then(&unix) {
            gauge(&mut out, VERIFY_LAST, t.to_string());
        }
        if let Some(t) = v.last_success.as_deref().and_then(&unix) {
            gauge(&mut out, VERIFY_LAST_SUCCESS, t.to_string());
        }
        gauge(&mut out, VERIFY_EXIT_CODE, v.exit_code.to_string());
        head(&mut out, VERIFY_PROBLEMS);
        for (class, n) in [("corrupted", v.corrupted), ("missing", v.missing)] {
            let _ = writeln!(
                out,
                "{}{{job=\"{job}\",class=\"{class}\"}} {n}",
                VERIFY_PROBLEMS.name
            );
        }
    }
    out
}

fn run_lines(
    out: &mut String,
    state: &RunState,
    gauge: &mut impl FnMut(&mut String, Metric, String),
    unix: &impl Fn(&str) -> Option<i64>,
) {
    let job = label(&state.job);
    let mut gauge = |m: Metric, value: String| gauge(out, m, value);
    if let Some(t) = state.last_success.as_deref().and_then(unix) {
        gauge(LAST_SUCCESS, t.to_string());
    }
    gauge(LAST_DURATION, format!("{:.3}", state.duration_secs));
    gauge(LAST_EXIT_CODE, state.exit_code.to_string());
    gauge(
        BYTES_TRANSFERRED,
        (state.bytes_sent + state.bytes_received).to_string(),
    );
    gauge(LOCK_WAIT, format!("{:.3}", state.lock_wait_secs));
    gauge(SLOT_WAIT, format!("{:.3}", state.slot_wait_secs));
    if let Some(t) = state.queued_since.as_deref().and_then(unix) {
        gauge(QUEUED_SINCE, t.to_string());
    }
    head(out, RUNS_TOTAL);
    for (result, n) in &state.runs_total {
        let _ = writeln!(
            out,
            "{}{{job=\"{job}\",result=\"{result}\"}} {n}",
            RUNS_TOTAL.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{RunResult, VerifyState};

    fn unix(t: &str) -> Option<i64> {
        t.parse().ok()
    }

    #[test]
    fn textfile_lines() {
        let mut s = RunState {
            job: "a\"b".into(),
            result: Some(RunResult::Failed),
            last_success: Some("100".into()),
            exit_code: 1,
            bytes_sent: 5,
            bytes_received: 2,
            ..Default::default()
        };
        s.runs_total.insert(RunResult::Failed, 2);
        s.runs_total.insert(RunResult::LockFailed, 1);
        let m = textfile(&s, unix);
        assert!(m.starts_with(
            "# HELP bkc_last_success_timestamp_seconds Unix time the last successful run ended.\n# TYPE bkc_last_success_timestamp_seconds gauge\nbkc_last_success_timestamp_seconds{job=\"a\\\"b\"} 100\n"
        ), "{m}");
        assert!(m.contains("bkc_bytes_transferred{job=\"a\\\"b\"} 7\n"));
        assert!(m.contains("# TYPE bkc_runs_total counter\n"));
        assert!(m.contains("bkc_runs_total{job=\"a\\\"b\",result=\"failed\"} 2\n"));
        assert!(m.contains("bkc_runs_total{job=\"a\\\"b\",result=\"lock-failed\"} 1\n"));
        assert!(!m.contains("bkc_verify"));
        s.last_success = None;
        let without = textfile(&s, unix);
        assert!(!without.contains("bkc_last_success"));
    }

    #[test]
    fn a_verify_has_its_lines_and_no_run_makes_none() {
        let mut s = RunState {
            job: "j".into(),
            verify: Some(VerifyState {
                result: Some(RunResult::Failed),
                exit_code: 1,
                end: Some("200".into()),
                last_success: Some("150".into()),
                corrupted: 1,
                missing: 3,
                changed: 7,
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = textfile(&s, unix);
        assert!(!m.contains("bkc_last_exit_code"), "{m}");
        assert!(!m.contains("bkc_runs_total"), "{m}");
        for line in [
            "bkc_verify_last_timestamp_seconds{job=\"j\"} 200\n",
            "bkc_verify_last_success_timestamp_seconds{job=\"j\"} 150\n",
            "bkc_verify_last_exit_code{job=\"j\"} 1\n",
            "# TYPE bkc_verify_problems gauge\n",
            "bkc_verify_problems{job=\"j\",class=\"corrupted\"} 1\n",
            "bkc_verify_problems{job=\"j\",class=\"missing\"} 3\n",
        ] {
            assert!(m.contains(line), "{line} in {m}");
        }
        s.result = Some(RunResult::Success);
        let both = textfile(&s, unix);
        assert!(both.find("bkc_runs_total").unwrap() < both.find("bkc_verify").unwrap());
    }
}
