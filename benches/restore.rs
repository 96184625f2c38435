//! `cargo bench --bench restore` (as root): getting data back, end to end on namespaced hosts
//! with their own sshd and /etc (tests/harness), as `bkc` runs from the operator's side.
//!
//! 1. `bkc snapshots` of a push job whose destination (another host) holds 100 snapshots of
//!    10,000 files each, hardlinked as runs make them: its wall time, the SSH connections each
//!    host accepted per listing, and the floor: `find` walking the same tree on the destination
//!    itself, with no SSH and no counting.
//! 2. A restore of 1 GiB (eight files of 128 MiB) from a job's snapshot, pulled over SSH onto
//!    the job's host: `bkc restore` against bare `rsync -a` of the same snapshot with the same ssh
//!    options, run on the job's host; and `bkc-run restore` there alone, which leaves out bkc's
//!    own SSH hop. Runs alternate, and each restores into a new directory.
//!
//! Prints Markdown rows for docs/PERFORMANCE.md. Without root it says so and does nothing.

// Only part of each helper module is used by a benchmark.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/harness/mod.rs"]
mod harness;

use std::process::Command;
use std::time::Instant;

use harness::site::Site;

const RUNS: usize = 3;
const SNAPSHOTS: usize = 100;
const DIRS: usize = 100;
const PER_DIR: usize = 100;

const JOBS: &str = r#"
job "a-to-b" on="backup_a" {
    sync "/srv/data/" "backup_b:/srv/snap/" {
        snapshot keep-daily=1000
    }
}
job "big" on="backup_a" {
    sync "/srv/big/" "backup_b:/srv/bigsnap/" {
        snapshot keep-last=3
    }
}
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn accepted(site: &Site, host: &str) -> usize {
    std::fs::read_to_string(site.net.host(site.h(host)).dir.join("sshd.log"))
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

/// Seconds `cmd` took; it must succeed.
fn timed(mut cmd: Command) -> f64 {
    let start = Instant::now();
    let o = cmd.output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    secs
}

/// 100 snapshots of 10,000 files under backup_b's /srv/snap, as daily runs leave them: each
/// one the day before hardlinked (`cp -al`), with ten files changed.
fn snapshots(site: &Site) {
    let root = site.srv("backup_b", "snap");
    let day0: jiff::Timestamp = "2026-01-01T02:15:00Z".parse().unwrap();
    let name = |i: usize| {
        let t = day0 + jiff::SignedDuration::from_hours(24 * i as i64);
        t.strftime("%Y-%m-%dT%H%M%SZ").to_string()
    };
    let first = root.join(name(0));
    for d in 0..DIRS {
        std::fs::create_dir_all(first.join(format!("d{d}"))).unwrap();
        for f in 0..PER_DIR {
            let p = first.join(format!("d{d}/f{f}"));
            std::fs::write(p, format!("file {d}/{f} of the first day\n")).unwrap();
        }
    }
    for i in 1..SNAPSHOTS {
        let (prev, next) = (root.join(name(i - 1)), root.join(name(i)));
        let ok = Command::new("cp")
            .arg("-al")
            .arg(&prev)
            .arg(&next)
            .status()
            .unwrap();
        assert!(ok.success());
        for f in 0..10 {
            let p = next.join(format!("d{i}/f{f}"));
            std::fs::remove_file(&p).unwrap();
            std::fs::write(p, format!("file {i}/{f} changed on day {i}\n")).unwrap();
        }
    }
}

fn bench_snapshots(site: &Site) {
    let file = site.file();
    let (a0, b0) = (accepted(site, "backup_a"), accepted(site, "backup_b"));
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let mut c = site.bkc_cmd(&["snapshots", &file, "a-to-b", "--json"]);
        let start = Instant::now();
        let o = c.output().unwrap();
        times.push(start.elapsed().as_secs_f64());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let snaps = v["jobs"][0]["syncs"][0]["snapshots"].as_array().unwrap();
        assert_eq!(snaps.len(), SNAPSHOTS);
        assert_eq!(snaps[0]["files"], DIRS * PER_DIR + DIRS);
    }
    let per = |n: usize| n as f64 / RUNS as f64;
    let (a, b) = (
        per(accepted(site, "backup_a") - a0),
        per(accepted(site, "backup_b") - b0),
    );
    let floor: Vec<f64> = (0..RUNS)
        .map(|_| {
            timed(site.net.cmd(
                site.h("backup_b"),
                &["sh", "-c", "find /srv/snap -printf '%i %s\\n' > /dev/null"],
            ))
        })
        .collect();
    println!(
        "| `bkc snapshots`, {SNAPSHOTS} snapshots of {} files | {:.2} s | {:.2} s | {a:.0} on the job's host, {b:.0} on the destination | {:.2} s |",
        DIRS * PER_DIR,
        median(times.clone()),
        min(&times),
        median(floor)
    );
}

fn bench_restore(site: &Site) {
    // The snapshot is written in place rather than by a run of the job: the restore reads only
    // the snapshot, and this machine's disk holds the snapshot and one restored copy at a time.
    let snap = site.srv("backup_b", "bigsnap/2026-06-01T021500Z");
    std::fs::create_dir_all(&snap).unwrap();
    for i in 0..8 {
        let ok = Command::new("head")
            .args(["-c", "128M", "/dev/urandom"])
            .stdout(std::fs::File::create(snap.join(format!("part{i}"))).unwrap())
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let addr = site.net.host(site.h("backup_b")).addr.clone();
    let rsh = format!(
        "ssh -i /etc/bkc/id_ed25519 -o UserKnownHostsFile=/etc/bkc/known_hosts -o GlobalKnownHostsFile=/dev/null -o HostKeyAlias={addr} -o BatchMode=yes -p 22"
    );
    let from = format!("root@{addr}:/srv/bigsnap/2026-06-01T021500Z/");
    let file = site.file();
    let spec = "/etc/bkc/jobs/big.json";
    let (mut bare, mut runner, mut bkc) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let a = site.h("backup_a");
        let gone = |d: &str| std::fs::remove_dir_all(site.srv("backup_a", d)).unwrap();
        bare.push(timed(
            site.net
                .cmd(a, &["rsync", "-a", "-e", &rsh, &from, "/srv/r-bare/"]),
        ));
        gone("r-bare");
        runner.push(timed(site.net.cmd(
            a,
            &[harness::runner(), "restore", spec, "--to", "/srv/r-run"],
        )));
        gone("r-run");
        bkc.push(timed(site.bkc_cmd(&[
            "restore",
            "big",
            &file,
            "--to",
            "/srv/r-bkc",
        ])));
        gone("r-bkc");
    }
    let base = median(bare.clone());
    for (what, t) in [
        ("bare `rsync -a` over SSH", &bare),
        ("`bkc-run restore` on the job's host", &runner),
        ("`bkc restore` from the operator's side", &bkc),
    ] {
        println!(
            "| 1 GiB restore: {what} | {:.2} s | {:.2} s | {:.3} |",
            median(t.clone()),
            min(t),
            median(t.clone()) / base
        );
    }
}

fn main() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench restore: skipped, it needs root (network namespaces with their own sshd)");
        return;
    }
    let Some(site) = Site::new(&["backup_a", "backup_b"], JOBS) else {
        return;
    };
    snapshots(&site);
    println!(
        "| case | median of {RUNS} | min | SSH connections per listing | floor: `find` on the destination |"
    );
    println!("|---|---|---|---|---|");
    bench_snapshots(&site);
    println!();
    println!("| case | median of {RUNS} | min | to bare rsync (medians) |");
    println!("|---|---|---|---|");
    bench_restore(&site);
}
