//! The hostile corpus: tests/hostile/cases/, written by tests/hostile/generate.py. Topologies and
//! job specs whose names, paths, addresses, users, descriptions and options hold quotes, `$(...)`,
//! backticks, `;`, line breaks, `%`, leading dashes, `..`, Unicode, very long values, ssh_config
//! tokens and IPv6 literals.
//!
//! Each case is refused (a topology with a diagnostic that names its line, a spec with the
//! runner's message) or built, and then every built topology passes `systemd-analyze verify` and
//! `nix-instantiate --parse` and every built topology and accepted spec runs for real on two
//! namespace hosts with real sshd and rsync, under a canary: no file outside the paths the case
//! names is created, changed or removed on either host, and no file named after the payloads'
//! CANARY (what `touch` in an injected command would make) appears anywhere a shell could put it.
//!
//! The hosts share the machine's file system except /srv (tests/harness), so every path of the
//! corpus is under /srv: the whole of each host's /srv is compared before and after each run.

use crate::{common, harness};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bkc::analyze::compile;
use bkc::diag::render;
use bkc::spec::{Command as HookCommand, JobSpec};
use harness::Net;

const CANARY: &str = "BKCPWN";

struct Case {
    name: String,
    text: String,
}

impl Case {
    fn is_spec(&self) -> bool {
        self.name.ends_with(".json")
    }
}

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = std::fs::read_dir("tests/hostile/cases")
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            Case {
                name: p.file_name().unwrap().to_string_lossy().into_owned(),
                text: std::fs::read_to_string(&p).unwrap(),
            }
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Where the placeholders of a case point: the two hosts' addresses, and for specs the files
/// ssh needs.
struct Places {
    alpha: String,
    beta: String,
    alpha6: String,
    beta6: String,
    known_hosts: String,
    identity: String,
    known_hosts_odd: String,
    identity_odd: String,
}

impl Places {
    /// Documentation addresses, for reading cases without running them.
    fn nowhere() -> Places {
        Places {
            alpha: "192.0.2.11".into(),
            beta: "192.0.2.12".into(),
            alpha6: "2001:db8::11".into(),
            beta6: "2001:db8::12".into(),
            known_hosts: "/nonexistent/known_hosts".into(),
            identity: "/nonexistent/id".into(),
            known_hosts_odd: "/nonexistent/known hosts".into(),
            identity_odd: "/nonexistent/i d".into(),
        }
    }

    fn fill(&self, text: &str) -> String {
        let json = |s: &str| {
            let q = serde_json::to_string(s).unwrap();
            q[1..q.len() - 1].to_string()
        };
        text.replace("@alpha6@", &self.alpha6)
            .replace("@beta6@", &self.beta6)
            .replace("@alpha@", &self.alpha)
            .replace("@beta@", &self.beta)
            .replace("@known_hosts_odd@", &json(&self.known_hosts_odd))
            .replace("@identity_odd@", &json(&self.identity_odd))
            .replace("@known_hosts@", &json(&self.known_hosts))
            .replace("@identity@", &json(&self.identity))
    }
}

/// `name:LINE:COLUMN` in a rendered diagnostic: it points at a line of the file.
fn names_a_line(rendered: &str, file: &str) -> bool {
    rendered.match_indices(&format!("{file}:")).any(|(i, m)| {
        let rest = &rendered[i + m.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let col: String = parts
            .next()
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) && !col.is_empty()
    })
}

/// How bkc (a topology) or bkc-run (a spec) takes each case; refused topologies must name a line.
fn outcomes(places: &Places) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for c in cases() {
        let text = places.fill(&c.text);
        if c.is_spec() {
            let refusal = bkc_runner::read_spec(&text).err();
            if let Some(m) = &refusal {
                assert!(!m.trim().is_empty(), "{}: an empty refusal", c.name);
            }
            out.push((c.name, refusal));
            continue;
        }
        let compiled = compile(&c.name, &text);
        if compiled.errors() == 0 {
            out.push((c.name, None));
            continue;
        }
        for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
            let shown = render(std::slice::from_ref(d), false, 100);
            assert!(
                names_a_line(&shown, &c.name),
                "{}: this error names no line:\n{shown}",
                c.name
            );
        }
        let mut codes: Vec<&str> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code.as_str())
            .collect();
        codes.dedup();
        out.push((c.name, Some(codes.join(" "))));
    }
    out
}

