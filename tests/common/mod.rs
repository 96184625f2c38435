//! Helpers shared by the integration tests.
//!
//! Some tests compare bkc with real tools (systemd-analyze, rsync, croniter) or need root. On a
//! developer machine without them such a test prints why and passes; on CI (`CI=true`) a
//! missing tool is a broken test environment, so the test fails instead of silently skipping.
//!
//! Use it at the top of a test: `if !common::require_tool("systemd-analyze") { return; }`.

// Each test binary compiles this file and uses only some of it.
#![allow(dead_code)]

use std::path::Path;

/// True if `name` (a program on PATH, or a path) can be run. Otherwise skip: print a message
/// and return false, or panic when running on CI.
pub fn require_tool(name: &str) -> bool {
    let found = if name.contains('/') {
        is_executable(Path::new(name))
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
        })
    };
    found || skip(&format!("`{name}` is not installed"))
}

/// True if the test runs as root. Otherwise skip (or panic on CI), like [`require_tool`].
pub fn require_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0 || skip("this test needs root")
}

/// Report that a test cannot run here: returns false, or panics when the env var CI is "true".
pub fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (required on CI)");
    }
    eprintln!("skipping: {reason}");
    false
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The path of a binary of this crate, built by cargo for the integration tests.
pub fn bin(name: &str) -> std::path::PathBuf {
    match name {
        "bkc" => env!("CARGO_BIN_EXE_bkc").into(),
        "bkc-run" => env!("CARGO_BIN_EXE_bkc-run").into(),
        other => panic!("no binary {other}"),
    }
}
