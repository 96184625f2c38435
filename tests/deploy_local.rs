//! Plan and apply logic against a directory standing in for a host (the `Local` transport): the
//! same scripts as over SSH, with a stand-in systemctl. Fast, and needs no root.

use crate::common;

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use bkc::deploy::apply::{Runner, apply_host};
use bkc::deploy::fleet::generation;
use bkc::deploy::plan::{
    Action, ItemKind, PLAN_VERSION, PlanFile, PlannedHost, PlannedHostExt, Sshd, compare,
    keys_to_make, observe,
};
use bkc::deploy::transport::{Local, Target};
use bkc::deploy::{Desired, desired};

pub(crate) const TOPOLOGY: &str = r#"
defaults {
    ssh-keys "operator"
}
host "desktop" address="10.0.0.1" {
    host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiHVL3zFL6hLBhJSKvFibnrF4/SbGfY"
}
host "nas" address="10.0.0.2" {
    host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC0IXDHIYGZ8zdZsxNgy4rD/ctoe01"
}
job "music" on="desktop" {
    schedule "daily"
    sync "/home/music/" "nas:/srv/music/"
}
job "photos" on="desktop" {
    schedule "weekly"
    sync "/home/photos/" "nas:/srv/photos/"
}
"#;

fn want(text: &str, host: &str) -> Desired {
    want_at(text, host).0
}

/// What `host` should have, and how the topology says to reach it.
fn want_at(text: &str, host: &str) -> (Desired, Target) {
    let c = bkc::analyze::compile("t.kdl", text);
    let t = c.topology.as_ref().expect("the test topology compiles");
    let a = bkc::emit::emit(t, &[host.to_string()]).unwrap();
    desired(t, a).into_iter().next().unwrap()
}

fn root(name: &str) -> PathBuf {
    common::scratch("local", name)
}