/// Every case is refused at a line or built; which is which is a reviewed snapshot, so a value
/// that starts to pass (or stops) shows in a diff.
#[test]
fn every_case_is_refused_at_a_line_or_built() {
    let all = outcomes(&Places::nowhere());
    assert!(all.len() >= 100, "only {} cases", all.len());
    let refused = all.iter().filter(|(_, r)| r.is_some()).count();
    assert!(
        refused > 0 && refused < all.len(),
        "{refused} of {}",
        all.len()
    );
    let text: Vec<String> = all
        .iter()
        .map(|(name, r)| match r {
            Some(why) => format!("{name}: refused: {}", bkc::printable::printable_line(why)),
            None if name.ends_with(".json") => format!("{name}: accepted"),
            None => format!("{name}: built"),
        })
        .collect();
    assert_snapshot!("outcomes", text.join("\n"));
}

/// The built topologies, compiled against `places`.
fn built(places: &Places) -> Vec<(String, bkc::topology::Topology)> {
    cases()
        .into_iter()
        .filter(|c| !c.is_spec())
        .filter_map(|c| {
            let t = compile(&c.name, &places.fill(&c.text)).topology?;
            Some((c.name, t))
        })
        .collect()
}

/// Every key the units of the bundled examples use: a hostile unit with any other key holds a
/// value that broke out of its line.
fn unit_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut inputs: Vec<(String, String)> = common::examples();
    inputs.push((
        "edge-cases".into(),
        std::fs::read_to_string("tests/data/edge-cases.kdl").unwrap(),
    ));
    for (name, text) in inputs {
        let t = compile(&name, &text)
            .topology
            .expect("the examples compile");
        for files in bkc::emit::emit(&t, &[]).unwrap().hosts.values() {
            for (path, f) in &files.files {
                if path.starts_with("/etc/systemd/system/") {
                    let text = String::from_utf8_lossy(&f.bytes);
                    keys.extend(
                        text.lines()
                            .filter_map(|l| l.split_once('='))
                            .map(|(k, _)| k.to_string()),
                    );
                }
            }
        }
    }
    keys
}

