//! Shared by the integration tests: tools and privileges a test needs.
//!
//! A test that cannot run here (no root, a tool missing) says why and skips on a laptop; in CI
//! (`CI=true`) the same situation fails the test, so nothing is silently left untested.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn unavailable(why: &str) -> bool {
    if in_ci() {
        panic!("{why} (CI=true: not skipping)");
    }
    eprintln!("skipped: {why}");
    false
}

/// True when `name` can be run; otherwise skip (false) or, in CI, fail.
pub fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    found || unavailable(&format!("`{name}` is not installed"))
}

/// True when running as root; otherwise skip (false) or, in CI, fail.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || unavailable("this test needs root")
}

/// The path of a binary of this crate, built by cargo for the integration tests.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "bkc" => env!("CARGO_BIN_EXE_bkc").into(),
        "bkc-run" => env!("CARGO_BIN_EXE_bkc-run").into(),
        other => panic!("no binary {other}"),
    }
}
