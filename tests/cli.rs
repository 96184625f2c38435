//! The `bkc` command as a user meets it: exit codes, warnings, unreadable input, `--host`.

use crate::common;

use std::path::PathBuf;
use std::process::Output;

use common::{bkc, stderr};

fn scratch(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

const WARNS: &str = r#"host "a" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
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

/// `o` exited with `code` and said `text` on stderr.
fn exits_saying(o: &Output, code: i32, text: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    assert!(stderr(o).contains(text), "{}", stderr(o));
}

#[test]
fn check_passes_a_clean_file() {
    let o = bkc(&["check", "examples/seed-chain.kdl"]);
    exits_saying(&o, 0, "examples/seed-chain.kdl: ok, 3 hosts, 2 jobs");
}

#[test]
fn errors_exit_1_and_name_the_file_and_line() {
    let o = bkc(&["check", "tests/data/readme-typo.kdl"]);
    exits_saying(&o, 1, "tests/data/readme-typo.kdl:6:32");
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
    exits_saying(&o, 0, "bkc::derived_exclusion");
    assert!(stderr(&o).contains("0 errors, 1 warning"));
    let o = bkc(&["check", f, "--deny-warnings"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn unreadable_input_exits_2_with_a_reason() {
    let o = bkc(&["check", "no/such/file.kdl"]);
    exits_saying(&o, 2, "cannot read no/such/file.kdl");

    let d = scratch("bad");
    let bin = d.join("binary.kdl");
    std::fs::write(&bin, b"host \"a\"\n\xff\xfe").unwrap();
    let o = bkc(&["check", bin.to_str().unwrap()]);
    exits_saying(&o, 2, "not UTF-8");

    let big = d.join("big.kdl");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(bkc::syntax::MAX_BYTES as u64 + 1).unwrap();
    let o = bkc(&["check", big.to_str().unwrap()]);
    exits_saying(&o, 2, "at most");
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
    exits_saying(&o, 2, "nope");
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

/// `bkc init` writes a starter that passes `bkc check`, and never overwrites by accident.
#[test]
fn init_writes_a_starter_that_checks() {
    let d = scratch("init");
    for example in ["seed-chain", "pull-server"] {
        let f = d.join(format!("{example}.kdl"));
        let f = f.to_str().unwrap();
        let o = bkc(&["init", "--example", example, "-o", f]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.starts_with("// A starter topology from `bkc init`"));
        let o = bkc(&["check", f, "--deny-warnings"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(bkc(&["fmt", "--check", f]).status.code(), Some(0));

        std::fs::write(f, "mine\n").unwrap();
        let o = bkc(&["init", "--example", example, "-o", f]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("already exists; pass --force"));
        assert_eq!(std::fs::read_to_string(f).unwrap(), "mine\n");
        let o = bkc(&["init", "--example", example, "-o", f, "--force"]);
        assert_eq!(o.status.code(), Some(0));
        assert_eq!(std::fs::read_to_string(f).unwrap(), text);
    }
}

#[test]
fn completions_and_man_page() {
    for (shell, marker) in [
        ("bash", "_bkc()"),
        ("zsh", "#compdef bkc"),
        ("fish", "complete -c bkc"),
    ] {
        let o = bkc(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        let script = String::from_utf8(o.stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        assert!(
            script.contains("rsyncdirector"),
            "{shell} completes subcommands"
        );
    }
    let o = bkc(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH bkc"),
        "{page}"
    );
    let o = bkc(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples:"));
}

/// -q leaves only errors; -v adds timings; results go to stdout, messages to stderr.
#[test]
fn quiet_and_verbose() {
    let d = scratch("verbosity");
    let f = d.join("w.kdl");
    std::fs::write(&f, WARNS).unwrap();
    let f = f.to_str().unwrap();
    let o = bkc(&["check", f, "-q"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "");
    let o = bkc(&["-v", "check", f]);
    assert!(stderr(&o).contains("timings: parse"), "{}", stderr(&o));
    assert!(stderr(&o).contains("bkc::derived_exclusion"));
    let o = bkc(&["check", "tests/data/readme-typo.kdl", "-q"]);
    exits_saying(&o, 1, "bkc::unknown_host");
    assert!(o.stdout.is_empty());
    let o = bkc(&["-q", "-v", "check", f]);
    assert_eq!(o.status.code(), Some(2), "-q and -v exclude each other");
}

/// `plan --detailed-exitcode` keeps 2 for "there are changes": a `--host` that matches no host
/// is an error there (1), named with a hint, and bkc stops before reaching any host.
#[test]
fn detailed_exitcode_never_reads_a_typo_as_changes() {
    let plan = |args: &[&str]| {
        let mut all = vec!["plan", "examples/seed-chain.kdl"];
        all.extend_from_slice(args);
        bkc(&all)
    };
    let o = plan(&["--detailed-exitcode", "--host", "desktp"]);
    exits_saying(
        &o,
        1,
        "no host `desktp` in examples/seed-chain.kdl; did you mean `desktop`?",
    );
    assert!(o.stdout.is_empty(), "nothing was planned");
    let o = plan(&["--detailed-exitcode", "--host", "@ofsite"]);
    exits_saying(&o, 1, "did you mean `@offsite`?");
    let o = plan(&["--detailed-exitcode", "--hots", "desktop"]);
    exits_saying(&o, 1, "--hots");
    let o = plan(&["--host", "desktp"]);
    exits_saying(&o, 2, "no host `desktp`");
}

/// Every command that takes `--host` reads names and @tags alike and refuses one that matches
/// no host, before doing anything.
#[test]
fn host_takes_names_and_tags_everywhere() {
    let d = scratch("tags");
    let out = d.join("out");
    let out = out.to_str().unwrap();
    let o = bkc(&[
        "build",
        "examples/seed-chain.kdl",
        "-o",
        out,
        "--host",
        "@lan",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut hosts: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["backup_a", "desktop"]);
    let o = bkc(&["graph", "examples/seed-chain.kdl", "--host", "@offsite"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("backup_b"));
    for command in ["build", "graph", "plan", "apply", "status"] {
        let o = bkc(&[command, "examples/seed-chain.kdl", "--host", "@nope"]);
        exits_saying(
            &o,
            2,
            "no host with the tag `@nope` in examples/seed-chain.kdl (its tags: @lan, @offsite)",
        );
    }
    let o = bkc(&["rollback", "desktp", "examples/seed-chain.kdl"]);
    exits_saying(&o, 2, "did you mean `desktop`?");
}

/// A closed pipe (`bkc completions zsh | head -1`) ends every command the same way: no message,
/// and not a success.
#[test]
fn a_closed_pipe_is_quiet_and_2() {
    let commands: [&[&str]; 3] = [
        &["completions", "zsh"],
        &["man"],
        &["graph", "examples/seed-chain.kdl"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(common::bin("bkc"))
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        exits_saying(&o, 2, "");
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}
