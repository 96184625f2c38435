//! Every unit bkc emits, checked by systemd's own tools: `systemd-analyze verify` must print
//! nothing, and every service must score at most 2.5 in `systemd-analyze security`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bkc::analyze::compile;
use bkc::emit::emit;

const MAX_EXPOSURE: f64 = 2.5;

/// The bundled examples, and topologies of names and values that need escaping.
fn topologies() -> Vec<std::path::PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        // examples/rsyncdirector/ holds YAML for `bkc import`.
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    v.push("tests/data/edge-cases.kdl".into());
    v.push("tests/data/dotted-names.kdl".into());
    v.push("tests/data/source-snapshot.kdl".into());
    v.push("tests/data/watch.kdl".into());
    v.sort();
    v
}

/// Where the roots go: a copy of /usr/lib/systemd each, hundreds of megabytes in all.
fn base() -> PathBuf {
    std::env::temp_dir().join(format!("bkc-systemd-{}", std::process::id()))
}

/// Each topology's hosts, each written into its own root directory as `verify --root` needs it:
/// the units, systemd's own units, and the runner and mkdir at the paths the units name.
fn roots() -> Vec<(String, PathBuf)> {
    let base = base();
    let _ = std::fs::remove_dir_all(&base);
    let mut out = Vec::new();
    for path in topologies() {
        let text = std::fs::read_to_string(&path).unwrap();
        let c = compile(&path.display().to_string(), &text);
        let t = c.topology.expect("examples compile");
        let artifacts = emit(&t, &[]).unwrap();
        for (host, files) in &artifacts.hosts {
            let root = base.join(format!(
                "{}-{host}",
                path.file_stem().unwrap().to_string_lossy()
            ));
            for (p, f) in &files.files {
                let target = root.join(p.trim_start_matches('/'));
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, &f.bytes).unwrap();
            }
            let runners: Vec<&str> = t.jobs.values().map(|j| j.service.runner.as_str()).collect();
            for exe in runners.into_iter().chain(["/usr/bin/mkdir"]) {
                let target = root.join(exe.trim_start_matches('/'));
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(common::bin("bkc-run"), &target).unwrap();
            }
            let lib = root.join("usr/lib");
            std::fs::create_dir_all(&lib).unwrap();
            let ok = Command::new("cp")
                .arg("-a")
                .arg("/usr/lib/systemd")
                .arg(&lib)
                .status()
                .unwrap();
            assert!(ok.success());
            out.push((format!("{}:{host}", path.display()), root));
        }
    }
    out
}

fn units(root: &Path) -> Vec<String> {
    let dir = root.join("etc/systemd/system");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.map(|e| {
                format!(
                    "/etc/systemd/system/{}",
                    e.unwrap().file_name().to_string_lossy()
                )
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
#[ignore = "needs systemd-analyze"]
fn every_unit_passes_verify_and_the_security_bar() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let mut checked = 0;
    for (what, root) in roots() {
        let units = units(&root);
        if units.is_empty() {
            continue;
        }
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(format!("--root={}", root.display()))
            .args(&units)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Unknown keys only warn with status 0: any output at all is a failure.
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{what}: {stderr}"
        );

        for unit in &units {
            if let Some(service) = unit.strip_suffix(".timer") {
                assert!(
                    units.contains(&format!("{service}.service")),
                    "{what}: {unit} has no service"
                );
                continue;
            }
            if let Some(job) = unit
                .strip_prefix("/etc/systemd/system/bkc-watch@")
                .and_then(|u| u.strip_suffix(".path"))
            {
                assert!(
                    units.contains(&format!("/etc/systemd/system/bkc-{job}.service")),
                    "{what}: {unit} starts no service"
                );
                continue;
            }
            let out = Command::new("systemd-analyze")
                .args(["security", "--offline=yes"])
                .arg(format!("--root={}", root.display()))
                .arg(unit)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let score: f64 = text
                .lines()
                .find_map(|l| l.split("Overall exposure level for ").nth(1))
                .and_then(|rest| rest.split(':').nth(1))
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{what}: no score for {unit}: {text}"));
            assert!(
                score <= MAX_EXPOSURE,
                "{what}: {unit} scores {score}\n{text}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} services checked");
    std::fs::remove_dir_all(base()).unwrap();
}
