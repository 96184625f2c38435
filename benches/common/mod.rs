//! The topology generator and the release binary the benchmarks share.

// tests/kdl_differential.rs includes this file for the topology alone.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the release `bkc` the benchmarks run.
pub fn build_release() {
    let built = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "bkc"])
        .status()
        .unwrap();
    assert!(built.success());
}

/// Where [`build_release`] puts `bkc`.
pub fn bkc() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("release/bkc")
}

/// A topology in the style of the seed chain: `jobs` jobs spread over `hosts` hosts (at least
/// two), each syncing its host's data to the next host at 03:MM, every fifth also keeping
/// snapshots, every tenth blocking on the job before it, each taking `expected` if given. Each
/// job has a key of its own (restricted keys, the default).
pub fn topology(jobs: usize, hosts: usize, expected: Option<&str>) -> String {
    topology_with(jobs, hosts, expected, "")
}

/// [`topology`] with `defaults` holding `settings` (such as `ssh-keys "operator"`).
pub fn topology_with(jobs: usize, hosts: usize, expected: Option<&str>, settings: &str) -> String {
    let hosts = hosts.max(2);
    let mut s = format!("defaults {{\n{settings}}}\n");
    for h in 0..hosts {
        writeln!(
            s,
            "host \"h{h}\" address=\"h{h}.example.com\" {{\n    host-key \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiHVL3zFL6hLBhJSKvFibnrF4/SbGfY\"\n}}"
        )
        .unwrap();
    }
    for j in 0..jobs {
        let (on, to) = (j % hosts, (j + 1) % hosts);
        writeln!(
            s,
            "job \"j{j}\" on=\"h{on}\" {{\n    cron \"{} 3 * * *\"",
            j % 60
        )
        .unwrap();
        if let Some(d) = expected {
            writeln!(s, "    expected-duration \"{d}\"").unwrap();
        }
        if j % 10 == 9 {
            writeln!(s, "    blocks-on \"j{}\" wait=\"5m\" timeout=\"6h\"", j - 1).unwrap();
        }
        writeln!(s, "    sync \"/srv/data/j{j}/\" \"h{to}:/srv/backup/j{j}/\" {{\n        opts \"-a\" \"--delete\"\n        exclude \".cache\"").unwrap();
        if j % 5 == 0 {
            writeln!(s, "        snapshot keep-daily=7 keep-weekly=4").unwrap();
        }
        writeln!(s, "    }}\n}}").unwrap();
    }
    s
}