#[test]
#[ignore = "needs systemd-analyze and nix-instantiate"]
fn built_topologies_pass_systemd_analyze_and_nix_parse() {
    if !common::require_tool("systemd-analyze") || !common::require_tool("nix-instantiate") {
        return;
    }
    let scratch = common::scratch("hostile", "verify");
    let root = scratch.join("root");
    let mut units = Vec::new();
    let mut runners = BTreeSet::new();
    let mut modules = Vec::new();
    let mut seen_units = BTreeSet::new();
    let keys = unit_keys();
    for (name, t) in built(&Places::nowhere()) {
        for files in bkc::emit::emit(&t, &[]).unwrap().hosts.values() {
            for (path, f) in &files.files {
                if !path.starts_with("/etc/systemd/system/") {
                    continue;
                }
                assert!(seen_units.insert(path.clone()), "{name}: {path} twice");
                let text = String::from_utf8(f.bytes.clone()).unwrap();
                check_unit_lines(&keys, &name, path, &text);
                let target = root.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, &f.bytes).unwrap();
                units.push(path.clone());
            }
        }
        runners.extend(t.jobs.values().map(|j| j.service.runner.clone()));
        for (host, files) in bkc::emit::emit_nixos(&t, &[]).unwrap().hosts {
            for (path, f) in files.files {
                let p = scratch.join(format!("{name}-{host}-{}", path.replace('/', "_")));
                std::fs::write(&p, &f.bytes).unwrap();
                modules.push(p);
            }
        }
    }
    // verify checks that ExecStart= names an executable inside the root.
    for exe in runners.iter().map(String::as_str).chain(["/usr/bin/mkdir"]) {
        let target = root.join(exe.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(common::bin("bkc-run"), &target).unwrap();
    }
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    let ok = Command::new("cp")
        .args(["-a", "/usr/lib/systemd"])
        .arg(root.join("usr/lib"))
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys only warn with status 0: any output at all is a failure.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    let nix = scratch.join("nix");
    std::fs::create_dir_all(nix.join("conf")).unwrap();
    std::fs::write(nix.join("conf/nix.conf"), "build-users-group =\n").unwrap();
    for m in &modules {
        let out = Command::new("nix-instantiate")
            .args(["--store", "dummy://", "--parse"])
            .arg(m)
            .env("NIX_STATE_DIR", nix.join("state"))
            .env("NIX_LOG_DIR", nix.join("log"))
            .env("NIX_CONF_DIR", nix.join("conf"))
            .env("XDG_CACHE_HOME", nix.join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            m.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(units.len() > 50 && modules.len() > 50, "{units:?}");
    let _ = std::fs::remove_dir_all(scratch);
}

/// Each line of a unit is a section, a comment, blank or a known key; a service has one
/// ExecStart.
fn check_unit_lines(keys: &BTreeSet<String>, case: &str, path: &str, text: &str) {
    let mut exec_start = 0;
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let key = line.split_once('=').map(|(k, _)| k);
        assert!(
            key.is_some_and(|k| keys.contains(k)),
            "{case}: {path} has a line of its own: {line:?}"
        );
        exec_start += usize::from(key == Some("ExecStart"));
    }
    if path.ends_with(".service") {
        assert_eq!(exec_start, 1, "{case}: {path}\n{text}");
    }
}

/// What a host's /srv holds: relative path -> (kind and mode, size, mtime, content for small
/// files). Directories' mtimes are left out: a directory changes when something in it does,
/// which the entries themselves show.
type Tree = BTreeMap<PathBuf, (u32, u64, i64, Vec<u8>)>;

fn tree(root: &Path) -> Tree {
    let mut t = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = p.symlink_metadata() else {
                continue;
            };
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if m.is_dir() {
                stack.push(p);
                t.insert(rel, (m.mode(), 0, 0, Vec::new()));
            } else {
                let content = if m.is_file() && m.len() <= 65536 {
                    std::fs::read(&p).unwrap_or_default()
                } else if m.is_symlink() {
                    std::fs::read_link(&p)
                        .map(|l| l.into_os_string().into_encoded_bytes())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                t.insert(
                    rel,
                    (
                        m.mode(),
                        m.len(),
                        m.mtime_nsec() + m.mtime() * 1_000_000_000,
                        content,
                    ),
                );
            }
        }
    }
    t
}

/// The paths a spec names on each host (as /srv-relative paths): what the run may touch.
fn named(spec: &JobSpec) -> BTreeMap<String, Vec<PathBuf>> {
    let mut m: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut add = |host: &str, p: &str| {
        if let Some(rel) = p.strip_prefix("/srv/") {
            m.entry(host.to_string())
                .or_default()
                .push(PathBuf::from(rel.trim_end_matches('/')));
        }
    };
    add(&spec.host, &spec.state_dir);
    if let Some(d) = &spec.metrics_dir {
        add(&spec.host, d);
    }
    for l in &spec.locks {
        add(&l.at.host, &l.at.path);
    }
    for l in &spec.lock_files {
        add(&l.host, &l.path);
    }
    for w in &spec.wait_files {
        add(&w.at.host, &w.at.path);
    }
    for s in &spec.syncs {
        add(&s.dest.host, &s.dest.path);
    }
    for h in &spec.hooks {
        if let HookCommand::Argv(argv) = &h.command {
            for a in argv.iter().filter(|a| a.starts_with("/srv/")) {
                add(&h.host, a);
            }
        }
    }
    m
}

/// Files named after the canary where a shell run by an injected command would leave them: the
/// shared /tmp, /, root's home (the remote shell's working directory), this test's directory and
/// the harness's. `expected` are files the test itself named so.
fn canaries(net: &Net, expected: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let here = std::env::current_dir().unwrap();
    for dir in [
        Path::new("/tmp"),
        Path::new("/"),
        Path::new("/root"),
        &here,
        &net.dir,
    ] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(CANARY) && !expected.contains(&e.path()) {
                found.push(e.path());
            }
        }
    }
    found
}

/// Which harness host plays which topology host.
fn harness_host(topology_host: &str) -> &'static str {
    match topology_host {
        "alpha" => "h1",
        "beta" => "h2",
        other => panic!("the corpus names only alpha and beta, not {other}"),
    }
}

