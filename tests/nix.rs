//! The Nix side, checked by Nix itself and without nixpkgs (which cannot be fetched offline):
//! flake.nix, every emitted module and the README's examples parse; every module, evaluated
//! with a stand-in for nixpkgs' lib (tests/nix/), declares exactly the units, job specs and
//! known_hosts of the unit files bkc writes for the same host; the flake's module declares the
//! same as the module it imports; and `nix flake check` passes against a stand-in nixpkgs.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A scratch directory with its own Nix state, removed when dropped.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("bkc-nix-{}-{name}", std::process::id()));
        remove(&dir);
        let conf = dir.join("nix-conf");
        std::fs::create_dir_all(&conf).unwrap();
        // No nixbld group here; evaluation and flake checks build nothing.
        std::fs::write(conf.join("nix.conf"), "build-users-group =\n").unwrap();
        Scratch { dir }
    }

    /// A Nix command that keeps all its state in the scratch directory.
    fn nix(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("NIX_STATE_DIR", self.dir.join("nix-state"))
            .env("NIX_LOG_DIR", self.dir.join("nix-log"))
            .env("NIX_CONF_DIR", self.dir.join("nix-conf"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"));
        c
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.dir);
    }
}

/// Remove a tree, including a Nix store's read-only directories.
fn remove(dir: &Path) {
    if dir.exists() {
        let _ = Command::new("chmod").arg("-R").arg("u+w").arg(dir).status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The bundled examples and the topologies of names and values that need escaping.
fn topologies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    v.push("tests/data/edge-cases.kdl".into());
    v.push("tests/data/dotted-names.kdl".into());
    v.push("tests/data/watch.kdl".into());
    v.sort();
    v
}

/// `bkc build` of `topology` in both forms: (unit files, NixOS modules) directories.
fn build(scratch: &Scratch, topology: &Path) -> (PathBuf, PathBuf) {
    let stem = topology.file_stem().unwrap().to_string_lossy();
    let systemd = scratch.dir.join(format!("{stem}-systemd"));
    let nixos = scratch.dir.join(format!("{stem}-nixos"));
    for (emit, out) in [("systemd", &systemd), ("nixos", &nixos)] {
        let mut c = Command::new(common::bin("bkc"));
        c.arg("build")
            .arg(topology)
            .args(["--emit", emit, "-o"])
            .arg(out);
        run(c);
    }
    (systemd, nixos)
}

fn hosts(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs Nix (nix-instantiate)"]
fn the_flake_and_every_emitted_module_parse() {
    if !common::require_tool("nix-instantiate") {
        return;
    }
    let scratch = Scratch::new("parse");
    let mut files = vec![PathBuf::from("flake.nix"), PathBuf::from("nix/module.nix")];
    for topology in topologies() {
        let (_, nixos) = build(&scratch, &topology);
        for host in hosts(&nixos) {
            files.push(nixos.join(host).join("bkc.nix"));
        }
    }
    // The README's Nix examples too, so that they stay valid Nix.
    let readme = std::fs::read_to_string("README.md").unwrap();
    for (i, block) in readme.split("```nix\n").skip(1).enumerate() {
        let file = scratch.dir.join(format!("readme-{i}.nix"));
        std::fs::write(&file, block.split("```").next().unwrap()).unwrap();
        files.push(file);
    }
    for file in &files {
        let mut c = scratch.nix("nix-instantiate");
        c.args(["--store", "dummy://", "--parse"]).arg(file);
        run(c);
    }
    assert!(files.len() >= 13, "only {} files parsed", files.len());
}

/// An authorized keys file as the module writes it with `runner = "@runner@"`: every forced
/// command runs that.
fn placeholder_runner(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once("command=\"") {
            Some((head, rest)) if l.contains("restrict,") => {
                let (_runner, tail) = rest.split_once(" serve ").unwrap();
                format!("{head}command=\"@runner@ serve {tail}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

/// A unit file as section -> its settings in file order, without comments and blank lines.
type Sections = BTreeMap<String, Vec<(String, String)>>;

fn parse_unit(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            sections.entry(current.clone()).or_default();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key=value");
        sections
            .get_mut(&current)
            .expect("a setting inside a section")
            .push((key.to_string(), value.to_string()));
    }
    sections
}

/// NixOS options of a unit (`unitConfig`, `serviceConfig`, ...) as the sections NixOS writes:
/// a list value is one line per element.
fn nix_sections(unit: &Value, options: &[(&str, &str)]) -> Sections {
    let mut sections = Sections::new();
    for (option, section) in options {
        let settings = sections.entry(section.to_string()).or_default();
        for (key, value) in unit[option].as_object().unwrap() {
            let values = match value {
                Value::Array(list) => list.clone(),
                v => vec![v.clone()],
            };
            for v in values {
                settings.push((key.clone(), v.as_str().expect("a string").to_string()));
            }
        }
    }
    sections
}

/// Settings sorted by key, keeping the order of a key's lines: NixOS writes keys in its own
/// order, and only the order of a repeated key's lines matters to systemd.
fn by_key(mut sections: Sections) -> Sections {
    for settings in sections.values_mut() {
        settings.sort_by(|a, b| a.0.cmp(&b.0));
    }
    sections
}

/// A path as a Nix expression, whatever characters the temporary directory has.
fn nix_path(path: &Path) -> String {
    let quoted = serde_json::to_string(&path.display().to_string()).unwrap();
    assert!(!quoted.contains('$'), "{quoted}");
    format!("(/. + {quoted})")
}

/// The module at `module` evaluated with the stand-in lib, once per case: with placeholder
/// runner and mkdir paths, with the defaults, through the flake's module, and disabled there.
fn evaluate(scratch: &Scratch, module: &Path, host: &str) -> Value {
    let module = module.canonicalize().unwrap();
    let flake_module = Path::new("nix/module.nix").canonicalize().unwrap();
    let expr = format!(
        r#"let eval = import ./tests/nix/eval.nix; in {{
            placeholders = eval {{ module = {m}; settings = {{ runner = "@runner@"; mkdir = "@mkdir@"; }}; }};
            defaults = eval {{ module = {m}; }};
            flake = eval {{ module = {f}; settings = {{ enable = true; topology = ./examples/seed-chain.kdl; host = "{host}"; generated = {m}; }}; }};
            disabled = eval {{ module = {f}; settings = {{ topology = ./examples/seed-chain.kdl; host = "{host}"; generated = {m}; }}; }};
        }}"#,
        m = nix_path(&module),
        f = nix_path(&flake_module),
    );
    let mut c = scratch.nix("nix-instantiate");
    c.args(["--store", "dummy://", "--eval", "--strict", "--json", "-E"])
        .arg(expr);
    serde_json::from_str(&run(c)).unwrap()
}

#[test]
#[ignore = "needs Nix (nix-instantiate)"]
fn every_module_declares_what_the_unit_files_say() {
    if !common::require_tool("nix-instantiate") {
        return;
    }
    let scratch = Scratch::new("eval");
    let mut units = 0;
    for topology in topologies() {
        let (systemd, nixos) = build(&scratch, &topology);
        assert_eq!(hosts(&systemd), hosts(&nixos));
        for host in hosts(&nixos) {
            let what = format!("{}:{host}", topology.display());
            let root = systemd.join(&host);
            let got = evaluate(&scratch, &nixos.join(&host).join("bkc.nix"), &host);
            let config = &got["placeholders"];

            // Every file under etc/ that is not a unit is in environment.etc, with its text;
            // the manifest is for `bkc apply`, and NixOS keeps its own generations.
            let mut want_etc = BTreeMap::new();
            let mut want_units = BTreeMap::new();
            for e in walkdir::WalkDir::new(root.join("etc")) {
                let e = e.unwrap();
                if !e.file_type().is_file() {
                    continue;
                }
                let rel = e.path().strip_prefix(root.join("etc")).unwrap();
                let rel = rel.to_string_lossy().into_owned();
                let text = std::fs::read_to_string(e.path()).unwrap();
                if let Some(unit) = rel.strip_prefix("systemd/system/") {
                    want_units.insert(unit.to_string(), text);
                } else if rel.starts_with("bkc/authorized_keys/") {
                    // The forced commands run the module's runner, a placeholder here.
                    want_etc.insert(rel, placeholder_runner(&text));
                } else if rel != "bkc/manifest.json" && rel != "ssh/sshd_config.d/bkc.conf" {
                    want_etc.insert(rel, text);
                }
            }
            // In place of the sshd drop-in, the module adds bkc's file to sshd's list.
            let dropin = root.join("etc/ssh/sshd_config.d/bkc.conf").exists();
            assert_eq!(
                config["services"]["openssh"]["authorizedKeysFiles"],
                if dropin {
                    serde_json::json!(["/etc/bkc/authorized_keys/%u"])
                } else {
                    serde_json::json!([])
                },
                "{what}: authorizedKeysFiles"
            );
            // Every job key that is not pinned is made by the activation script.
            let script = config["system"]["activationScripts"]["bkc-keys"]
                .as_str()
                .unwrap();
            let text = std::fs::read_to_string(&topology).unwrap();
            let compiled = bkc::analyze::compile("t.kdl", &text);
            for job in compiled.topology.as_ref().unwrap().jobs.values() {
                if let Some(key) = job.key.as_ref().filter(|_| job.host == host) {
                    assert_eq!(
                        script.contains(&format!("-f {}\n", key.path)),
                        key.pinned.is_none(),
                        "{what}: {}'s key in {script}",
                        job.name
                    );
                }
            }
            let got_etc: BTreeMap<String, String> = config["environment"]["etc"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v["text"].as_str().unwrap().to_string()))
                .collect();
            assert_eq!(got_etc, want_etc, "{what}: environment.etc");

            let mut got_units = Vec::new();
            for (kind, options) in [
                (
                    "services",
                    &[("unitConfig", "Unit"), ("serviceConfig", "Service")][..],
                ),
                (
                    "timers",
                    &[("unitConfig", "Unit"), ("timerConfig", "Timer")][..],
                ),
                (
                    "paths",
                    &[("unitConfig", "Unit"), ("pathConfig", "Path")][..],
                ),
            ] {
                let suffix = &kind[..kind.len() - 1];
                for (name, unit) in config["systemd"][kind].as_object().unwrap() {
                    let file = format!("{name}.{suffix}");
                    got_units.push(file.clone());
                    let text = want_units
                        .get(&file)
                        .unwrap_or_else(|| panic!("{what}: no unit file {file}"));
                    let mut want = parse_unit(text);
                    for (key, value) in want.values_mut().flatten() {
                        // The programs' paths are options of the module, set to placeholders.
                        if key == "ExecStart" {
                            let (_runner, args) = value.split_once(' ').unwrap();
                            *value = format!("@runner@ {args}");
                        } else if key == "ExecStartPre" {
                            *value = value.replace("+/usr/bin/mkdir ", "+@mkdir@ ");
                        }
                    }
                    let mut got = nix_sections(unit, options);
                    if let Some(wanted_by) = unit["wantedBy"].as_array() {
                        got.insert(
                            "Install".into(),
                            wanted_by
                                .iter()
                                .map(|t| ("WantedBy".into(), t.as_str().unwrap().into()))
                                .collect(),
                        );
                    }
                    if kind == "services" {
                        // A backup is never restarted by a deploy; a watcher, which runs as
                        // long as the host, is.
                        let watcher = name.starts_with("bkc-watch@");
                        assert_eq!(unit["restartIfChanged"], watcher, "{what}: {file}");
                        assert_eq!(unit["path"].as_array().unwrap().len(), 2, "{what}: {file}");
                    }
                    assert_eq!(by_key(got), by_key(want), "{what}: {file}");
                    units += 1;
                }
            }
            got_units.sort();
            let want_names: Vec<String> = want_units.keys().cloned().collect();
            assert_eq!(got_units, want_names, "{what}: the same units");

            // With the defaults, the programs come from the package and from coreutils.
            let defaults = &got["defaults"];
            for (name, service) in defaults["systemd"]["services"].as_object().unwrap() {
                let config = &service["serviceConfig"];
                let start = config["ExecStart"].as_str().unwrap();
                let pre = config["ExecStartPre"].as_str().unwrap();
                assert!(
                    start.starts_with("/nix/store/") && start.contains("-bkc-0/bin/bkc-run "),
                    "{what}: {name}: {start}"
                );
                assert!(
                    pre.starts_with("+/nix/store/") && pre.contains("-coreutils/bin/mkdir -p --"),
                    "{what}: {name}: {pre}"
                );
                let path: Vec<&str> = service["path"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect();
                assert!(
                    path[0].ends_with("-rsync") && path[1].ends_with("-openssh"),
                    "{what}: {name}: {path:?}"
                );
            }
            // The flake's module says the same as the module it imports, and nothing when
            // it is not enabled.
            assert_eq!(got["flake"], got["defaults"], "{what}: the flake's module");
            assert_eq!(got["disabled"], serde_json::json!({}), "{what}: disabled");
        }
    }
    assert!(units >= 10, "only {units} units compared");
}

#[test]
#[ignore = "needs Nix (nix)"]
fn flake_check_passes_against_a_stand_in_nixpkgs() {
    if !common::require_tool("nix") {
        return;
    }
    let scratch = Scratch::new("flake");
    // A copy of what the flake reads, so that neither the worktree's build output nor its
    // git state (an uncommitted flake.nix) decides what Nix sees.
    let flake = scratch.dir.join("flake");
    std::fs::create_dir_all(flake.join("nix")).unwrap();
    for file in ["flake.nix", "Cargo.toml", "Cargo.lock", "nix/module.nix"] {
        std::fs::copy(file, flake.join(file)).unwrap();
    }
    let standin = Path::new("tests/nix/standin-nixpkgs")
        .canonicalize()
        .unwrap();
    let mut c = scratch.nix("nix");
    c.args(["--extra-experimental-features", "nix-command flakes"])
        .arg("--store")
        .arg(format!(
            "local?root={}",
            scratch.dir.join("store").display()
        ))
        .args(["flake", "check", "--no-build", "--no-write-lock-file"])
        .arg("--override-input")
        .arg("nixpkgs")
        .arg(format!("path:{}", standin.display()))
        .arg(format!("path:{}", flake.display()));
    run(c);
}
