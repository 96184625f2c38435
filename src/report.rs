//! `bkc report`: the fleet at a glance, as one self-contained HTML page. The chain picture of
//! `bkc graph` with each job coloured by its state, a table of every job, and the last runs of
//! each from the journal. Everything is inline (CSS and SVG), nothing is fetched and no script
//! runs, so any web server can serve it and any browser, a phone's too, can read it.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::deploy::is_running;
use crate::deploy::status::{JobStatus, PastRun, rounded};
use crate::graph::{JobStyle, Picture};
use crate::topology::Topology;

const TEMPLATE: &str = "report.html";

/// What the page says of a job, in the order of attention it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Failed,
    Stale,
    NeverRun,
    Running,
    Fresh,
}

impl State {
    pub fn of(row: &JobStatus) -> State {
        if row.service.as_deref().is_some_and(is_running) {
            State::Running
        } else if row.result.is_none() && row.last_success.is_none() {
            State::NeverRun
        } else if row
            .result
            .as_deref()
            .is_some_and(|r| r != "success" && r != "skipped")
        {
            State::Failed
        } else if row.stale {
            State::Stale
        } else {
            State::Fresh
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Running => "running",
            State::Stale => "stale",
            State::Failed => "failed",
            State::NeverRun => "never-run",
        }
    }

    /// The fill of the job's box in the picture; the page's CSS uses the same colours.
    fn fill(self) -> &'static str {
        match self {
            State::Fresh => "#c9f2d0",
            State::Running => "#cfe2ff",
            State::Stale => "#ffe8a3",
            State::Failed => "#ffc9c9",
            State::NeverRun => "#e9ecef",
        }
    }
}

#[derive(Serialize)]
struct Row {
    job: String,
    host: String,
    state: &'static str,
    last_success: String,
    age: String,
    result: String,
    message: String,
    next_run: String,
    bytes: String,
    lock_wait: String,
    snapshots: String,
    /// The last scheduled verify, for a job that has one ("" for none).
    verify: String,
    /// That verify failed.
    verify_failed: bool,
    runs: Vec<RunRow>,
}

#[derive(Serialize)]
struct RunRow {
    end: String,
    result: String,
    secs: String,
    bytes: String,
    message: String,
}

#[derive(Serialize)]
struct Count {
    state: &'static str,
    n: usize,
}

/// A number of bytes as people read it: "0 B", "12.3 MiB".
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".to_string())
}

/// An RFC 3339 time as "2026-11-28 13:52 UTC"; anything else as it is.
fn when(s: &str) -> String {
    s.parse::<jiff::Timestamp>().map_or_else(
        |_| s.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn row(s: &JobStatus, runs: &[PastRun]) -> Row {
    let snapshots = match s.snapshots.as_slice() {
        [] => "-".to_string(),
        [one] => one.clone(),
        [first, ..] => format!("{first} (+{})", s.snapshots.len() - 1),
    };
    Row {
        job: s.job.clone(),
        host: s.host.clone(),
        state: State::of(s).word(),
        last_success: or_dash(s.last_success.as_deref().map(when)),
        age: s.age_secs.map_or_else(|| "-".into(), rounded),
        result: or_dash(s.result.clone()),
        message: s.reason.clone().unwrap_or_default(),
        next_run: or_dash(s.next_run.clone()),
        bytes: s.bytes.map_or_else(|| "-".into(), bytes),
        lock_wait: s
            .lock_wait_secs
            .map_or_else(|| "-".into(), |w| rounded(w.round() as u64)),
        snapshots,
        verify: s
            .verify
            .as_ref()
            .map_or_else(String::new, |v| match (&v.end, &v.result) {
                (Some(end), Some(_)) => v.cell().replacen(end.as_str(), &when(end), 1),
                _ => v.cell(),
            }),
        verify_failed: s.verify.as_ref().is_some_and(|v| v.failed()),
        runs: runs
            .iter()
            .map(|r| RunRow {
                end: when(&r.end),
                result: r.result.clone(),
                secs: rounded(r.secs.round() as u64),
                bytes: bytes(r.bytes),
                message: r.message.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Graphviz's SVG made fit to sit inside a page: without its XML prolog and doctype.
fn inline_svg(svg: &str) -> String {
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => String::new(),
    }
}

/// The page. `rows` are the jobs' statuses, judged at `now` (see [`JobStatus::judge`]);
/// `runs` the last runs of each job, newest first; `unreachable` the hosts that could not be
/// asked. The chain picture needs Graphviz's `dot`; without it the page says so instead.
pub fn page(
    t: &Topology,
    rows: &[JobStatus],
    runs: &std::collections::BTreeMap<String, Vec<PastRun>>,
    unreachable: &[String],
    now: jiff::Timestamp,
) -> Result<String, minijinja::Error> {
    let state_of = |job: &str| rows.iter().find(|r| r.job == job).map(State::of);
    let picture = Picture::new(t, &[], &[]);
    let dot = picture.dot_styled(&|j| {
        let st = state_of(&j.name)?;
        Some(JobStyle {
            fill: st.fill(),
            class: st.word(),
            tooltip: format!("{}: {}", j.name, st.word()),
        })
    });
    let (svg, picture_note) = match crate::graph::svg(&dot) {
        Ok(svg) => (inline_svg(&svg), String::new()),
        Err(e) => (String::new(), e.to_string()),
    };
    let mut sorted: Vec<&JobStatus> = rows.iter().collect();
    sorted.sort_by_key(|r| (State::of(r), r.host.clone(), r.job.clone()));
    let table: Vec<Row> = sorted
        .iter()
        .map(|r| row(r, runs.get(&r.job).map_or(&[], Vec::as_slice)))
        .collect();
    let counts: Vec<Count> = [
        State::Failed,
        State::Stale,
        State::NeverRun,
        State::Running,
        State::Fresh,
    ]
    .into_iter()
    .map(|st| Count {
        state: st.word(),
        n: rows.iter().filter(|r| State::of(r) == st).count(),
    })
    .collect();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(TEMPLATE, include_str!("../templates/report.html.j2"))?;
    env.get_template(TEMPLATE)?.render(minijinja::context! {
        generated => now.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        verifies => rows.iter().any(|r| r.verify.is_some()),
        jobs => table,
        counts,
        svg,
        picture_note,
        unreachable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn a_verify_has_a_column_only_when_a_job_has_one() {
        let src = r#"host "a" address="a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
host "b" address="b.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
job "j" on="a" {
    schedule "daily"
    sync "/data/" "b:/srv/data/"
    verify "weekly"
}
"#;
        let t = crate::analyze::compile("t.kdl", src).topology.unwrap();
        let now: jiff::Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
        let mut row = JobStatus {
            job: "j".into(),
            host: "a".into(),
            verify: Some(crate::deploy::status::VerifyStatus {
                end: Some("2026-01-04T04:00:00Z".into()),
                result: Some("failed".into()),
                corrupted: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let html = page(
            &t,
            std::slice::from_ref(&row),
            &Default::default(),
            &[],
            now,
        )
        .unwrap();
        assert!(html.contains("<th>Last verify</th>"), "{html}");
        assert!(
            html.contains(
                "<td class=\"verify-failed\">FAILED 2026-01-04 04:00 UTC: 1 corrupted, 0 missing</td>"
            ),
            "{html}"
        );
        row.verify = None;
        let html = page(&t, &[row], &Default::default(), &[], now).unwrap();
        assert!(!html.contains("Last verify"));
    }
}
