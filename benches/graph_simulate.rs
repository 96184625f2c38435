//! `cargo bench --bench graph_simulate`: `bkc simulate` of a year for 1,000 jobs, and `bkc graph`
//! of 1,000 hosts, on generated topologies (benches/common). Two figures each: the library call
//! alone (the topology compiled beforehand), and the release binary end to end as a user runs
//! it (reading and checking the file included). Each is the median of several runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bkc::analyze::compile;
use bkc::graph::Picture;
use bkc::simulate::{simulate, start_at};
use jiff::tz::TimeZone;

mod common;

use common::{bkc, build_release, topology};

const RUNS: usize = 5;

fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// Median wall time of the release binary with these arguments (exit 0 or 1 both count: a
/// simulation that finds timeouts exits 1).
fn cli(args: &[&str]) -> Duration {
    median(|| {
        let status = Command::new(bkc())
            .args(args)
            .env("TZ", "UTC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("bkc runs");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "bkc {args:?}: {status}"
        );
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    build_release();
    let dir = std::env::temp_dir().join(format!("bkc-bench-gs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| what | topology | library call | `bkc` end to end |");
    println!("|---|---|---:|---:|");

    // A year of 1,000 daily jobs on 100 hosts, each taking 20 minutes, every tenth blocking on
    // the one before (which starts a minute earlier, so it waits).
    let text = topology(1_000, 100, Some("20min"));
    let file = dir.join("simulate.kdl");
    std::fs::write(&file, &text).unwrap();
    let c = compile("simulate.kdl", &text);
    let t = c
        .topology
        .as_ref()
        .expect("the generated topology compiles");
    let start = start_at(Some("2026-01-01"), &TimeZone::UTC).unwrap();
    let mut runs = 0;
    let lib = median(|| {
        let r = simulate(t, &start, 365).unwrap();
        runs = r.jobs.iter().map(|j| j.runs).sum();
    });
    let end_to_end = cli(&[
        "simulate",
        file.to_str().unwrap(),
        "--days",
        "365",
        "--start",
        "2026-01-01",
    ]);
    println!(
        "| simulate 365 days ({runs} runs) | 1,000 jobs, 100 hosts | {} | {} |",
        ms(lib),
        ms(end_to_end)
    );

    // 1,000 hosts with two jobs each.
    let text = topology(2_000, 1_000, None);
    let file = dir.join("graph.kdl");
    std::fs::write(&file, &text).unwrap();
    let c = compile("graph.kdl", &text);
    let t = c
        .topology
        .as_ref()
        .expect("the generated topology compiles");
    for format in ["text", "dot", "mermaid"] {
        let mut bytes = 0;
        let lib = median(|| {
            let p = Picture::new(t, &c.cycles, &[]);
            bytes = match format {
                "text" => p.text(),
                "dot" => p.dot(),
                _ => p.mermaid(),
            }
            .len();
        });
        let end_to_end = cli(&["graph", file.to_str().unwrap(), "--format", format]);
        println!(
            "| graph --format {format} ({} KiB) | 1,000 hosts, 2,000 jobs | {} | {} |",
            bytes / 1024,
            ms(lib),
            ms(end_to_end)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