fn arch() -> String {
    let out = std::process::Command::new("uname")
        .arg("-m")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn enabled(root: &Path, timer: &str) -> bool {
    at(
        root,
        &format!("/etc/systemd/system/timers.target.wants/{timer}"),
    )
    .symlink_metadata()
    .is_ok()
}

fn at(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

/// Plan and apply `w` on the host behind `t`; returns the generation.
fn apply(t: &Local, w: &Desired, runner: &[u8]) -> u64 {
    let arch = arch();
    let r = Runner {
        bytes: runner,
        arch: &arch,
    };
    let sha = bkc::emit::sha256_hex(runner);
    let obs = observe(t, w).unwrap();
    let p = compare(w, &obs, Some((&sha, &arch)));
    apply_host(t, w, &obs, &p, Some(&r), &|_| {})
        .unwrap()
        .generation
}

#[test]
fn apply_then_nothing_to_do_then_drift_then_removal_then_rollback() {
    let dir = root("cycle");
    let t = Local::new("desktop", &dir);
    let w = want(TOPOLOGY, "desktop");
    let arch = arch();
    let runner = b"#!/bin/sh\necho runner v1\n".to_vec();
    let sha = bkc::emit::sha256_hex(&runner);

    // A fresh host: every job is new, and the runner is installed.
    let obs = observe(&t, &w).unwrap();
    assert_eq!(obs.generation, 0);
    let p = compare(&w, &obs, Some((&sha, &arch)));
    let adds: Vec<(ItemKind, &str)> = p
        .items
        .iter()
        .filter(|i| i.action == Action::Add)
        .map(|i| (i.kind, i.name.as_str()))
        .collect();
    assert!(adds.contains(&(ItemKind::Job, "music")), "{p:?}");
    assert!(adds.contains(&(ItemKind::Job, "photos")), "{p:?}");
    assert!(
        adds.contains(&(ItemKind::Runner, "/usr/local/bin/bkc-run")),
        "{p:?}"
    );
    assert_eq!(apply(&t, &w, &runner), 1);
    for (path, f) in &w.files.files {
        assert_eq!(std::fs::read(at(&dir, path)).unwrap(), f.bytes, "{path}");
    }
    assert_eq!(
        std::fs::read(at(&dir, "/usr/local/bin/bkc-run")).unwrap(),
        runner
    );
    assert!(enabled(&dir, "bkc-music.timer"));
    assert!(at(&dir, "/var/lib/bkc/generations/1/manifest.json").is_file());
    assert!(!at(&dir, "/var/lib/bkc/staging/1").exists());

    // Right after: nothing to do.
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, Some((&sha, &arch)));
    assert!(!p.has_changes(), "{p:?}");

    // Hand edits: a unit changed, a timer disabled, a stray unit: all drift, all put right.
    std::fs::write(
        at(&dir, "/etc/systemd/system/bkc-music.service"),
        "[Service]\nExecStart=/bin/false\n",
    )
    .unwrap();
    std::fs::remove_file(at(
        &dir,
        "/etc/systemd/system/timers.target.wants/bkc-photos.timer",
    ))
    .unwrap();
    std::fs::write(at(&dir, "/etc/systemd/system/bkc-stray.service"), "x").unwrap();
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, Some((&sha, &arch)));
    let drift: Vec<String> = p.items.iter().flat_map(|i| i.drift.clone()).collect();
    assert!(
        drift
            .iter()
            .any(|d| d.contains("bkc-music.service was edited by hand")),
        "{drift:?}"
    );
    assert!(
        drift
            .iter()
            .any(|d| d.contains("bkc-photos.timer is disabled")),
        "{drift:?}"
    );
    assert!(
        drift
            .iter()
            .any(|d| d.contains("bkc-stray.service is not in the manifest")),
        "{drift:?}"
    );
    assert_eq!(p.counts(), (0, 2, 1), "{p:?}");
    assert_eq!(apply(&t, &w, &runner), 2);
    let obs = observe(&t, &w).unwrap();
    assert!(!compare(&w, &obs, Some((&sha, &arch))).has_changes());
    assert!(!at(&dir, "/etc/systemd/system/bkc-stray.service").exists());

    // A job removed from the topology: its timer is disabled and its files are gone.
    let without = TOPOLOGY.replace(
        "job \"photos\" on=\"desktop\" {\n    schedule \"weekly\"\n    sync \"/home/photos/\" \"nas:/srv/photos/\"\n}\n",
        "",
    );
    let w2 = want(&without, "desktop");
    let obs = observe(&t, &w2).unwrap();
    let p = compare(&w2, &obs, Some((&sha, &arch)));
    assert_eq!(p.counts(), (0, 0, 1), "{p:?}");
    assert_eq!(p.items[0].name, "photos");
    assert_eq!(apply(&t, &w2, &runner), 3);
    for gone in [
        "/etc/systemd/system/bkc-photos.service",
        "/etc/systemd/system/bkc-photos.timer",
        "/etc/bkc/jobs/photos.json",
    ] {
        assert!(!at(&dir, gone).exists(), "{gone}");
    }
    assert!(!enabled(&dir, "bkc-photos.timer"));
    let log = std::fs::read_to_string(dir.join("systemctl.log")).unwrap();
    assert!(log.contains("disable --now bkc-photos.timer"), "{log}");

    // Rollback: generation 2's files come back, with the timer enabled.
    let obs = observe(&t, &w2).unwrap();
    assert_eq!(obs.kept, vec![1, 2, 3]);
    let back = generation(&t, 2).unwrap();
    let p = compare(&back, &obs, None);
    assert_eq!(
        apply_host(&t, &back, &obs, &p, None, &|_| {})
            .unwrap()
            .generation,
        4
    );
    for (path, f) in &w.files.files {
        assert_eq!(std::fs::read(at(&dir, path)).unwrap(), f.bytes, "{path}");
    }
    assert!(enabled(&dir, "bkc-photos.timer"));

    // Only the last five generations are kept.
    for _ in 0..4 {
        let cur = if std::fs::read(at(&dir, "/etc/systemd/system/bkc-photos.timer")).is_ok() {
            &w2
        } else {
            &w
        };
        apply(&t, cur, &runner);
    }
    let obs = observe(&t, &w).unwrap();
    assert_eq!(obs.kept, vec![4, 5, 6, 7, 8]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_switch_leaves_the_old_generation_whole() {
    let dir = root("fail");
    let t = Local::new("desktop", &dir);
    let w = want(TOPOLOGY, "desktop");
    let runner = b"runner".to_vec();
    assert_eq!(apply(&t, &w, &runner), 1);
    let before: Vec<(String, Vec<u8>)> = w
        .files
        .files
        .keys()
        .map(|p| (p.clone(), std::fs::read(at(&dir, p)).unwrap()))
        .collect();
    // The new generation changes a unit, but its directory cannot be written: the switch fails
    // midway, after other files were already replaced.
    let changed = TOPOLOGY.replace("schedule \"daily\"", "schedule \"hourly\"");
    let w2 = want(&changed, "desktop");
    let obs = observe(&t, &w2).unwrap();
    let arch = arch();
    let sha = bkc::emit::sha256_hex(&runner);
    let p = compare(&w2, &obs, Some((&sha, &arch)));
    assert!(p.has_changes());
    // The job spec is written before the units (sorted paths); making the unit's temporary
    // name a directory makes its `cp` fail.
    std::fs::create_dir_all(at(&dir, "/etc/systemd/system/bkc-music.timer.bkc-new/x")).unwrap();
    let err = apply_host(&t, &w2, &obs, &p, None, &|_| {}).unwrap_err();
    assert!(err.message.contains("rolled back"), "{err}");
    for (p, bytes) in &before {
        assert_eq!(&std::fs::read(at(&dir, p)).unwrap(), bytes, "{p}");
    }
    let obs = observe(&t, &w).unwrap();
    assert_eq!(obs.generation, 1);
    assert!(!compare(&w, &obs, Some((&sha, &arch))).has_changes());
    // The failed switch gave the directory in the unit's way the unit's mode, 0644.
    common::remove_scratch(&dir);
}

#[test]
fn a_stale_manifest_is_refused_on_the_host() {
    let dir = root("stale");
    let t = Local::new("desktop", &dir);
    let w = want(TOPOLOGY, "desktop");
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, None);
    // Someone applies in between.
    apply(&t, &w, b"r");
    let err = apply_host(&t, &w, &obs, &p, None, &|_| {}).unwrap_err();
    assert!(err.message.contains("stale"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Apply `w` with its plan and return what the switch kept and said.
fn apply_kept(t: &Local, w: &Desired) -> (Vec<String>, Vec<String>) {
    let obs = observe(t, w).unwrap();
    let p = compare(w, &obs, None);
    let said = std::sync::Mutex::new(Vec::new());
    let a = apply_host(t, w, &obs, &p, None, &|m| {
        said.lock().unwrap().push(m.to_string());
    })
    .unwrap();
    (
        a.kept.iter().map(|k| k.path.clone()).collect(),
        said.into_inner().unwrap(),
    )
}

#[test]
fn a_removed_job_whose_backup_runs_keeps_what_the_run_reads_until_the_next_apply() {
    let dir = root("running");
    let t = Local::new("desktop", &dir);
    apply(&t, &want(TOPOLOGY, "desktop"), b"r");
    // Both jobs go; photos is running a backup (a oneshot service is `activating` for its whole
    // run, as systemd says it), music is not.
    let none = TOPOLOGY[..TOPOLOGY.find("job \"music\"").unwrap()].to_string();
    let w = want(&none, "desktop");
    std::fs::create_dir_all(at(&dir, "/run/bkc-standin")).unwrap();
    std::fs::write(
        at(&dir, "/run/bkc-standin/bkc-photos.service"),
        "activating\n",
    )
    .unwrap();
    let (kept, said) = apply_kept(&t, &w);
    assert_eq!(
        kept,
        [
            "/etc/bkc/jobs/photos.json",
            "/etc/bkc/known_hosts",
            "/etc/systemd/system/bkc-photos.service",
        ],
        "{said:?}"
    );
    assert!(
        said.contains(
            &"kept /etc/bkc/jobs/photos.json: bkc-photos.service is running now; the next apply removes it"
                .to_string()
        ),
        "{said:?}"
    );
    for p in &kept {
        assert!(at(&dir, p).is_file(), "{p}");
    }
    // What no running backup reads is gone, the running job's timer too.
    for gone in [
        "/etc/systemd/system/bkc-photos.timer",
        "/etc/systemd/system/bkc-music.service",
        "/etc/bkc/jobs/music.json",
    ] {
        assert!(!at(&dir, gone).exists(), "{gone}");
    }
    assert!(!enabled(&dir, "bkc-photos.timer"));

    // While it still runs, the next apply keeps them again; once it ended, they go.
    let (kept, _) = apply_kept(&t, &w);
    assert_eq!(kept.len(), 3, "{kept:?}");
    std::fs::remove_file(at(&dir, "/run/bkc-standin/bkc-photos.service")).unwrap();
    let (kept, said) = apply_kept(&t, &w);
    assert!(kept.is_empty(), "{said:?}");
    for p in [
        "/etc/bkc/jobs/photos.json",
        "/etc/bkc/known_hosts",
        "/etc/systemd/system/bkc-photos.service",
    ] {
        assert!(!at(&dir, p).exists(), "{p}");
    }
    let obs = observe(&t, &w).unwrap();
    assert!(!compare(&w, &obs, None).has_changes());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bkc apply plan.json --host` picks among the plan's hosts by name or by the tags they had
/// when it was planned, and a selector that matches none of them is an error: it used to
/// compare names only, so `@lan` applied an empty plan and exited 0.
#[test]
fn a_saved_plan_is_applied_to_the_hosts_its_tags_select() {
    let dir = root("saved-tags");
    let tagged = TOPOLOGY.replacen("host-key", "tag \"lan\"\n    host-key", 1);
    let (w, target) = want_at(&tagged, "desktop");
    assert_eq!(w.tags, ["lan"]);
    std::fs::create_dir(dir.join("host")).unwrap();
    let t = Local::new("desktop", &dir.join("host"));
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, None);
    let saved = PlanFile {
        version: PLAN_VERSION,
        runner_sha256: None,
        hosts: BTreeMap::from([(
            "desktop".to_string(),
            PlannedHost::new(&target, &obs, &p, &w).unwrap(),
        )]),
    };
    let plan = dir.join("plan.json");
    std::fs::write(&plan, serde_json::to_string(&saved).unwrap()).unwrap();
    // Reaching the host fails at once, so a selected host shows as one that failed.
    let ssh_config = dir.join("ssh_config");
    std::fs::write(&ssh_config, "Host *\n    ProxyCommand /bin/false\n").unwrap();
    let apply = |host: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bkc"))
            .args(["apply", plan.to_str().unwrap(), "--host", host])
            .env("BKC_SSH_CONFIG", &ssh_config)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let says = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let o = apply("@lan");
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(says(&o).contains("desktop: FAILED"), "{}", says(&o));
    assert!(says(&o).contains("Apply: 0 applied, 0 unchanged, 1 failed"));

    let o = apply("@offsite");
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert!(
        says(&o).contains(&format!(
            "no host with the tag `@offsite` in the plan {} (its tags: @lan)",
            plan.display()
        )),
        "{}",
        says(&o)
    );
    assert!(o.stdout.is_empty(), "nothing was planned or applied");

    let o = apply("desktp");
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert!(says(&o).contains("did you mean `desktop`?"), "{}", says(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A host that answers with terminal escapes: wraps the stand-in and replaces `uname`.
struct Hostile(Local, &'static str);

impl bkc::deploy::transport::Transport for Hostile {
    fn host(&self) -> &str {
        self.0.host()
    }
    fn preamble(&self) -> String {
        format!("{}\n{}\n", self.0.preamble(), self.1)
    }
    fn spawn(&self, command: &str) -> std::io::Result<std::process::Child> {
        self.0.spawn(command)
    }
}

/// Nothing a host sends reaches the operator's terminal raw: not a file edited to hold escape
/// sequences (shown in the plan's diff), not its answers, not a manifest that claims a file of
/// someone else's for apply to remove.
#[test]
fn what_a_hostile_host_sends_is_refused_or_made_printable() {
    let dir = root("hostile");
    let t = Local::new("desktop", &dir);
    let w = want(TOPOLOGY, "desktop");
    apply(&t, &w, b"r");
    let raw = |s: &str| s.contains('\x1b') || s.contains('\x07') || s.contains('\u{202e}');

    // A unit edited to write the clipboard and move the cursor up over the plan.
    std::fs::write(
        at(&dir, "/etc/systemd/system/bkc-music.service"),
        "[Service]\n# \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2A\u{202e}\nExecStart=/bin/true\n",
    )
    .unwrap();
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, None);
    let old = bkc::deploy::plan::fetch(&t, &p.changed).unwrap();
    let shown = bkc::deploy::plan::render(
        "desktop",
        &p,
        &w,
        &old,
        bkc::deploy::plan::Style { color: false },
    );
    assert!(!raw(&shown), "{shown:?}");
    assert!(
        shown.contains("\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2A\\u{202e}"),
        "{shown}"
    );

    // An answer outside what observe.sh prints is refused, and the refusal is printable.
    let h = Hostile(
        Local::new("desktop", &dir),
        "uname() { printf 'x86_64\\033]52;c;aGk=\\007\\n'; }",
    );
    let err = observe(&h, &w).unwrap_err();
    assert!(
        err.message
            .contains("the host answered `arch x86_64\\x1b]52;c;aGk=\\x07`"),
        "{err}"
    );
    assert!(!raw(&err.to_string()), "{err:?}");

    // A manifest that lists a file bkc does not own, for apply to remove.
    let m = at(&dir, "/etc/bkc/manifest.json");
    let text = std::fs::read_to_string(&m).unwrap();
    let forged = text.replacen(
        "\"files\": {",
        "\"files\": {\n    \"/etc/passwd\": {\"sha256\": \"00\", \"mode\": \"0644\"},",
        1,
    );
    assert_ne!(forged, text);
    std::fs::write(&m, forged).unwrap();
    let err = observe(&t, &w).unwrap_err();
    assert!(
        err.message
            .contains("the host's manifest lists `/etc/passwd`, which is not a file of bkc's"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// apply runs only what an apply staged: a staging directory that someone else could write
/// (or made) is removed unrun. And the runner's state files of the old default place move to
/// /var/lib/bkc/state, so an upgraded host keeps each job's last run.
#[test]
fn apply_runs_no_staging_it_did_not_make_and_moves_old_state_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = root("planted");
    let t = Local::new("desktop", &dir);
    let w = want(TOPOLOGY, "desktop");
    let planted = at(&dir, "/var/lib/bkc/staging/7");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::write(planted.join("committed"), "").unwrap();
    std::fs::write(
        planted.join("activate.sh"),
        format!("touch {}\n", dir.join("canary").display()),
    )
    .unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(at(&dir, "/var/lib/bkc/music.json"), "{\"job\":\"music\"}").unwrap();
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, None);
    let said = std::sync::Mutex::new(Vec::new());
    apply_host(&t, &w, &obs, &p, None, &|m| {
        said.lock().unwrap().push(m.to_string())
    })
    .unwrap();
    let said = said.into_inner().unwrap();
    assert!(!dir.join("canary").exists(), "{said:?}");
    assert!(!planted.exists());
    assert!(
        said.iter().any(|m| m.contains("which no bkc apply made")),
        "{said:?}"
    );
    assert_eq!(
        std::fs::read_to_string(at(&dir, "/var/lib/bkc/state/music.json")).unwrap(),
        "{\"job\":\"music\"}"
    );
    assert!(!at(&dir, "/var/lib/bkc/music.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A saved plan is a file anyone could have edited: a target with an address ssh would read
/// as an option (or any address `bkc check` refuses) is refused before ssh runs.
#[test]
#[ignore = "needs root and sshd"]
fn a_saved_plan_cannot_smuggle_an_ssh_option() {
    let dir = root("saved-option");
    let (w, mut target) = want_at(TOPOLOGY, "desktop");
    std::fs::create_dir(dir.join("host")).unwrap();
    let t = Local::new("desktop", &dir.join("host"));
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, None);
    let canary = dir.join("canary");
    for address in [
        format!("-oProxyCommand=touch {}", canary.display()),
        "tmp/x".to_string(),
    ] {
        target.address = address.clone();
        let saved = PlanFile {
            version: PLAN_VERSION,
            runner_sha256: None,
            hosts: BTreeMap::from([(
                "desktop".to_string(),
                PlannedHost::new(&target, &obs, &p, &w).unwrap(),
            )]),
        };
        let plan = dir.join("plan.json");
        std::fs::write(&plan, serde_json::to_string(&saved).unwrap()).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_bkc"))
            .args(["apply", plan.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let says = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{says}");
        assert!(
            says.contains("gives host desktop a target bkc would never write: address"),
            "{says}"
        );
        assert!(!canary.exists(), "{address}: ssh ran the option");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The test topology with restricted keys, the default.
fn restricted() -> String {
    TOPOLOGY.replace("defaults {\n    ssh-keys \"operator\"\n}\n", "")
}

/// A stand-in root whose sshd is the machine's real one (`sshd -f <root>/etc/ssh/sshd_config`,
/// see `Local`): its own host key, the root's drop-ins included first as Debian does, and
/// `files` as its `AuthorizedKeysFile`. `None` (after saying why) where it cannot run.
fn sshd_root(name: &str, files: &str) -> Option<PathBuf> {
    if !common::require_root("sshd -t on a stand-in root")
        || !common::require_tool("/usr/sbin/sshd")
    {
        return None;
    }
    // sshd -t checks its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let dir = root(name);
    let ssh = at(&dir, "/etc/ssh");
    std::fs::create_dir_all(ssh.join("sshd_config.d")).unwrap();
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(ssh.join("host_key"))
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::write(
        ssh.join("sshd_config"),
        format!(
            "Include {d}/sshd_config.d/*.conf\nHostKey {d}/host_key\nAuthorizedKeysFile {files}\nPidFile none\nUsePAM no\n",
            d = ssh.display()
        ),
    )
    .unwrap();
    Some(dir)
}

/// Apply `w` to the host behind `t` as planned now; what the switch said, or why it failed.
fn apply_saying(t: &Local, w: &Desired) -> (Result<u64, String>, Vec<String>) {
    let obs = observe(t, w).unwrap();
    let p = compare(w, &obs, None);
    assert!(p.blocked.is_none(), "{p:?}");
    let said = std::sync::Mutex::new(Vec::new());
    let r = apply_host(t, w, &obs, &p, None, &|m| {
        said.lock().unwrap().push(m.to_string());
    });
    (
        r.map(|a| a.generation).map_err(|e| e.message),
        said.into_inner().unwrap(),
    )
}

/// With restricted keys, a job's key is made on its own host (once; a key there is never
/// replaced) and its public half is read back from the private one; the host it reaches gets
/// that key's line, forced to the job's `bkc-run serve` and bound to the job's host's address,
/// and a drop-in that keeps what sshd read before, checked by the real sshd.
#[test]
#[ignore = "needs root and sshd"]
fn a_jobs_key_is_made_on_its_host_and_authorized_where_it_reaches() {
    let Some(nas_dir) = sshd_root("keys-nas", "/etc/ssh/keys/%u .ssh/authorized_keys") else {
        return;
    };
    let text = restricted();
    let desktop_dir = root("keys-desktop");
    let d = Local::new("desktop", &desktop_dir);
    let n = Local::new("nas", &nas_dir);
    let wd = want(&text, "desktop");
    let mut wn = want(&text, "nas");

    // The desktop's jobs have no keys yet: apply makes them first.
    let p = compare(&wd, &observe(&d, &wd).unwrap(), None);
    let to_make = keys_to_make(&p);
    assert_eq!(to_make, ["music", "photos"], "{p:?}");
    let (keys, made) = bkc::deploy::keys::make(&d, &to_make).unwrap();
    assert_eq!(made, ["music", "photos"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(at(&desktop_dir, p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("/etc/bkc/keys"), 0o700);
    assert_eq!(mode("/etc/bkc/keys/music"), 0o600);
    let (again, made) = bkc::deploy::keys::make(&d, &to_make).unwrap();
    assert!(made.is_empty());
    assert_eq!(again, keys);
    let od = observe(&d, &wd).unwrap();
    assert_eq!(od.keys["music"].as_ref(), Some(&keys["music"]));
    assert!(keys_to_make(&compare(&wd, &od, None)).is_empty());
    // The key is what the private half says, whatever the .pub beside it says.
    std::fs::write(
        at(&desktop_dir, "/etc/bkc/keys/music.pub"),
        "ssh-ed25519 AAAAforged\n",
    )
    .unwrap();
    assert_eq!(
        observe(&d, &wd).unwrap().keys["music"].as_ref(),
        Some(&keys["music"])
    );

    // The nas: sshd says what it reads, and the keys go into its authorized keys.
    let on = observe(&n, &wn).unwrap();
    let found = vec![
        "/etc/ssh/keys/%u".to_string(),
        ".ssh/authorized_keys".to_string(),
    ];
    assert_eq!(on.sshd, Sshd::Files(found.clone()));
    let facts = bkc::emit::Facts {
        keys: keys.clone(),
        authorized_keys_files: BTreeMap::from([("nas".to_string(), found.clone())]),
    };
    wn.complete(&facts);
    let (r, said) = apply_saying(&n, &wn);
    assert_eq!(r, Ok(1), "{said:?}");
    let authorized =
        std::fs::read_to_string(at(&nas_dir, "/etc/bkc/authorized_keys/root")).unwrap();
    for job in ["music", "photos"] {
        let line = format!(
            "restrict,command=\"/usr/local/bin/bkc-run serve {job}\",from=\"10.0.0.1\" {} bkc:{job}@desktop\n",
            keys[job]
        );
        assert!(authorized.contains(&line), "{authorized}");
    }
    assert_eq!(
        std::fs::read_to_string(at(&nas_dir, "/etc/ssh/sshd_config.d/bkc.conf"))
            .unwrap()
            .lines()
            .last(),
        Some(
            "AuthorizedKeysFile /etc/ssh/keys/%u .ssh/authorized_keys /etc/bkc/authorized_keys/%u"
        )
    );
    let sshd_log = std::fs::read_to_string(nas_dir.join("sshd.log")).unwrap();
    assert!(
        sshd_log.contains("sshd -t") && sshd_log.contains("sshd -T"),
        "{sshd_log}"
    );

    // Read again, with bkc's drop-in in place: nothing to do (bkc's own entry is not taken for
    // one the host had).
    let on = observe(&n, &wn).unwrap();
    let Sshd::Files(now) = &on.sshd else {
        panic!("{:?}", on.sshd)
    };
    assert_eq!(
        now.last().map(String::as_str),
        Some("/etc/bkc/authorized_keys/%u")
    );
    let mut again = want(&text, "nas");
    again.complete(&bkc::emit::Facts {
        keys,
        authorized_keys_files: BTreeMap::from([("nas".to_string(), now.clone())]),
    });
    assert!(
        !compare(&again, &on, None).has_changes(),
        "{:?}",
        compare(&again, &on, None)
    );

    // A drop-in removed by hand is drift, put back, and a running sshd reads it again.
    std::fs::remove_file(at(&nas_dir, "/etc/ssh/sshd_config.d/bkc.conf")).unwrap();
    std::fs::create_dir_all(at(&nas_dir, "/run/bkc-standin")).unwrap();
    std::fs::write(at(&nas_dir, "/run/bkc-standin/ssh.service"), "active\n").unwrap();
    let (r, said) = apply_saying(&n, &again);
    assert_eq!(r, Ok(2), "{said:?}");
    let log = std::fs::read_to_string(nas_dir.join("systemctl.log")).unwrap();
    assert!(log.contains("reload ssh.service"), "{log}");
    std::fs::remove_dir_all(&desktop_dir).unwrap();
    std::fs::remove_dir_all(&nas_dir).unwrap();
}

/// sshd's configuration is checked before sshd reads it: one that `sshd -t` refuses (an error
/// planted in sshd_config after the plan was made) fails the switch, and the host is put back
/// whole. One that sshd cannot read at plan time blocks the host from the start.
#[test]
#[ignore = "needs root and sshd"]
fn a_configuration_sshd_refuses_rolls_the_host_back_whole() {
    let Some(dir) = sshd_root("refused", ".ssh/authorized_keys") else {
        return;
    };
    let n = Local::new("nas", &dir);
    let mut w = want(&restricted(), "nas");
    let obs = observe(&n, &w).unwrap();
    w.complete(&bkc::emit::Facts::default());
    let p = compare(&w, &obs, None);
    let config = at(&dir, "/etc/ssh/sshd_config");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}NoSuchOption yes\n")).unwrap();
    let said = std::sync::Mutex::new(Vec::new());
    let err = apply_host(&n, &w, &obs, &p, None, &|m| {
        said.lock().unwrap().push(m.to_string())
    })
    .unwrap_err();
    let said = said.into_inner().unwrap();
    assert!(err.message.contains("rolled back"), "{err}");
    assert!(
        said.iter()
            .any(|s| s.contains("sshd -t refuses the configuration")),
        "{said:?}"
    );
    for gone in [
        "/etc/ssh/sshd_config.d/bkc.conf",
        "/etc/bkc/authorized_keys/root",
        "/etc/bkc/manifest.json",
    ] {
        assert!(!at(&dir, gone).exists(), "{gone}");
    }
    // Planned now, the host is refused before anything starts.
    let obs = observe(&n, &w).unwrap();
    assert_eq!(obs.sshd, Sshd::Failed);
    let blocked = compare(&w, &obs, None).blocked.unwrap();
    assert!(
        blocked.contains("`sshd -T` failed on the host"),
        "{blocked}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A job's scheduled verify is part of the job: its units are planned under the job's item,
/// applied with its timer enabled, and gone with the setting.
#[test]
fn a_verify_is_planned_and_applied_with_its_job() {
    let dir = root("verify");
    let t = Local::new("desktop", &dir);
    let with = TOPOLOGY.replace(
        "    sync \"/home/music/\" \"nas:/srv/music/\"\n",
        "    sync \"/home/music/\" \"nas:/srv/music/\"\n    verify \"weekly\" checksum=#true\n",
    );
    let runner = b"#!/bin/sh\n".to_vec();
    let w = want(TOPOLOGY, "desktop");
    apply(&t, &w, &runner);
    let w = want(&with, "desktop");
    let arch = arch();
    let sha = bkc::emit::sha256_hex(&runner);
    let obs = observe(&t, &w).unwrap();
    let p = compare(&w, &obs, Some((&sha, &arch)));
    let changed: Vec<(ItemKind, &str, Action)> = p
        .items
        .iter()
        .map(|i| (i.kind, i.name.as_str(), i.action))
        .collect();
    assert_eq!(changed, [(ItemKind::Job, "music", Action::Change)], "{p:?}");
    let files: Vec<&str> = p.items[0].files.iter().map(|(_, f)| f.as_str()).collect();
    for f in [
        "/etc/systemd/system/bkc-verify@music.service",
        "/etc/systemd/system/bkc-verify@music.timer",
        "/etc/bkc/jobs/music.json",
    ] {
        assert!(files.contains(&f), "{f} in {files:?}");
    }
    apply(&t, &w, &runner);
    assert!(enabled(&dir, "bkc-verify@music.timer"));
    assert!(at(&dir, "/etc/systemd/system/bkc-verify@music.service").is_file());

    // Without the setting, the units go and the timer is switched off.
    let w = want(TOPOLOGY, "desktop");
    apply(&t, &w, &runner);
    assert!(!at(&dir, "/etc/systemd/system/bkc-verify@music.timer").exists());
    assert!(!enabled(&dir, "bkc-verify@music.timer"));
    let log = std::fs::read_to_string(dir.join("systemctl.log")).unwrap();
    assert!(
        log.contains("disable --now bkc-verify@music.timer"),
        "{log}"
    );
}
