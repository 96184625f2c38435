//! bkc plan/apply/rollback/status/run against three Debian containers with systemd as PID 1 and
//! sshd (tests/fleet): the seed chain's shape, with a schedule of a few seconds. Needs root,
//! systemd-nspawn and debootstrap; see tests/fleet.

mod common;
mod fleet;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use fleet::Fleet;

const NAMES: [&str; 3] = ["desktop", "backup_a", "backup_b"];

/// The test topology: desktop -> backup_a every 5 s, backup_a -> backup_b every 5 s (offset by
/// 2 s), blocking on each other.
fn topology(f: &Fleet, extra: &str) -> String {
    let mut s = String::from("defaults {\n    identity \"/etc/bkc/id_ed25519\"\n}\n");
    for m in &f.machines {
        s.push_str(&format!(
            "host \"{}\" address=\"{}\" {{\n    host-key \"{}\"\n    tag \"{}\"\n}}\n",
            m.name,
            m.addr,
            m.host_key,
            if m.name == "backup_b" {
                "offsite"
            } else {
                "lan"
            }
        ));
    }
    s.push_str(
        r#"job "desktop-to-a" on="desktop" {
    schedule "*:*:0/5"
    accuracy "1s"
    blocks-on "a-to-b" wait="1s" timeout="1m"
    sync "/srv/data/" "backup_a:/srv/backup/desktop/"
}
job "a-to-b" on="backup_a" {
    schedule "*:*:2/5"
    accuracy "1s"
    blocks-on "desktop-to-a" wait="1s" timeout="1m"
    sync "/srv/backup/" "backup_b:/srv/offsite/backup_a/"
}
"#,
    );
    s.push_str(extra);
    s
}

