//! The integration tests, one test binary: each file beside this one is a module of it, sharing
//! tests/common and the test hosts of tests/harness. One binary links once, where one per file
//! linked the library and its dependencies into each.
//!
//! tests/deploy_fleet.rs is a binary of its own: its containers live as long as the binary, and
//! would otherwise keep their timers firing through every test after them.
//!
//! Cargo.toml turns off cargo's one-binary-per-file discovery (`autotests = false`), so a new
//! file here is compiled only once it is named below or in Cargo.toml;
//! `every_test_file_is_compiled` fails until it is.

/// `insta::assert_snapshot!` under the name a snapshot had when each test file was a test binary
/// of its own, `<file>__<name>`: insta would otherwise prepend this crate's name too, and every
/// file in tests/snapshots would change its name.
macro_rules! assert_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({ prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(
                format!("{}__{}", module_path!().rsplit("::").next().unwrap(), $name),
                $value
            )
        })
    };
}

mod common;
mod harness;

mod calendar_systemd;
mod cli;
mod contracts;
mod cron_corpus;
mod deploy_local;
mod diagnostics;
mod duration_systemd;
mod examples;
mod faults;
mod fmt;
mod graph;
mod hooks;
mod hostile;
mod import;
mod junk;
mod kdl_differential;
mod monitor;
mod nix;
mod readme;
mod report_browser;
mod restore;
mod runner_locks;
mod runner_sync;
mod serve;
mod simulate;
mod slots;
mod source_snapshot;
mod systemd;
mod watch;

#[test]
fn every_test_file_is_compiled() {
    let root = std::fs::read_to_string(file!()).unwrap();
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    let mut missing: Vec<String> = std::fs::read_dir("tests")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|stem| {
            !root.lines().any(|l| l == format!("mod {stem};"))
                && !manifest.contains(&format!("path = \"tests/{stem}.rs\""))
        })
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "tests/{{{}}}.rs: not compiled, add `mod NAME;` to {}",
        missing.join(","),
        file!()
    );
}
