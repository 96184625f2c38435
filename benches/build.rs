//! `cargo bench --bench build`: time and peak memory of `bkc check` and `bkc build` on
//! generated topologies of 100, 1,000 and 10,000 jobs (one host per ten jobs), with the time
//! split into parse, analyze, emit and write as `bkc --timings` reports it. The topologies use
//! restricted keys (a key per job, authorized keys on every host jobs reach); the largest is
//! also checked and rebuilt with `ssh-keys "operator"`, in turns, to show what they cost.
//!
//! Each figure is the median of several runs of the release binary as a child process; peak
//! memory is the child's maximum resident set size from wait4(2).

use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{bkc, build_release, topology_with};

struct Run {
    secs: f64,
    max_rss_kib: i64,
    timings: String,
}

// The child is reaped by wait4 below, which also gives its peak memory.
#[allow(clippy::zombie_processes)]
fn run(args: &[&str]) -> Run {
    let start = Instant::now();
    let child = Command::new(bkc())
        .args(args)
        .arg("--timings")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bkc runs");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "bkc {args:?} failed"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.unwrap(), &mut err).unwrap();
    let timings = err
        .lines()
        .find_map(|l| l.strip_prefix("timings: "))
        .unwrap_or("")
        .to_string();
    Run {
        secs,
        max_rss_kib: usage.ru_maxrss,
        timings,
    }
}

fn main() {
    build_release();
    let dir = std::env::temp_dir().join(format!("bkc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("| jobs | hosts | file | command | median wall | peak RSS | stages (median run) |");
    println!("|---:|---:|---:|---|---:|---:|---|");
    for jobs in [100, 1_000, 10_000] {
        let file = dir.join(format!("t{jobs}.kdl"));
        let text = topology_with(jobs, (jobs / 10).max(2), None, "");
        std::fs::write(&file, &text).unwrap();
        let f = file.to_str().unwrap();
        let out = dir.join(format!("out{jobs}"));
        let o = out.to_str().unwrap();
        // "build, fresh" writes every file into an empty directory (the disk's speed at
        // creating files decides it); "build, unchanged" is the rebuild a user runs after a
        // small edit, where hosts already up to date are only compared, not rewritten.
        for (label, args, fresh) in [
            ("check", vec!["check", f], false),
            ("build, fresh", vec!["build", f, "-o", o], true),
            ("build, unchanged", vec!["build", f, "-o", o], false),
        ] {
            let mut runs: Vec<Run> = (0..5)
                .map(|_| {
                    if fresh && out.exists() {
                        std::fs::remove_dir_all(&out).unwrap();
                    }
                    run(&args)
                })
                .collect();
            runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
            let m = &runs[runs.len() / 2];
            let rss = runs.iter().map(|r| r.max_rss_kib).max().unwrap();
            println!(
                "| {jobs} | {} | {} KiB | {label} | {:.3} s | {:.1} MiB | {} |",
                (jobs / 10).max(2),
                text.len() / 1024,
                m.secs,
                rss as f64 / 1024.0,
                m.timings
            );
        }
    }
    keys_against_operator(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What restricted keys cost: the same 10,000 jobs with restricted keys and with the
/// operator's, check and rebuild run in turns, so that the load of this shared machine falls on
/// both alike. Prints each median and the median of the ratios of each pair.
fn keys_against_operator(dir: &std::path::Path) {
    let mut files = Vec::new();
    for (name, settings) in [
        ("restricted", ""),
        ("operator", "    ssh-keys \"operator\"\n"),
    ] {
        let file = dir.join(format!("keys-{name}.kdl"));
        std::fs::write(&file, topology_with(10_000, 1_000, None, settings)).unwrap();
        let out = dir.join(format!("keys-out-{name}"));
        let (f, o) = (file.to_str().unwrap(), out.to_str().unwrap());
        run(&["build", f, "-o", o]);
        files.push((f.to_string(), o.to_string()));
    }
    println!();
    println!(
        "| 10,000 jobs, 1,000 hosts | restricted keys | operator keys | ratio (median of pairs) |"
    );
    println!("|---|---:|---:|---:|");
    for label in ["check", "build, unchanged"] {
        let mut pairs = Vec::new();
        for _ in 0..7 {
            let mut secs = files.iter().map(|(f, o)| {
                let args: Vec<&str> = if label == "check" {
                    vec!["check", f]
                } else {
                    vec!["build", f, "-o", o]
                };
                run(&args).secs
            });
            pairs.push((secs.next().unwrap(), secs.next().unwrap()));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {label} | {:.3} s | {:.3} s | {:.2} |",
            median(pairs.iter().map(|p| p.0).collect()),
            median(pairs.iter().map(|p| p.1).collect()),
            median(pairs.iter().map(|p| p.0 / p.1).collect())
        );
    }
}