fn write_topology(f: &Fleet, name: &str, text: &str) -> String {
    let p = f.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn bkc(f: &Fleet, args: &[&str]) -> Output {
    bkc_cmd(f, args).output().unwrap()
}

fn bkc_cmd(f: &Fleet, args: &[&str]) -> Command {
    // bkc uploads the bkc-run found next to itself.
    common::bkc_run();
    let mut c = Command::new(common::bin("bkc"));
    c.args(args)
        .env("BKC_SSH_CONFIG", &f.ssh_config)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Apply `file` to every host and check it worked.
fn apply_ok(f: &Fleet, file: &str) -> Output {
    let out = bkc(f, &["apply", file, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

/// The fleet on the base topology with no changes left, so every test starts from it.
fn baseline(f: &Fleet) -> String {
    let base = write_topology(f, "base.kdl", &topology(f, ""));
    let out = bkc(f, &["apply", &base, "--yes"]);
    if out.status.code() != Some(0) {
        // A removed job kept because its backup was running: the next apply removes it.
        apply_ok(f, &base);
    }
    base
}

fn plan_code(f: &Fleet, file: &str) -> (i32, String) {
    let out = bkc(f, &["plan", file, "--detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
fn seed_chain_applies_and_runs_on_schedule() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let base = write_topology(&f, "base.kdl", &topology(&f, ""));
    f.sh(
        "desktop",
        "mkdir -p /srv/data/music && echo 'la la la' > /srv/data/music/song.flac",
    );
    let (code, _) = plan_code(&f, &base);
    // On a fresh fleet everything is to add (the first test to run sees that).
    assert!(code == 2 || code == 0, "plan failed");
    let out = bkc(&f, &["apply", &base, "--yes"]);
    let all = text(&out);
    assert!(out.status.code() == Some(0), "{all}");

    // Timers enabled and listed by systemd.
    let timers = f.sh("desktop", "systemctl list-timers --all --no-pager");
    assert!(timers.contains("bkc-desktop-to-a.timer"), "{timers}");
    assert_eq!(
        f.sh("backup_a", "systemctl is-enabled bkc-a-to-b.timer")
            .trim(),
        "enabled"
    );
    // The schedule fires and data flows desktop -> backup_a -> backup_b.
    assert!(
        Fleet::eventually(40, || {
            f.ssh(
                "backup_b",
                "grep -q 'la la la' /srv/offsite/backup_a/desktop/music/song.flac",
            )
            .status
            .success()
        }),
        "data never reached backup_b; desktop journal: {}",
        String::from_utf8_lossy(
            &f.ssh(
                "desktop",
                "journalctl -u bkc-desktop-to-a --no-pager | tail -20"
            )
            .stdout
        )
    );
    // Under the locks: each run took its own lock and the other job's, shared.
    let journal = f.sh(
        "desktop",
        "journalctl -u bkc-desktop-to-a -o cat --no-pager | grep '\"event\":\"locked\"' | head -3",
    );
    assert!(journal.contains("a-to-b.lock"), "{journal}");

    // Right after: nothing to change.
    let (code, out) = plan_code(&f, &base);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("+0 add ~0 change -0 remove"), "{out}");

    // bkc status: both jobs, with results.
    let out = bkc(&f, &["status", &base, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        assert!(r["last_run"].is_string(), "{r}");
        // While a run is going, systemd has no next elapse for its timer yet.
        assert!(
            r["next_run"].is_string() || r["service"] == "activating",
            "{r}"
        );
    }
    let out = bkc(&f, &["status", &base]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("JOB"), "{table}");

    // bkc run --wait: the job's own exit code.
    let out = bkc(&f, &["run", "desktop-to-a", &base, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_unit_edited_by_hand_is_drift() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let base = baseline(&f);
    f.sh(
        "backup_a",
        "sed -i 's/^Description=.*/Description=edited by hand/' /etc/systemd/system/bkc-a-to-b.service",
    );
    let (code, out) = plan_code(&f, &base);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("drift: /etc/systemd/system/bkc-a-to-b.service was edited by hand"),
        "{out}"
    );
    assert!(out.contains("-Description=edited by hand"), "{out}");
    // A disabled timer and a stray unit are drift too.
    f.sh("desktop", "systemctl disable --now bkc-desktop-to-a.timer 2>/dev/null; printf '[Service]\\nExecStart=/bin/true\\n' > /etc/systemd/system/bkc-stray.service");
    let (code, out) = plan_code(&f, &base);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("timer bkc-desktop-to-a.timer is disabled"),
        "{out}"
    );
    assert!(
        out.contains("bkc-stray.service is not in the manifest"),
        "{out}"
    );
    apply_ok(&f, &base);
    let (code, out) = plan_code(&f, &base);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        f.sh("desktop", "systemctl is-enabled bkc-desktop-to-a.timer")
            .trim(),
        "enabled"
    );
}

#[test]
fn a_removed_job_is_stopped_and_gone_and_rollback_brings_it_back() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let before = f.sh(
        "backup_a",
        "cat /etc/systemd/system/bkc-a-to-b.service /etc/bkc/jobs/a-to-b.json",
    );
    // Without a-to-b (and without desktop-to-a's blocks-on it).
    let t = topology(&f, "");
    let start = t.find("job \"a-to-b\"").unwrap();
    let without = t[..start].replace("    blocks-on \"a-to-b\" wait=\"1s\" timeout=\"1m\"\n", "");
    let smaller = write_topology(&f, "smaller.kdl", &without);
    let (code, out) = plan_code(&f, &smaller);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("- job a-to-b (removed)"), "{out}");
    let out = bkc(&f, &["apply", &smaller, "--yes"]);
    let all = text(&out);
    if all.contains("running a backup now") {
        apply_ok(&f, &smaller);
    } else {
        assert_eq!(out.status.code(), Some(0), "{all}");
    }
    let left = f.sh(
        "backup_a",
        "ls /etc/systemd/system/bkc-a-to-b.* /etc/bkc/jobs/a-to-b.json 2>/dev/null; systemctl is-enabled bkc-a-to-b.timer 2>&1; systemctl is-active bkc-a-to-b.timer 2>&1; true",
    );
    assert!(!left.contains("/etc/"), "files left: {left}");
    assert!(
        !left.contains("enabled\n") && !left.lines().any(|l| l == "active"),
        "{left}"
    );

    // Rollback: backup_a gets the previous generation's files and timer back.
    let out = bkc(&f, &["rollback", "backup_a", &smaller, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = f.sh(
        "backup_a",
        "cat /etc/systemd/system/bkc-a-to-b.service /etc/bkc/jobs/a-to-b.json",
    );
    assert_eq!(before, after);
    assert_eq!(
        f.sh("backup_a", "systemctl is-enabled bkc-a-to-b.timer")
            .trim(),
        "enabled"
    );
    assert_eq!(
        f.sh("backup_a", "systemctl is-active bkc-a-to-b.timer")
            .trim(),
        "active"
    );
}

#[test]
fn a_cut_link_leaves_that_host_on_the_old_generation() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let base = baseline(&f);
    let old_b = f.sh("backup_b", "sha256sum /etc/bkc/manifest.json");
    // A change on every host: a job on backup_b (so it gets units, a spec and known_hosts).
    let extra = r#"job "b-local" on="backup_b" {
    schedule "*:*:0/30"
    sync "/srv/offsite/" "/srv/copy/"
}
job "extra-a" on="backup_a" {
    schedule "hourly"
    sync "/srv/backup/" "/srv/copy/"
}
job "extra-d" on="desktop" {
    schedule "hourly"
    sync "/srv/data/" "/srv/copy/"
}
"#;
    let bigger = write_topology(&f, "bigger.kdl", &topology(&f, extra));
    // Hold backup_b's deploy lock, so its apply is caught in the middle, waiting.
    let mut holder = f
        .ssh_cmd(
            "backup_b",
            "mkdir -p /var/lib/bkc && flock /var/lib/bkc/deploy.lock sh -c 'echo locked; sleep 15'",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let mut apply = bkc_cmd(
        &f,
        &[
            "apply",
            &bigger,
            "--yes",
            "--ssh-option",
            "ServerAliveInterval=1",
            "--ssh-option",
            "ServerAliveCountMax=3",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = apply.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("backup_b: waiting for another bkc apply") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
        let _ = apply.wait();
        panic!(
            "backup_b's apply never waited for the lock: {}",
            reader.join().unwrap()
        );
    }
    f.link_down("backup_b");
    let _ = holder.kill();
    let _ = holder.wait();
    let status = apply.wait().unwrap();
    let err = reader.join().unwrap();
    f.link_up("backup_b");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("backup_b: FAILED"), "{err}");
    assert!(err.contains("desktop: applied"), "{err}");
    assert!(err.contains("backup_a: applied"), "{err}");
    // The host's script gives up waiting for the commit and leaves everything as it was.
    assert!(
        Fleet::eventually(60, || f
            .ssh("backup_b", "flock -n /var/lib/bkc/deploy.lock true")
            .status
            .success()),
        "backup_b's apply never ended"
    );
    assert_eq!(f.sh("backup_b", "sha256sum /etc/bkc/manifest.json"), old_b);
    // Nothing of the new generation is live, and nothing was committed (an uncommitted
    // staging directory is dropped by the next apply).
    let leftovers = f.sh(
        "backup_b",
        "ls /etc/systemd/system/ | grep bkc-b-local; ls /var/lib/bkc/staging/*/committed 2>/dev/null; true",
    );
    assert_eq!(leftovers.trim(), "", "{leftovers}");
    // The others are wholly on the new generation, backup_b wholly on the old one.
    for (host, file) in [
        ("desktop", &bigger),
        ("backup_a", &bigger),
        ("backup_b", &base),
    ] {
        let out = bkc(&f, &["plan", file, "--host", host, "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(0), "{host}: {}", text(&out));
    }
    baseline(&f);
}

#[test]
fn a_saved_plan_made_stale_by_a_change_on_a_host_is_refused() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let changed = write_topology(
        &f,
        "changed.kdl",
        &topology(&f, "").replace("*:*:2/5", "*:*:3/5"),
    );
    let saved = f.dir.join("plan.json");
    let saved = saved.display().to_string();
    let out = bkc(&f, &["plan", &changed, "-o", &saved]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Someone edits a file on backup_a after the plan was made.
    f.sh("backup_a", "echo '# local' >> /etc/bkc/known_hosts");
    let out = bkc(&f, &["apply", &saved]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("backup_a: changed since the plan was made"),
        "{all}"
    );
    // Nothing was applied anywhere.
    assert!(
        f.sh("backup_a", "cat /etc/systemd/system/bkc-a-to-b.timer")
            .contains("*:*:2/5")
    );
    // A fresh plan applies.
    let out = bkc(&f, &["plan", &changed, "-o", &saved]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = bkc(&f, &["apply", &saved]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        f.sh("backup_a", "cat /etc/systemd/system/bkc-a-to-b.timer")
            .contains("*:*:3/5")
    );
    baseline(&f);
}
