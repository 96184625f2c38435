//! `bkc fmt`: the canonical layout is stable, keeps every comment and the meaning of the file,
//! and `--check` fails on a file that is not in it.

use crate::common;

use bkc::fmt::{format, same_meaning};
use common::{bkc, stderr};
use kdl::KdlDocument;

fn examples() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 2);
    out
}

fn fmt(text: &str) -> String {
    format(&text.parse().unwrap(), text)
}

/// The same file laid out carelessly: two-space indents, padded entries, extra blank lines.
fn messy(text: &str) -> String {
    text.lines()
        .map(|l| {
            let depth = (l.len() - l.trim_start().len()) / 4;
            let body = l.trim_start().replace("\" ", "\"   ");
            format!("{}{body}\n", "  ".repeat(depth))
        })
        .collect::<String>()
        .replace("\n\n", "\n\n\n\n")
}

#[test]
fn examples_are_formatted_and_formatting_is_idempotent() {
    for (name, text) in examples() {
        let once = fmt(&text);
        assert_eq!(once, text, "{name} is in the canonical layout");
        assert_eq!(fmt(&once), once, "{name}");
        let untidy = messy(&text);
        assert_ne!(untidy, text);
        assert_eq!(fmt(&untidy), text, "{name} tidied back");
    }
}

#[test]
fn every_comment_survives() {
    for (name, text) in examples() {
        let out = fmt(&messy(&text));
        let mut comments = 0;
        for line in text.lines() {
            if let Some(at) = line.find("//") {
                assert!(out.contains(&line[at..]), "{name}: lost {:?}", &line[at..]);
                comments += 1;
            }
        }
        assert!(comments > 0, "{name} has comments to keep");
    }
    // Comments in every place KDL allows one.
    let src = "/* head */\nhost \"a\" /* between */ port=1 // after\n/-host \"b\"\njob \"j\" on=\"a\" /-{ gone } {\n    // first\n    sync \"/x\" \"/y\" { /* in */ opts \"-a\" }\n    /-exclude \"z\"\n    // last\n}\n// tail\n";
    let out = fmt(src);
    for c in [
        "/* head */",
        "/* between */",
        "// after",
        "/-host \"b\"",
        "/-{ gone }",
        "// first",
        "/* in */",
        "/-exclude \"z\"",
        "// last",
        "// tail",
    ] {
        assert!(out.contains(c), "lost {c}:\n{out}");
    }
    assert_eq!(fmt(&out), out);
    assert!(same_meaning(
        &src.parse::<KdlDocument>().unwrap(),
        &out.parse::<KdlDocument>().unwrap()
    ));
}

#[test]
fn arguments_come_before_properties() {
    assert_eq!(
        fmt("host address=\"a.example\" \"a\" port=2\n"),
        "host \"a\" address=\"a.example\" port=2\n"
    );
}

#[test]
fn check_fails_on_an_unformatted_file_and_fmt_fixes_it() {
    let dir = common::scratch("fmt", "check");
    let f = dir.join("bkc.kdl");
    let text = std::fs::read_to_string("examples/seed-chain.kdl").unwrap();
    std::fs::write(&f, messy(&text)).unwrap();
    let path = f.to_str().unwrap();

    let o = bkc(&["fmt", "--check", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{path}: not formatted")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("+    host-key"),
        "shows a diff: {}",
        stderr(&o)
    );

    let o = bkc(&["fmt", path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    assert_eq!(bkc(&["fmt", "--check", path]).status.code(), Some(0));

    // A file with syntax errors is shown, not formatted.
    let broken = "host \"a\" {\n  tag \"x\"\n";
    std::fs::write(&f, broken).unwrap();
    let o = bkc(&["fmt", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bkc::syntax"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), broken);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bkc fmt` and `-o` rewrite a file through a temporary file beside it. In a directory another
/// account may write (/tmp, a shared checkout) a predictable temporary name let that account
/// plant a symlink there and have bkc write through it; the mode of the file must survive too.
#[test]
fn fmt_never_writes_through_a_planted_symlink_and_keeps_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("bkc-fmt-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = dir.join("victim");
    std::fs::write(&victim, "someone's file").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".bkc.kdl.bkc-tmp")).unwrap();
    let f = dir.join("bkc.kdl");
    let text = std::fs::read_to_string("examples/seed-chain.kdl").unwrap();
    std::fs::write(&f, messy(&text)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = bkc(&["fmt", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), text);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "someone's file");
    let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}
