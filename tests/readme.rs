//! The README's commands, run as a user would: each `console` block's `$ bkc ...` line is run
//! with the built binary and its output (stdout and stderr, as a terminal shows them) must be
//! exactly what the README says, so the README cannot drift from the program.
//!
//! The blocks run in order in one scratch directory that links to `examples/` and `tests/`, so a
//! transcript may write files (`bkc init` writes `./bkc.kdl`) and a later one may read them.

use crate::common;

use std::process::Command;

#[test]
fn console_transcripts_match() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let root = std::env::current_dir().unwrap();
    let dir = common::scratch("readme", "cwd");
    for sub in ["examples", "tests"] {
        std::os::unix::fs::symlink(root.join(sub), dir.join(sub)).unwrap();
    }
    let mut blocks = 0;
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "```console" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            body.push(l.get(indent..).unwrap_or("").to_string());
        }
        let (cmd, expected) = body.split_first().expect("a console block has a command");
        let args: Vec<&str> = cmd
            .strip_prefix("$ bkc ")
            .expect("console blocks run bkc")
            .split_whitespace()
            .collect();
        let out = Command::new(common::bin("bkc"))
            .args(&args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let got = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<&str> = got.lines().map(str::trim_end).collect();
        let want: Vec<&str> = expected.iter().map(|s| s.trim_end()).collect();
        assert_eq!(got, want, "README transcript of `{cmd}`");
        blocks += 1;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        blocks >= 4,
        "the README shows a transcript of check, init, fmt and import"
    );
}

/// The README's first command works as written, from the repository root.
#[test]
fn quick_start_build_works() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let first = readme
        .lines()
        .find(|l| l.starts_with("cargo run -- "))
        .expect("the README starts with a cargo run command");
    let args: Vec<&str> = first
        .strip_prefix("cargo run -- ")
        .unwrap()
        .split_whitespace()
        .collect();
    let out_dir = std::env::temp_dir().join(format!("bkc-readme-{}", std::process::id()));
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let o = args
        .iter()
        .position(|a| a == "-o")
        .expect("the build names its output");
    args[o + 1] = out_dir.display().to_string();
    let status = Command::new(common::bin("bkc"))
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        out_dir
            .join("desktop/etc/systemd/system/bkc-desktop-to-a.timer")
            .is_file()
    );
    std::fs::remove_dir_all(&out_dir).unwrap();
}
