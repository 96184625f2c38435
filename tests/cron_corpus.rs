//! Cron translation against two independent implementations: for every expression in
//! tests/data/cron-corpus.txt, the next 50 fire times that Python's croniter computes for the
//! cron expression must equal what `systemd-analyze calendar` computes for the OnCalendar=
//! lines that `cron_to_calendar` emits (merged when there are two). Our own calendar engine must
//! agree with systemd on those lines too.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::process::{Command, Stdio};

use bkc::schedule::{Calendar, cron_to_calendar};

const ITERATIONS: usize = 50;
const BASE: &str = "2026-01-01 00:00:00";
/// Debian's python3-croniter; the python3 on PATH may be another installation without it.
const PYTHON: &str = "/usr/bin/python3";
/// Markers for lines that croniter cannot judge, followed by hand-written fire times; see the
/// top of the corpus file.
const MARKERS: [&str; 2] = ["# cronie-star:", "# croniter-bug:"];

/// Print croniter's next fire times for each cron expression on stdin, one line each: the
/// times joined by `,`, or `ERR ...`. systemd's calendar ends with the year 2199, so stop there.
const CRONITER: &str = r#"
import sys
from datetime import datetime, timezone
from croniter import croniter
base = datetime(2026, 1, 1, tzinfo=timezone.utc)
for line in sys.stdin.read().splitlines():
    try:
        it = croniter(line, base)
        out = []
        for _ in range(ITERATIONS):
            t = it.get_next(datetime)
            if t.year >= 2200:
                break
            out.append(t.strftime('%Y-%m-%d %H:%M:%S'))
        print(','.join(out))
    except Exception as e:
        print('ERR ' + type(e).__name__ + ': ' + str(e).replace('\n', ' '))
"#;

struct Case {
    cron: String,
    /// For marked lines: the first fire times, written by hand.
    expected: Option<Vec<String>>,
}

fn corpus() -> Vec<Case> {
    let path = format!("{}/tests/data/cron-corpus.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match MARKERS.iter().find_map(|m| l.split_once(m)) {
            Some((cron, times)) => Case {
                cron: cron.trim().to_string(),
                expected: Some(times.split(',').map(|t| t.trim().to_string()).collect()),
            },
            None => Case {
                cron: l.trim().to_string(),
                expected: None,
            },
        })
        .collect()
}

/// croniter's fire times for each cron expression, or its error.
fn croniter_elapses(crons: &[&str]) -> Vec<Result<Vec<String>, String>> {
    let script = CRONITER.replace("ITERATIONS", &ITERATIONS.to_string());
    let mut child = Command::new(PYTHON)
        .args(["-c", &script])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(crons.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "croniter script failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), crons.len(), "one answer per cron expression");
    lines
        .iter()
        .map(|l| match l.strip_prefix("ERR ") {
            Some(e) => Err(e.to_string()),
            None if l.is_empty() => Ok(Vec::new()),
            None => Ok(l.split(',').map(str::to_string).collect()),
        })
        .collect()
}

fn croniter_available() -> bool {
    if !common::require_tool(PYTHON) {
        return false;
    }
    let ok = Command::new(PYTHON)
        .args(["-c", "import croniter"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || common::skip("python3-croniter is not installed")
}

/// The OnCalendar= lines of each case; every emitted line reads back as itself.
fn translate(cases: &[Case]) -> Vec<Vec<String>> {
    cases
        .iter()
        .map(|c| {
            let lines = cron_to_calendar(&c.cron).unwrap_or_else(|e| panic!("{:?}: {e:?}", c.cron));
            assert!(matches!(lines.len(), 1 | 2), "{:?}: {lines:?}", c.cron);
            for line in &lines {
                let cal = Calendar::parse(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
                assert_eq!(
                    &cal.normalized(),
                    line,
                    "emitted lines are in normalized form"
                );
            }
            lines
        })
        .collect()
}

/// Translation needs neither systemd nor croniter.
#[test]
fn cron_corpus_translates_to_normalized_lines() {
    let cases = corpus();
    assert!(cases.len() >= 200, "the corpus should stay large");
    translate(&cases);
}

#[test]
#[ignore = "needs systemd-analyze and python3-croniter"]
fn cron_corpus_matches_croniter_and_systemd() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let cases = corpus();
    let translated = translate(&cases);
    let distinct: Vec<String> = translated
        .iter()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let by_line: HashMap<&String, Vec<String>> = distinct
        .iter()
        .zip(
            common::systemd_calendar(&distinct, BASE, ITERATIONS)
                .into_iter()
                .map(|a| a.elapses),
        )
        .collect();

    let mut failures = Vec::new();
    for line in &distinct {
        let ours = common::our_elapses(&Calendar::parse(line).unwrap(), BASE, ITERATIONS);
        if ours != by_line[line] {
            failures.push(format!("{line:?}: our engine differs from systemd"));
        }
    }

    // What systemd will do with the emitted lines: the union of their elapses.
    let merged: Vec<Vec<String>> = translated
        .iter()
        .map(|lines| {
            let all: BTreeSet<&String> = lines.iter().flat_map(|l| &by_line[l]).collect();
            all.into_iter().take(ITERATIONS).cloned().collect()
        })
        .collect();

    for (case, got) in cases.iter().zip(&merged) {
        if let Some(expected) = &case.expected
            && got.get(..expected.len()) != Some(expected.as_slice())
        {
            failures.push(format!(
                "{:?}: systemd fires at {:?}, expected by hand {expected:?}",
                case.cron,
                &got[..expected.len().min(got.len())]
            ));
        }
    }

    if croniter_available() {
        let checked: Vec<usize> = (0..cases.len())
            .filter(|&i| cases[i].expected.is_none())
            .collect();
        let crons: Vec<&str> = checked.iter().map(|&i| cases[i].cron.as_str()).collect();
        for (&i, theirs) in checked.iter().zip(croniter_elapses(&crons)) {
            let case = &cases[i];
            match theirs {
                Err(e) => failures.push(format!("{:?}: croniter: {e}", case.cron)),
                Ok(theirs) if theirs != merged[i] => {
                    let at = theirs
                        .iter()
                        .zip(&merged[i])
                        .position(|(a, b)| a != b)
                        .unwrap_or(theirs.len().min(merged[i].len()));
                    failures.push(format!(
                        "{:?} -> {:?}: #{} croniter {:?}, systemd {:?}",
                        case.cron,
                        translated[i],
                        at + 1,
                        theirs.get(at),
                        merged[i].get(at)
                    ));
                }
                Ok(_) => {}
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
