//! The calendar engine against systemd itself: for every expression in
//! tests/data/calendar-corpus.txt, `systemd-analyze calendar` and `Calendar` must agree on the
//! normalized form and on the next 50 elapses (to the second) from each of several base times;
//! every expression in tests/data/calendar-invalid.txt must be rejected by both.

use crate::common;

use std::collections::HashMap;
use std::process::Command;

use bkc::schedule::Calendar;

const ITERATIONS: usize = 50;

/// Base times: an ordinary one, and some right before or inside daylight saving time changes
/// of the zones in the corpus, where systemd's engine has its own ideas.
const BASES: [&str; 8] = [
    "2026-01-01 00:00:00",
    "2026-03-08 06:45:00", // New York springs forward at 07:00 UTC
    "2026-03-28 22:00:00", // Berlin springs forward at 01:00 UTC the next day
    "2026-04-04 14:00:00", // Lord Howe falls back half an hour at 15:00 UTC
    "2026-10-24 23:45:00", // Berlin falls back at 01:00 UTC
    "2026-10-25 01:10:00", // ... and here Berlin's 02:00-03:00 is in its second pass
    "2026-11-01 04:30:00", // New York falls back at 06:00 UTC
    "2028-02-28 23:59:59",
];

fn data_lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            // A line in double quotes stands for its inside (to show spaces).
            if l.len() >= 2 && l.starts_with('"') && l.ends_with('"') {
                l[1..l.len() - 1].to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// The corpus, each expression with what `Calendar` makes of it.
fn parsed_corpus() -> Vec<(String, Calendar)> {
    let corpus = data_lines("calendar-corpus.txt");
    assert!(corpus.len() >= 60, "the corpus should stay large");
    corpus
        .into_iter()
        .map(|e| {
            let cal = Calendar::parse(&e).unwrap_or_else(|err| panic!("{e:?}: {err:?}"));
            // The normalized form is itself an expression that means the same.
            let again = Calendar::parse(&cal.normalized())
                .unwrap_or_else(|err| panic!("{e:?} normalized: {err:?}"));
            assert_eq!(again.normalized(), cal.normalized(), "{e:?}");
            (e, cal)
        })
        .collect()
}

/// Parsing and normalizing do not need systemd.
#[test]
fn corpus_parses_and_normalizes() {
    parsed_corpus();
}

#[test]
#[ignore = "needs systemd-analyze"]
fn corpus_matches_systemd() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let parsed = parsed_corpus();
    let corpus: Vec<String> = parsed.iter().map(|(e, _)| e.clone()).collect();
    let mut failures = Vec::new();
    for base in BASES {
        let theirs: HashMap<String, common::Analyzed> = corpus
            .iter()
            .cloned()
            .zip(common::systemd_calendar(&corpus, base, ITERATIONS))
            .collect();
        for (expr, cal) in &parsed {
            let t = &theirs[expr];
            if base == BASES[0] && t.normalized != cal.normalized() {
                failures.push(format!(
                    "{expr:?}: normalized {:?}, systemd says {:?}",
                    cal.normalized(),
                    t.normalized
                ));
            }
            let mine = common::our_elapses(cal, base, ITERATIONS);
            if mine != t.elapses {
                let at = mine.iter().zip(&t.elapses).position(|(a, b)| a != b);
                failures.push(format!(
                    "{expr:?} from {base}: elapses differ at #{}: ours {:?}, systemd {:?}",
                    at.map_or(mine.len().min(t.elapses.len()), |i| i) + 1,
                    at.map(|i| &mine[i]).or(mine.get(t.elapses.len())),
                    at.map(|i| &t.elapses[i]).or(t.elapses.get(mine.len())),
                ));
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

#[test]
fn invalid_expressions_are_rejected() {
    let invalid = data_lines("calendar-invalid.txt");
    for e in &invalid {
        assert!(
            Calendar::parse(e).is_err(),
            "{e:?} should be rejected, parsed as {:?}",
            Calendar::parse(e).map(|c| c.normalized())
        );
    }
}

/// The list of invalid expressions really is what systemd rejects.
#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_rejects_the_invalid_expressions_too() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    // One call each, since a rejected expression leaves no trace in the output to match it by.
    for e in &data_lines("calendar-invalid.txt") {
        let out = Command::new("systemd-analyze")
            .args(["calendar", "--", e])
            .env("TZ", "UTC")
            .output()
            .expect("run systemd-analyze");
        assert!(
            !out.status.success(),
            "systemd-analyze accepts {e:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn errors_point_into_the_expression() {
    for e in data_lines("calendar-invalid.txt") {
        let err = Calendar::parse(&e).unwrap_err();
        assert!(!err.message.is_empty() && !err.help.is_empty(), "{e:?}");
        if let Some(r) = &err.range {
            assert!(
                r.start <= r.end && r.end <= e.len() && e.get(r.clone()).is_some(),
                "{e:?}: bad range {r:?}"
            );
        }
    }
}