/// Put `data` into each sync's source, and make the directories hooks write into, so that
/// a run has something to copy and a `touch` somewhere to land. Done before the "before" tree.
fn prepare(net: &Net, spec: &JobSpec, case: &str) {
    for s in &spec.syncs {
        let Some(rel) = s.source.path.strip_prefix("/srv/") else {
            continue;
        };
        let dir = net.srv(harness_host(&s.source.host)).join(rel);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("data.txt"), case).unwrap();
        std::fs::write(dir.join("sub/inner.txt"), "inner").unwrap();
    }
    for h in &spec.hooks {
        if let HookCommand::Argv(argv) = &h.command {
            for a in argv.iter().filter_map(|a| a.strip_prefix("/srv/")) {
                let p = net.srv(harness_host(&h.host)).join(a);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            }
        }
    }
}

/// Cases that run and are expected to fail, and why; every other built or accepted case must
/// succeed and deliver its data. (All of them run under the canary.)
const MAY_FAIL: &[(&str, &str)] = &[
    (
        "address-long-label.kdl",
        "a host name nothing here resolves",
    ),
    (
        "address-ssh-config-word.kdl",
        "a host name nothing here resolves",
    ),
    (
        "lock-file-trailing.kdl",
        "a lock file named like a directory cannot be created",
    ),
    ("opts-newline.kdl", "rsync refuses an unknown option"),
    ("spec-port-zero.json", "nothing listens on port 0"),
    (
        "spec-paths-newline.json",
        "rsync hands serve its remote path on a command line, where its escaped newline is a line continuation: serve reads another path and refuses it",
    ),
];

