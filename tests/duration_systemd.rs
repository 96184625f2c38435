//! `format_duration` writes spans into unit files (RandomizedDelaySec=, AccuracySec=,
//! TimeoutStartSec=), so systemd must read back exactly the number of seconds we meant; below a
//! month it should also be the very text systemd prints itself.

use crate::common;

use std::process::Command;

use bkc::schedule::{format_duration, parse_duration};

/// systemd's month (30.44 days): from here on it prints months and years, we weeks and days.
const SYSTEMD_MONTH: u64 = 2_629_800;

const SPANS: &[u64] = &[
    0,
    1,
    59,
    60,
    61,
    90,
    300,
    3599,
    3600,
    3601,
    5400,
    86_399,
    86_400,
    90_061,
    604_800,
    694_801,
    1_209_600,
    SYSTEMD_MONTH - 1,
    SYSTEMD_MONTH,
    31_557_600,
    1_000_000_000,
    // The largest span parse_duration accepts.
    30_500_567 * 604_800,
];

#[test]
#[ignore = "needs systemd-analyze"]
fn systemd_reads_what_we_write() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let formatted: Vec<String> = SPANS.iter().map(|&s| format_duration(s)).collect();
    let out = Command::new("systemd-analyze")
        .arg("timespan")
        .arg("--")
        .args(&formatted)
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success(),
        "systemd-analyze rejected one of {formatted:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix(name).map(str::to_string))
            .collect()
    };
    let micros = field("μs: ");
    let human = field("Human: ");
    assert_eq!(micros.len(), SPANS.len());
    for (i, &secs) in SPANS.iter().enumerate() {
        assert_eq!(
            micros[i],
            (u128::from(secs) * 1_000_000).to_string(),
            "systemd reads {:?} differently",
            formatted[i]
        );
        if secs < SYSTEMD_MONTH {
            assert_eq!(human[i], formatted[i], "systemd prints {secs}s differently");
            // And what systemd prints, we read.
            assert_eq!(parse_duration(&human[i], true), Ok(secs));
        }
    }
}
