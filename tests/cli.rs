//! The `bkc` command as a user meets it: exit codes, warnings, unreadable input, `--host`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn bkc(args: &[&str]) -> Output {
    Command::new(common::bin("bkc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bkc-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const WARNS: &str = r#"host "a"
host "b" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
job "one" on="a" {
    schedule "daily"
    sync "/x/" "b:/srv/same/"
}
job "two" on="a" {
    schedule "daily"
    sync "/y/" "b:/srv/same/"
}
"#;

#[test]
fn check_passes_a_clean_file() {
    let o = bkc(&["check", "examples/seed-chain.kdl"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("examples/seed-chain.kdl: ok, 3 hosts, 2 jobs"));
}

#[test]
fn errors_exit_1_and_name_the_file_and_line() {
    let o = bkc(&["check", "tests/data/readme-typo.kdl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tests/data/readme-typo.kdl:6:32"),
        "{}",
        stderr(&o)
    );
    let d = scratch("errors");
    let o = bkc(&[
        "build",
        "tests/data/readme-typo.kdl",
        "-o",
        d.join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.join("out").exists(), "a failed build writes nothing");
}

#[test]
fn warnings_fail_only_when_denied() {
    let d = scratch("warn");
    let f = d.join("w.kdl");
    std::fs::write(&f, WARNS).unwrap();
    let f = f.to_str().unwrap();
    let o = bkc(&["check", f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("bkc::derived_exclusion"));
    assert!(stderr(&o).contains("0 errors, 1 warning"));
    let o = bkc(&["check", f, "--deny-warnings"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn unreadable_input_exits_2_with_a_reason() {
    let o = bkc(&["check", "no/such/file.kdl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read no/such/file.kdl"),
        "{}",
        stderr(&o)
    );

    let d = scratch("bad");
    let bin = d.join("binary.kdl");
    std::fs::write(&bin, b"host \"a\"\n\xff\xfe").unwrap();
    let o = bkc(&["check", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));

    let big = d.join("big.kdl");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(bkc::syntax::MAX_BYTES as u64 + 1).unwrap();
    let o = bkc(&["check", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at most"), "{}", stderr(&o));
}

#[test]
fn host_limits_the_output() {
    let d = scratch("host");
    let out = d.join("out");
    let o = bkc(&[
        "build",
        "examples/seed-chain.kdl",
        "-o",
        out.to_str().unwrap(),
        "--host",
        "desktop",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let hosts: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(hosts, ["desktop"]);
    let o = bkc(&[
        "build",
        "examples/seed-chain.kdl",
        "-o",
        out.to_str().unwrap(),
        "--host",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"));
}

/// A rebuild leaves hosts that are already up to date untouched, and rewrites a host whose
/// directory was changed by hand.
#[test]
fn rebuild_rewrites_only_what_differs() {
    use std::os::unix::fs::MetadataExt;
    let d = scratch("rebuild");
    let out = d.join("out");
    let o = out.to_str().unwrap();
    assert!(
        bkc(&["build", "examples/seed-chain.kdl", "-o", o])
            .status
            .success()
    );
    let timer = out.join("desktop/etc/systemd/system/bkc-desktop-to-a.timer");
    let inode = std::fs::metadata(&timer).unwrap().ino();
    let r = bkc(&["build", "examples/seed-chain.kdl", "-o", o]);
    assert!(
        stderr(&r).contains("(0 written, 3 already up to date)"),
        "{}",
        stderr(&r)
    );
    assert_eq!(std::fs::metadata(&timer).unwrap().ino(), inode);

    std::fs::write(&timer, "edited by hand\n").unwrap();
    std::fs::write(out.join("backup_a/etc/stray"), "x").unwrap();
    let r = bkc(&["build", "examples/seed-chain.kdl", "-o", o]);
    assert!(
        stderr(&r).contains("(2 written, 1 already up to date)"),
        "{}",
        stderr(&r)
    );
    assert!(
        std::fs::read_to_string(&timer)
            .unwrap()
            .contains("OnCalendar=daily")
    );
    assert!(!out.join("backup_a/etc/stray").exists());
}