/// One run of a case on the namespace hosts; returns a description of what went wrong, if
/// anything did.
fn run_case(net: &Net, case: &str, spec: &JobSpec, expected: &[PathBuf]) -> Vec<String> {
    let mut problems = Vec::new();
    prepare(net, spec, case);
    let before: BTreeMap<&str, Tree> = ["h1", "h2"]
        .into_iter()
        .map(|h| (h, tree(&net.srv(h))))
        .collect();
    // The far side is this build's `bkc-run serve`, with the serve file bkc would emit there.
    let mut spec = spec.clone();
    for ep in spec.hosts.values_mut() {
        ep.runner = harness::runner().to_string();
    }
    let spec = &spec;
    for host in spec.hosts.keys() {
        if let Some(f) = bkc::serve::ServeFile::for_host(spec, host) {
            let at = bkc::serve::serve_path(&spec.job);
            net.write_etc(harness_host(host), &at, &f.to_json());
        }
    }
    let path = net.dir.join(format!("case-{case}.json"));
    std::fs::write(&path, spec.to_json()).unwrap();
    let out = net
        .cmd(
            harness_host(&spec.host),
            &[harness::runner(), path.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let may_fail = MAY_FAIL.iter().any(|(c, _)| *c == case);
    if code != 0 && !may_fail {
        problems.push(format!(
            "exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let named = named(spec);
    for h in ["h1", "h2"] {
        let topology_host = if h == "h1" { "alpha" } else { "beta" };
        let allowed = named.get(topology_host).cloned().unwrap_or_default();
        let after = tree(&net.srv(h));
        let changed = after
            .iter()
            .filter(|(p, v)| before[h].get(*p) != Some(v))
            .map(|(p, _)| p)
            .chain(before[h].keys().filter(|p| !after.contains_key(*p)));
        for p in changed {
            let ok = allowed.iter().any(|a| p.starts_with(a) || a.starts_with(p));
            if !ok {
                problems.push(format!(
                    "{h}: /srv/{} changed, which {case} does not name",
                    p.display()
                ));
            }
        }
    }
    if code == 0 {
        for s in &spec.syncs {
            let dest = net
                .srv(harness_host(&s.dest.host))
                .join(s.dest.path.trim_start_matches("/srv/"));
            let dest = if s.snapshot.is_some() {
                dest.join("latest")
            } else {
                dest
            };
            let got = std::fs::read_to_string(dest.join("data.txt")).unwrap_or_default();
            if got != case {
                problems.push(format!("{} did not receive the data", dest.display()));
            }
        }
        for h in &spec.hooks {
            if let HookCommand::Argv(argv) = &h.command
                && argv.first().is_some_and(|a| a == "touch")
            {
                let p = net
                    .srv(harness_host(&h.host))
                    .join(argv[1].trim_start_matches("/srv/"));
                if !p.exists() {
                    problems.push(format!("the hook did not make {}", p.display()));
                }
            }
        }
    }
    for c in canaries(net, expected) {
        problems.push(format!(
            "{} appeared (cases run {WORKERS} at a time: this one or a neighbour)",
            c.display()
        ));
        let _ = std::fs::remove_file(&c);
    }
    problems
}

/// Runs go this many at a time, each worker with two namespace hosts of its own, so a run's
/// hosts change only by that run and the tree comparison stays exact.
const WORKERS: usize = 4;

#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn built_cases_run_on_namespace_hosts_and_touch_only_what_they_name() {
    if !common::require_root("the hostile corpus on namespace hosts") {
        return;
    }
    // Canaries an earlier, failed run left: removed, so that this run is judged on its own.
    for dir in ["/tmp", "/", "/root", "."] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains(CANARY) {
                eprintln!("removing {} left by an earlier run", e.path().display());
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let all = cases();
    let shards: Vec<Vec<&Case>> = (0..WORKERS)
        .map(|w| all.iter().skip(w).step_by(WORKERS).collect())
        .collect();
    let results: Vec<(Vec<String>, Vec<String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = shards
            .iter()
            .map(|shard| s.spawn(|| run_shard(shard)))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let ran: BTreeSet<&String> = results.iter().flat_map(|(r, _)| r).collect();
    let failures: Vec<&String> = results.iter().flat_map(|(_, f)| f).collect();
    assert!(ran.len() > 50, "only {} runs", ran.len());
    for (case, why) in MAY_FAIL {
        assert!(
            ran.contains(&case.to_string()),
            "{case} ({why}) did not run"
        );
    }
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Build and run `shard`'s cases on two fresh namespace hosts: the cases that ran, and what went
/// wrong.
fn run_shard(shard: &[&Case]) -> (Vec<String>, Vec<String>) {
    let net = Net::new(2).expect("namespace hosts (root was checked)");
    let (h1, h2) = (net.host("h1"), net.host("h2"));
    // Odd names for the files ssh reads, without quotes or `%` (a spec with those is refused).
    let odd_known = net
        .dir
        .join(format!("known hosts $(touch {CANARY}-kh) ;%h"));
    let odd_id = net.dir.join(format!("id `touch {CANARY}-id` %d"));
    let places = Places {
        alpha: h1.addr.clone(),
        beta: h2.addr.clone(),
        alpha6: h1.addr6.clone(),
        beta6: h2.addr6.clone(),
        known_hosts: net.dir.join("known_hosts").display().to_string(),
        identity: net.dir.join("client_key").display().to_string(),
        known_hosts_odd: odd_known.display().to_string(),
        identity_odd: odd_id.display().to_string(),
    };
    std::fs::copy(&places.known_hosts, &odd_known).unwrap();
    std::fs::copy(&places.identity, &odd_id).unwrap();
    let expected = [odd_known, odd_id];

    let mut runs: Vec<(String, JobSpec)> = Vec::new();
    for c in shard {
        let text = places.fill(&c.text);
        if c.is_spec() {
            if let Ok(spec) = bkc_runner::read_spec(&text) {
                runs.push((c.name.clone(), spec));
            }
            continue;
        }
        let Some(t) = compile(&c.name, &text).topology else {
            continue;
        };
        let artifacts = bkc::emit::emit(&t, &[]).unwrap();
        for job in t.jobs.values() {
            let path = bkc_contract::names::spec_path(&job.name);
            let bytes = &artifacts.hosts[&job.host].files[&path].bytes;
            let mut spec = JobSpec::from_json(std::str::from_utf8(bytes).unwrap()).unwrap();
            spec.known_hosts = places.known_hosts.clone();
            match &spec.identity {
                // The topology's own key path, odd characters and all: the key goes there.
                Some(id) if id.starts_with("/srv/") => {
                    let p = net
                        .srv(harness_host(&spec.host))
                        .join(id.trim_start_matches("/srv/"));
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::copy(&places.identity, &p).unwrap();
                }
                _ => spec.identity = Some(places.identity.clone()),
            }
            runs.push((c.name.clone(), spec));
        }
    }
    let mut failures = Vec::new();
    for (case, spec) in &runs {
        for p in run_case(&net, case, spec, &expected) {
            failures.push(format!("{case}: {p}"));
        }
    }
    (runs.into_iter().map(|(c, _)| c).collect(), failures)
}
