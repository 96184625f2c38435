//! bkc plan/apply/rollback/status/run against three Debian containers with systemd as PID 1 and
//! sshd (tests/fleet): the seed chain's shape, with a schedule of a few seconds. Needs root,
//! systemd-nspawn and debootstrap; see tests/fleet.

#[allow(dead_code)] // a few of the helpers
mod common;
mod fleet;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use fleet::Fleet;

const NAMES: [&str; 3] = ["desktop", "backup_a", "backup_b"];

/// The test topology: desktop -> backup_a every 5 s, backup_a -> backup_b every 5 s (offset by
/// 2 s), blocking on each other.
fn topology(f: &Fleet, extra: &str) -> String {
    let mut s = String::from(
        "defaults {\n    ssh-keys \"operator\"\n    identity \"/etc/bkc/id_ed25519\"\n}\n",
    );
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
    apply_ok(f, &base);
    base
}

fn plan_code(f: &Fleet, file: &str) -> (i32, String) {
    let out = bkc(f, &["plan", file, "--detailed-exitcode"]);
    (out.status.code().unwrap_or(-1), text(&out))
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
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
#[ignore = "needs root, systemd-nspawn and debootstrap"]
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
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn a_removed_job_is_stopped_and_gone_and_rollback_brings_it_back() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let before = f.sh(
        "backup_a",
        "cat /etc/systemd/system/bkc-a-to-b.service /etc/bkc/jobs/a-to-b.json",
    );
    // The generation to go back to: when a run kept files, a second apply makes another.
    let generation = f.sh("backup_a", "cat /var/lib/bkc/generations/current");
    // Without a-to-b (and without desktop-to-a's blocks-on it).
    let t = topology(&f, "");
    let start = t.find("job \"a-to-b\"").unwrap();
    let without = t[..start].replace("    blocks-on \"a-to-b\" wait=\"1s\" timeout=\"1m\"\n", "");
    let smaller = write_topology(&f, "smaller.kdl", &without);
    let (code, out) = plan_code(&f, &smaller);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("- job a-to-b (removed)"), "{out}");
    let all = text(&apply_ok(&f, &smaller));
    // a-to-b runs every 5 s: a run going on keeps its service and spec until it ends, and the
    // next apply removes them.
    if all.contains("bkc-a-to-b.service is running now; the next apply removes it") {
        // Ended however it ended, within its lock timeout (1m) and a copy: a run whose job was
        // removed may fail, and its service is then `failed`, not `inactive`.
        assert!(
            Fleet::eventually(90, || !bkc::deploy::is_running(&f.sh(
                "backup_a",
                "systemctl show -p ActiveState --value bkc-a-to-b.service"
            ))),
            "a-to-b's last run never ended: {}",
            f.sh(
                "backup_a",
                "systemctl status bkc-a-to-b.service --no-pager 2>&1; true"
            )
        );
        apply_ok(&f, &smaller);
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
    let out = bkc(
        &f,
        &[
            "rollback",
            "backup_a",
            &smaller,
            "--yes",
            "--to",
            generation.trim(),
        ],
    );
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
#[ignore = "needs root, systemd-nspawn and debootstrap"]
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
#[ignore = "needs root, systemd-nspawn and debootstrap"]
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

/// Units in every state bkc asks about, made on a machine or in a stand-in root.
const PROBE_UNITS: &str = r#"cd "$R/etc/systemd/system" || exit 1
printf '[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n' > probe-en.timer
printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' > probe-en.service
cp probe-en.timer probe-dis.timer
cp probe-en.service probe-dis.service
printf '[Service]\nType=oneshot\nExecStart=/bin/sleep 120\n' > probe-run.service
printf '[Service]\nType=oneshot\nExecStart=/bin/false\n' > probe-fail.service
ln -sf /dev/null probe-mask.timer
"#;

/// Every question bkc's scripts ask systemctl, with what came back on each stream.
const PROBE_QUESTIONS: &str = r#"ask() {
    o=$(systemctl "$@" 2>"$R/probe.err"); rc=$?
    printf '%s: rc=%s out=[%s] err=[%s]\n' "$*" "$rc" "$o" "$(cat "$R/probe.err")"
}
for u in probe-en.timer probe-dis.timer probe-mask.timer probe-en.service probe-run.service probe-fail.service probe-none.timer; do
    ask is-active "$u"
    ask is-active --quiet "$u"
    ask is-enabled "$u"
    ask show -p ActiveState --value "$u"
done
ask is-enabled -- probe-en.timer probe-dis.timer probe-mask.timer
ask is-enabled -- probe-dis.timer probe-none.timer probe-en.timer
ask is-active -- probe-run.service probe-en.timer
ask is-active -- probe-run.service probe-dis.timer
"#;

/// The Local transport's stand-in systemctl (tests/deploy_local.rs) gives the answers systemd
/// gives, for every verb and state bkc's scripts rely on: a running oneshot is `activating`,
/// static and masked units, a missing unit, several units at once.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn the_standin_systemctl_answers_as_systemd_does() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let real = f.sh(
        "backup_b",
        &format!(
            "R=; {PROBE_UNITS}systemctl daemon-reload\n\
             systemctl enable --now probe-en.timer 2>/dev/null\n\
             systemctl start probe-fail.service 2>/dev/null\n\
             systemctl start --no-block probe-run.service\n\
             while [ \"$(systemctl show -p ActiveState --value probe-run.service)\" != activating ]; do sleep 0.1; done\n\
             R=/tmp; {PROBE_QUESTIONS}\n\
             systemctl stop probe-run.service probe-en.timer; systemctl disable probe-en.timer 2>/dev/null\n\
             systemctl reset-failed probe-fail.service\n\
             rm -f /etc/systemd/system/probe-*; systemctl daemon-reload"
        ),
    );
    let dir = common::scratch("fleet", "standin");
    let t = bkc::deploy::transport::Local::new("probe", &dir);
    std::fs::create_dir_all(dir.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(dir.join("run/bkc-standin")).unwrap();
    // What only a process makes on a real host: a oneshot still running, one that failed.
    std::fs::write(
        dir.join("run/bkc-standin/probe-run.service"),
        "activating\n",
    )
    .unwrap();
    std::fs::write(dir.join("run/bkc-standin/probe-fail.service"), "failed\n").unwrap();
    let out = bkc::deploy::transport::run(
        &t,
        &format!("{PROBE_UNITS}systemctl enable --now probe-en.timer\n{PROBE_QUESTIONS}"),
        b"",
    )
    .unwrap();
    let standin = String::from_utf8_lossy(&out.stdout);
    assert_eq!(standin, real, "stand-in (left) and systemd (right) differ");
    assert!(
        real.contains("is-active probe-run.service: rc=3 out=[activating]"),
        "{real}"
    );
}

/// Jobs for the running-backup test: `slow` copies 3 MB at 200 kB/s (15 s of rsync) and
/// blocks on `gate`, whose lock the test can hold.
const SLOW: &str = r#"job "gate" on="desktop" {
    schedule "yearly"
    sync "/srv/data/" "/srv/gate-copy/"
}
job "slow" on="desktop" {
    schedule "yearly"
    blocks-on "gate" wait="1s" timeout="5m"
    sync "/srv/slow/" "backup_a:/srv/slow/" {
        bwlimit "200K"
    }
}
"#;

fn service_state(f: &Fleet, unit: &str) -> String {
    f.sh(
        "desktop",
        &format!("systemctl show -p ActiveState --value {unit}"),
    )
    .trim()
    .to_string()
}

/// Wait until the slow job's run has ended, and return its ExecMainStatus.
fn slow_run_ended(f: &Fleet) -> String {
    assert!(
        Fleet::eventually(90, || service_state(f, "bkc-slow.service") == "inactive"
            || service_state(f, "bkc-slow.service") == "failed"),
        "the slow run never ended: {}",
        f.sh(
            "desktop",
            "journalctl -u bkc-slow -o cat --no-pager | tail -20"
        )
    );
    f.sh(
        "desktop",
        "systemctl show -p ExecMainStatus --value bkc-slow.service",
    )
    .trim()
    .to_string()
}

/// A backup that is running while apply removes its job, or changes its spec and upgrades the
/// runner, completes with the files it started with; apply says what it kept, and the next
/// apply removes it.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn a_running_backup_keeps_its_files_through_an_apply() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let with = write_topology(&f, "slow.kdl", &topology(&f, SLOW));
    apply_ok(&f, &with);
    f.sh(
        "desktop",
        "mkdir -p /srv/slow && head -c 3000000 /dev/urandom > /srv/slow/big && echo x > /srv/slow/skip-me && touch /srv/hold",
    );

    // 1. Waiting on its lock while its job is removed.
    let mut holder = f
        .ssh_cmd(
            "desktop",
            "mkdir -p /run/bkc/locks && flock /run/bkc/locks/gate.lock sh -c 'echo locked; while [ -e /srv/hold ]; do sleep 0.2; done'",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    f.sh("desktop", "systemctl start --no-block bkc-slow.service");
    assert!(
        Fleet::eventually(30, || f
            .sh("desktop", "journalctl -u bkc-slow -o cat --no-pager")
            .contains("\"event\":\"lock-wait\"")),
        "the run never waited for gate's lock"
    );
    assert_eq!(service_state(&f, "bkc-slow.service"), "activating");
    let without = topology(&f, &SLOW[..SLOW.find("job \"slow\"").unwrap()]);
    let without = write_topology(&f, "no-slow.kdl", &without);
    let out = apply_ok(&f, &without);
    let all = text(&out);
    for p in [
        "/etc/systemd/system/bkc-slow.service",
        "/etc/bkc/jobs/slow.json",
    ] {
        assert!(
            all.contains(&format!(
                "desktop: kept {p}: bkc-slow.service is running now; the next apply removes it"
            )),
            "{all}"
        );
    }
    f.sh(
        "desktop",
        "test -f /etc/systemd/system/bkc-slow.service && test -f /etc/bkc/jobs/slow.json && ! test -e /etc/systemd/system/bkc-slow.timer",
    );
    f.sh("desktop", "rm /srv/hold");
    let _ = holder.wait();
    assert_eq!(slow_run_ended(&f), "0");
    assert_eq!(
        f.sh("desktop", "sha256sum < /srv/slow/big"),
        f.sh("backup_a", "sha256sum < /srv/slow/big")
    );
    // The next apply removes what it kept.
    let (code, out) = plan_code(&f, &without);
    assert_eq!(code, 2, "{out}");
    apply_ok(&f, &without);
    f.sh(
        "desktop",
        "! test -e /etc/systemd/system/bkc-slow.service && ! test -e /etc/bkc/jobs/slow.json",
    );

    // 2. Mid-rsync while apply changes its spec and upgrades the runner (the deployed one made
    // different, so the plan replaces it).
    apply_ok(&f, &with);
    f.sh("backup_a", "rm -rf /srv/slow");
    // Made different beside it and renamed over it: the timers' own runs may be executing the
    // binary right now, and writing into it would fail with "text file busy". The fresh
    // markers each run now leaves on backup_a make those runs longer, so that became likely.
    f.sh(
        "desktop",
        "cp /usr/local/bin/bkc-run /usr/local/bin/.bkc-run.test && printf '\\0' >> /usr/local/bin/.bkc-run.test && mv /usr/local/bin/.bkc-run.test /usr/local/bin/bkc-run",
    );
    f.sh("desktop", "systemctl start --no-block bkc-slow.service");
    assert!(
        Fleet::eventually(30, || {
            f
            .sh(
                "desktop",
                "journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value bkc-slow.service)"
            )
            .contains("\"event\":\"sync-start\"")
        }),
        "the run never started its rsync"
    );
    let changed = topology(
        &f,
        &SLOW.replace("bwlimit", "exclude \"skip-me\"\n        bwlimit"),
    );
    let changed = write_topology(&f, "slow-changed.kdl", &changed);
    let out = apply_ok(&f, &changed);
    let all = text(&out);
    assert!(
        all.contains("runner /usr/local/bin/bkc-run (upgrade)"),
        "{all}"
    );
    // The run goes on with the runner it started: replaced by rename, never rewritten.
    let exe = f.sh(
        "desktop",
        "readlink /proc/$(systemctl show -p MainPID --value bkc-slow.service)/exe",
    );
    assert_eq!(exe.trim(), "/usr/local/bin/bkc-run (deleted)", "{all}");
    assert_eq!(slow_run_ended(&f), "0");
    // ... and the spec it started with: no exclude yet.
    f.sh(
        "backup_a",
        "test -f /srv/slow/skip-me && test -f /srv/slow/big",
    );
    let (code, out) = plan_code(&f, &changed);
    assert_eq!(code, 0, "{out}");
    f.sh("desktop", "rm -rf /srv/slow /srv/gate-copy");
    f.sh("backup_a", "rm -rf /srv/slow");
    baseline(&f);
}

/// A host reached through an ssh_config alias (`Host alias` / `HostName address`, the usual way
/// behind a jump host) keeps its pinned key: bkc looks it up under the name it wrote it with.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn pinned_host_keys_hold_through_an_ssh_config_alias() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let base = baseline(&f);
    let b = f.machine("backup_b");
    let config = f.dir.join("alias_ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host offsite-alias\n  HostName {}\n{}",
            b.addr,
            std::fs::read_to_string(&f.ssh_config).unwrap()
        ),
    )
    .unwrap();
    let aliased = std::fs::read_to_string(&base).unwrap().replace(
        &format!("address=\"{}\"", b.addr),
        "address=\"offsite-alias\"",
    );
    let aliased = write_topology(&f, "alias.kdl", &aliased);
    let out = bkc_cmd(&f, &["plan", &aliased, "--host", "backup_b"])
        .env("BKC_SSH_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // And a wrong pinned key is still refused through the alias.
    let wrong = std::fs::read_to_string(&aliased)
        .unwrap()
        .replace(&b.host_key, &f.machine("desktop").host_key);
    let wrong = write_topology(&f, "alias-wrong.kdl", &wrong);
    let out = bkc_cmd(&f, &["plan", &wrong, "--host", "backup_b"])
        .env("BKC_SSH_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("backup_b"), "{}", text(&out));
}

/// Knowing it works, on real systemd: a failed run reaches its `notify` command through the
/// service's OnFailure=, the next success is a recovery, events are in the journal with fields,
/// and the destination's freshness check raises `stale` once the source stops sending (time
/// injected with `systemctl set-environment`).
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn notifications_journal_fields_and_the_dead_mans_switch() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let extra = r#"job "flaky" on="desktop" {
    alert-after "1h"
    notify on="failure,stale,recovery" "env | grep ^BKC_ | sort > /var/lib/bkc/state/flaky-$BKC_EVENT.env"
    sync "/srv/flaky/" "backup_a:/srv/backup/flaky/"
}
"#;
    let file = write_topology(&f, "monitor.kdl", &topology(&f, extra));
    apply_ok(&f, &file);
    let env_of = |host: &str, event: &str| {
        let out = f.ssh(host, &format!("cat /var/lib/bkc/state/flaky-{event}.env"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    f.sh(
        "desktop",
        "rm -rf /srv/flaky /var/lib/bkc/state/flaky-*.env",
    );

    // A run that fails (its source is missing): OnFailure= starts bkc-notify@flaky.
    let out = bkc(&f, &["run", "flaky", &file, "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        Fleet::eventually(20, || env_of("desktop", "failure")
            .contains("BKC_EVENT=failure")),
        "no failure notification; {}",
        f.sh(
            "desktop",
            "systemctl status --no-pager bkc-notify@flaky.service 2>&1; true"
        )
    );
    let env = env_of("desktop", "failure");
    assert!(env.contains("BKC_JOB=flaky\n"), "{env}");
    assert!(env.contains("BKC_RESULT=failed\n"), "{env}");
    assert!(env.contains("rsync exit code 23"), "{env}");

    // Fixed: the next success is a recovery.
    f.sh("desktop", "mkdir -p /srv/flaky && echo x > /srv/flaky/f");
    let out = bkc(&f, &["run", "flaky", &file, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        Fleet::eventually(20, || env_of("desktop", "recovery")
            .contains("BKC_EVENT=recovery")),
        "no recovery notification"
    );

    // The journal has each run's end with fields of its own.
    let ends = f.sh(
        "desktop",
        "journalctl -u bkc-flaky EVENT=end -o json --no-pager",
    );
    let ends: Vec<serde_json::Value> = ends
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let results: Vec<&str> = ends.iter().map(|e| e["RESULT"].as_str().unwrap()).collect();
    assert!(results.ends_with(&["failed", "success"]), "{results:?}");
    assert!(
        ends.iter()
            .all(|e| e["JOB"] == "flaky" && e["RUN"].is_string())
    );
    let msg: serde_json::Value =
        serde_json::from_str(ends.last().unwrap()["MESSAGE"].as_str().unwrap()).unwrap();
    assert_eq!(msg["event"], "end");

    // backup_a watches the data arriving: fresh now, stale two hours on, told once.
    assert_eq!(
        f.sh("backup_a", "systemctl is-enabled bkc-fresh-flaky.timer")
            .trim(),
        "enabled"
    );
    f.sh("backup_a", "rm -f /var/lib/bkc/state/flaky-*.env");
    let fresh_at = |t: jiff::Timestamp| {
        f.ssh(
            "backup_a",
            &format!(
                "systemctl set-environment BKC_RUN_NOW={t} && systemctl start bkc-fresh-flaky.service; r=$?; systemctl unset-environment BKC_RUN_NOW; exit $r"
            ),
        )
        .status
        .code()
    };
    let now = jiff::Timestamp::now();
    assert_eq!(fresh_at(now), Some(0));
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(2 * 3600))
        .unwrap();
    assert_ne!(fresh_at(later), Some(0), "stale: the check's unit fails");
    let env = env_of("backup_a", "stale");
    assert!(env.contains("BKC_EVENT=stale\n"), "{env}");
    assert!(
        env.contains("BKC_MESSAGE=no data from desktop since"),
        "{env}"
    );
    baseline(&f);
}

/// The test topology with restricted keys (the default) and schedules that do not fire while a
/// test looks: the far side's `bkc-run serve` is not what these tests are about.
fn restricted(f: &Fleet, extra: &str) -> String {
    topology(f, extra)
        .replace(
            "    ssh-keys \"operator\"\n    identity \"/etc/bkc/id_ed25519\"\n",
            "",
        )
        .replace("schedule \"*:*:0/5\"", "schedule \"yearly\"")
        .replace("schedule \"*:*:2/5\"", "schedule \"yearly\"")
}

/// `ssh` from machine `from` to machine `to` with the key at `key` (on `from`), as a runner
/// would, running `command`: what came back.
fn ssh_with_key(f: &Fleet, from: &str, key: &str, to: &str, command: &str) -> Output {
    f.ssh(
        from,
        &format!(
            "ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=no -o LogLevel=ERROR -o ConnectTimeout=5 root@{} {}",
            f.machine(to).addr,
            bkc::deploy::quote(command)
        ),
    )
}

/// With restricted keys on booted hosts: apply makes each job's key on its own host (0600,
/// root), puts its line, forced to `bkc-run serve <job>` and bound to the job's host's address,
/// into the authorized keys of the hosts the job reaches, and installs the sshd drop-in, which
/// sshd accepts and reloads. The operator's own key still logs in; with a job's key no shell
/// runs, and from another host the key is refused. Back on operator keys, the drop-in and the
/// authorized keys go.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn restricted_keys_let_a_job_run_only_its_serve() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    let base = baseline(&f);
    // Keys an earlier test made would be kept: start without.
    for host in NAMES {
        f.sh(host, "rm -rf /etc/bkc/keys");
    }
    let file = write_topology(&f, "restricted.kdl", &restricted(&f, ""));
    // A saved plan, made before the keys exist, shows them as made by apply and holds their
    // lines as comments; applying it makes them, and the next apply writes the lines.
    let saved = f.dir.join("restricted-plan.json").display().to_string();
    let out = bkc(&f, &["plan", &file, "-o", &saved]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("+ key of job desktop-to-a (made on the host)"),
        "{shown}"
    );
    assert!(shown.contains("+ /etc/bkc/authorized_keys/root"), "{shown}");
    let out = bkc(&f, &["apply", &saved]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    let placeholder = f.sh("backup_b", "cat /etc/bkc/authorized_keys/root");
    assert!(
        placeholder.contains(&format!(
            "# restrict,command=\"/usr/local/bin/bkc-run serve a-to-b\",from=\"{}\" <the key of job a-to-b, not known yet",
            f.machine("backup_a").addr
        )),
        "{placeholder}"
    );
    let (code, planned) = plan_code(&f, &file);
    assert_eq!(code, 2, "{planned}");
    assert!(!planned.contains("+ key of job"), "{planned}");
    apply_ok(&f, &file);
    for (host, job) in [("desktop", "desktop-to-a"), ("backup_a", "a-to-b")] {
        assert!(
            all.contains(&format!("{host}: made the key of job {job}: ssh-ed25519 ")),
            "{all}"
        );
        assert_eq!(
            f.sh(
                host,
                &format!("stat -c '%a %U' /etc/bkc/keys /etc/bkc/keys/{job}")
            ),
            "700 root\n600 root\n"
        );
    }
    let key_of = |host: &str, job: &str| {
        let k = f.sh(host, &format!("ssh-keygen -y -f /etc/bkc/keys/{job}"));
        k.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    };
    for (far, host, job) in [
        ("backup_a", "desktop", "desktop-to-a"),
        ("backup_b", "backup_a", "a-to-b"),
    ] {
        let authorized = f.sh(far, "cat /etc/bkc/authorized_keys/root");
        let line = format!(
            "restrict,command=\"/usr/local/bin/bkc-run serve {job}\",from=\"{}\" {} bkc:{job}@{host}\n",
            f.machine(host).addr,
            key_of(host, job)
        );
        assert!(authorized.contains(&line), "{far}: {authorized}");
        // sshd reads bkc's file besides its own, and was told so.
        let files = f.sh(far, "sshd -T | grep -i '^authorizedkeysfile '");
        assert_eq!(
            files.trim(),
            "authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2 /etc/bkc/authorized_keys/%u",
            "{far}"
        );
        let journal = f.sh(far, "journalctl -u ssh.service -o cat --no-pager");
        assert!(journal.contains("Reloaded"), "{far}: {journal}");
        // The operator's own key still logs in.
        assert_eq!(f.sh(far, "id -un").trim(), "root");
    }
    // The job's run logs in with its key from inside its sandbox, where it is the only key.
    let fingerprint = f.sh("desktop", "ssh-keygen -lf /etc/bkc/keys/desktop-to-a.pub");
    let fingerprint = fingerprint.split_whitespace().nth(1).unwrap().to_string();
    let logins = |f: &Fleet| {
        f.sh("backup_a", "journalctl -u ssh.service -o cat --no-pager")
            .matches(&fingerprint)
            .count()
    };
    let before = logins(&f);
    f.sh("desktop", "systemctl start bkc-desktop-to-a.service; true");
    assert!(
        Fleet::eventually(30, || logins(&f) > before),
        "the run never logged in with its key: {}",
        f.sh(
            "desktop",
            "journalctl -u bkc-desktop-to-a -o cat --no-pager | tail -20"
        )
    );
    // With the job's key, whatever the command, the forced one runs: no shell.
    for command in ["id", "echo $((6*7))", "sh -c 'echo $((6*7))'"] {
        let out = ssh_with_key(
            &f,
            "desktop",
            "/etc/bkc/keys/desktop-to-a",
            "backup_a",
            command,
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !said.contains("uid=") && !said.contains("42"),
            "{command}: {said}"
        );
        // Logged in (ssh says 255 for a refused key), and the forced command refused it.
        assert!(
            !matches!(out.status.code(), Some(0) | Some(255))
                && !said.contains("Permission denied"),
            "{command}: {:?} {said}",
            out.status.code()
        );
    }
    // The desktop's key does not open backup_b, and from another host it opens nothing.
    let out = ssh_with_key(
        &f,
        "desktop",
        "/etc/bkc/keys/desktop-to-a",
        "backup_b",
        "id",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out)
    );
    let private = f.sh("desktop", "cat /etc/bkc/keys/desktop-to-a");
    f.sh(
        "backup_b",
        &format!("umask 077; printf '%s' '{private}' > /tmp/stolen"),
    );
    let out = ssh_with_key(&f, "backup_b", "/tmp/stolen", "backup_a", "id");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out)
    );
    f.sh("backup_b", "rm /tmp/stolen");

    // Nothing left to change. Planned alone, backup_a still gets desktop's key: desktop is
    // read for it. When desktop cannot be read, backup_a is left alone rather than losing the
    // line.
    let (code, out) = plan_code(&f, &file);
    assert_eq!(code, 0, "{out}");
    let out = bkc(
        &f,
        &["plan", &file, "--host", "backup_a", "--detailed-exitcode"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    f.link_down("desktop");
    let out = bkc(&f, &["plan", &file, "--host", "backup_a"]);
    f.link_up("desktop");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the key of job desktop-to-a cannot be read on desktop"),
        "{}",
        text(&out)
    );

    // Back on the operator's identity: bkc's authorized keys and drop-in go, sshd reads its own
    // list again. The jobs' keys stay on their hosts, where they open nothing.
    apply_ok(&f, &base);
    for far in ["backup_a", "backup_b"] {
        assert_eq!(
            f.sh(
                far,
                "find /etc/bkc/authorized_keys /etc/ssh/sshd_config.d/bkc.conf -type f 2>/dev/null; true"
            ),
            ""
        );
        let files = f.sh(far, "sshd -T | grep -i '^authorizedkeysfile '");
        assert!(!files.contains("/etc/bkc/"), "{far}: {files}");
    }
    f.sh("desktop", "test -f /etc/bkc/keys/desktop-to-a");
}

/// An sshd configuration that `sshd -t` refuses when the drop-in comes (an error planted in
/// sshd_config after the plan was read, while the host waits for its deploy lock) fails that
/// host's switch: it is rolled back whole, sshd goes on as it was, the other hosts are applied.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn a_drop_in_sshd_refuses_rolls_the_host_back_whole() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    let old_b = f.sh("backup_b", "sha256sum /etc/bkc/manifest.json");
    let file = write_topology(&f, "restricted-refused.kdl", &restricted(&f, ""));
    let mut holder = f
        .ssh_cmd(
            "backup_b",
            "mkdir -p /var/lib/bkc && flock /var/lib/bkc/deploy.lock sh -c 'echo locked; read x'",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    let mut apply = bkc_cmd(&f, &["apply", &file, "--yes"])
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
    if rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
        let _ = holder.kill();
        let _ = apply.wait();
        panic!("backup_b's apply never waited: {}", reader.join().unwrap());
    }
    f.sh(
        "backup_b",
        "echo 'NoSuchOption yes' >> /etc/ssh/sshd_config",
    );
    drop(holder.stdin.take());
    let _ = holder.wait();
    let status = apply.wait().unwrap();
    let err = reader.join().unwrap();
    f.sh(
        "backup_b",
        "sed -i '/^NoSuchOption yes$/d' /etc/ssh/sshd_config",
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("backup_b: FAILED"), "{err}");
    assert!(err.contains("sshd -t refuses the configuration"), "{err}");
    assert!(err.contains("backup_a: applied"), "{err}");
    assert_eq!(f.sh("backup_b", "sha256sum /etc/bkc/manifest.json"), old_b);
    assert_eq!(
        f.sh(
            "backup_b",
            "find /etc/bkc/authorized_keys /etc/ssh/sshd_config.d/bkc.conf -type f 2>/dev/null; true"
        ),
        ""
    );
    // sshd went on as it was: the operator logs in.
    assert_eq!(f.sh("backup_b", "id -un").trim(), "root");
    baseline(&f);
}

/// `source-snapshot "btrfs"` under real systemd: the job's sandboxed runner takes the snapshot
/// (no capability but write access to the source's `.bkc-snapshots`), and the unit's
/// `drop-source-snapshots` outside the sandbox deletes a killed run's leftover before the run and
/// the run's own after it.
#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, btrfs-progs and a loop device"]
fn a_source_snapshot_is_taken_in_the_sandbox_and_deleted_outside_it() {
    use std::os::unix::fs::MetadataExt;
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    if !common::require_tool("mkfs.btrfs") || !common::require_tool("losetup") {
        return;
    }
    let run = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(o.status.success(), "{c:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // The file system, made on the host (the containers have no btrfs-progs): the source
    // subvolume with a mail in it, and a killed run's leftover snapshot.
    let image = f.dir.join("mail.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(160 << 20)
        .unwrap();
    run(Command::new("mkfs.btrfs").arg("-q").arg(&image));
    let dev = run(Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&image));
    // Detached when the test ends, pass or fail.
    struct Loop(String);
    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _loop = Loop(dev.clone());
    let mnt = f.dir.join("mail-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.display().to_string();
    let frozen = "inbox/.bkc-snapshots/mail.0";
    run(Command::new("sh").arg("-c").arg(format!(
        "mount {dev} {m} && btrfs -q subvolume create {m}/inbox && echo hello > {m}/inbox/1.eml && \
         mkdir {m}/inbox/.bkc-snapshots && btrfs -q subvolume snapshot -r {m}/inbox {m}/{frozen}; \
         r=$?; umount {m}; exit $r"
    )));
    // Mounted into desktop's mount namespace from the host, with the host's rights: the
    // container has no loop device of its own, so a node for this one is made in its /dev.
    let rdev = std::fs::metadata(&dev).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let leader = f.leader("desktop").to_string();
    run(Command::new("nsenter")
        .args(["-t", &leader, "-m", "--"])
        .args([
            "sh",
            "-c",
            &format!(
                "mknod /dev/bkc-test-mail b {major} {minor} && mkdir -p /srv/mail && \
             mount -t btrfs /dev/bkc-test-mail /srv/mail"
            ),
        ]));
    let extra = r#"job "mail" on="desktop" {
    schedule "yearly"
    sync "/srv/mail/inbox/" "/srv/mail-copy/" {
        source-snapshot "btrfs"
    }
}
"#;
    let file = write_topology(&f, "mail.kdl", &topology(&f, extra));
    apply_ok(&f, &file);
    let out = f.ssh("desktop", "systemctl start bkc-mail.service");
    let log = f.sh(
        "desktop",
        "journalctl -u bkc-mail -o cat --no-pager | tail -20",
    );
    assert!(out.status.success(), "{}\n{log}", text(&out));
    assert_eq!(
        f.sh("desktop", "cat /srv/mail-copy/1.eml").trim(),
        "hello",
        "{log}"
    );
    assert_eq!(
        f.sh("desktop", "ls -A /srv/mail-copy").trim(),
        "1.eml",
        "only the data was copied"
    );
    assert_eq!(
        f.sh("desktop", "ls -A /srv/mail/inbox/.bkc-snapshots")
            .trim(),
        "",
        "the leftover and the run's own snapshot are gone: {log}"
    );
    // The run took its snapshot in its sandbox: it copied what the snapshot holds, and the
    // journal has no word of a failed snapshot.
    assert!(!log.contains("source-snapshot"), "{log}");
    let _ = Command::new("nsenter")
        .args(["-t", &leader, "-m", "--", "sh", "-c"])
        .arg("umount /srv/mail; rm -f /dev/bkc-test-mail")
        .status();
    baseline(&f);
}

/// The runs of job `watched` on desktop, by result, as its state file counts them.
fn watched_runs(f: &Fleet) -> Option<serde_json::Value> {
    let text = f.sh(
        "desktop",
        "cat /var/lib/bkc/state/watched.json 2>/dev/null; true",
    );
    serde_json::from_str(&text).ok()
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn a_burst_of_changes_under_a_watch_runs_the_job_once() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    f.sh(
        "desktop",
        "rm -rf /srv/watched /srv/watched-copy /var/lib/bkc/state/watched.json && mkdir -p /srv/watched",
    );
    // The after hook keeps each run going for a while after its copy, so that a change can
    // come while it runs.
    let extra = r#"job "watched" on="desktop" {
    watch "/srv/watched" quiet="2s"
    sync "/srv/watched/" "/srv/watched-copy/"
    hook "after" "sleep 4"
}
"#;
    let file = write_topology(&f, "watch.kdl", &topology(&f, extra));
    apply_ok(&f, &file);
    for unit in ["bkc-watch@watched.path", "bkc-watch@watched.service"] {
        let state = f.sh(
            "desktop",
            &format!("systemctl is-enabled {unit}; systemctl is-active {unit}; true"),
        );
        assert_eq!(state, "enabled\nactive\n", "{unit}");
    }
    let journal = || {
        f.sh(
            "desktop",
            "journalctl -u bkc-watch@watched -u bkc-watched -o cat --no-pager; true",
        )
    };
    assert!(
        Fleet::eventually(20, || journal().contains("watching")),
        "the watcher never started watching: {}",
        journal()
    );
    // 100 changes in a burst: files created and written again, directories made, a file in
    // them. The last change's time comes from the host's clock, which the container shares.
    let last: f64 = f
        .sh(
            "desktop",
            "cd /srv/watched && for i in $(seq 90); do echo $i > f$i; done && \
             for i in 1 2 3 4 5; do echo again > f$i; done && mkdir -p sub/deeper && \
             echo deep > sub/deeper/file && echo y > sub/file && date +%s.%N",
        )
        .trim()
        .parse()
        .unwrap();
    let success = |n: u64| move |s: serde_json::Value| s["runs_total"]["success"] == n;
    assert!(
        Fleet::eventually(30, || watched_runs(&f).is_some_and(success(1))),
        "the job never ran: {}",
        journal()
    );
    let s = watched_runs(&f).unwrap();
    assert_eq!(s["runs_total"], serde_json::json!({"success": 1}), "{s}");
    let start: jiff::Timestamp = s["start"].as_str().unwrap().parse().unwrap();
    let after = start.as_duration().as_secs_f64() - last;
    assert!(
        after >= 2.0,
        "the run began {after:.2} s after the last change, before the quiet time"
    );
    assert_eq!(
        f.sh("desktop", "cat /srv/watched-copy/sub/deeper/file")
            .trim(),
        "deep",
        "the data arrived"
    );
    assert_eq!(
        f.sh("desktop", "ls /srv/watched-copy | wc -l").trim(),
        "91",
        "f1..f90 and sub"
    );
    // Twice the quiet time more: nothing else starts it.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(watched_runs(&f).unwrap()["runs_total"]["success"], 1);

    // A change while a run goes on (past its copy, in its after hook): the watcher's start,
    // a quiet time later, finds the run still going and merges into it; once it has ended,
    // the watcher starts the job again, and that run copies the change.
    f.sh("desktop", "echo first > /srv/watched/again");
    assert!(
        Fleet::eventually(20, || f
            .sh("desktop", "systemctl is-active bkc-watched.service; true")
            .starts_with("activating")),
        "the job did not start: {}",
        journal()
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    f.sh("desktop", "echo during > /srv/watched/during");
    assert!(
        Fleet::eventually(40, || watched_runs(&f).is_some_and(success(3))),
        "no run after the one the change came during: {}",
        journal()
    );
    assert!(
        journal().contains("merged into a run already going on"),
        "{}",
        journal()
    );
    assert_eq!(
        f.sh("desktop", "cat /srv/watched-copy/during").trim(),
        "during"
    );
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(watched_runs(&f).unwrap()["runs_total"]["success"], 3);

    // The watch narrowed to a part of the tree: the spec changed, and with it the watcher's
    // unit, so the deploy restarts the watcher, which then starts the job for a change there
    // and for none elsewhere.
    let narrowed = extra.replace(r#"watch "/srv/watched""#, r#"watch "/srv/watched/sub""#);
    let file = write_topology(&f, "watch.kdl", &topology(&f, &narrowed));
    apply_ok(&f, &file);
    assert!(
        Fleet::eventually(20, || journal().contains("under /srv/watched/sub;")),
        "the watcher was not restarted with the new path: {}",
        journal()
    );
    f.sh("desktop", "echo outside > /srv/watched/outside");
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(watched_runs(&f).unwrap()["runs_total"]["success"], 3);
    f.sh("desktop", "echo inside > /srv/watched/sub/inside");
    assert!(
        Fleet::eventually(30, || watched_runs(&f).is_some_and(success(4))),
        "a change under the new path started nothing: {}",
        journal()
    );

    // The job removed: its watcher and path unit are stopped and gone.
    baseline(&f);
    assert_eq!(
        f.sh(
            "desktop",
            "systemctl is-active bkc-watch@watched.service bkc-watch@watched.path; ls /etc/systemd/system/bkc-watch@* 2>/dev/null; true"
        ),
        "inactive\ninactive\n"
    );
}

/// Slots under systemd: with `max-parallel=1` on desktop, a job started while another holds the
/// slot is a service that is activating and waits; `bkc status` shows it as queued (and the
/// holder as running), and once the slot is free it runs and records its wait.
#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap"]
fn a_run_waiting_for_a_slot_is_queued_in_status() {
    let Some(f) = fleet::shared(&NAMES) else {
        return;
    };
    baseline(&f);
    f.sh(
        "desktop",
        "rm -rf /srv/slot-* /run/bkc/slot-gate /var/lib/bkc/state/holder.json /var/lib/bkc/state/waiter.json && \
         mkdir -p /srv/slot-src && echo x > /srv/slot-src/f",
    );
    // The holder keeps its slot until the test opens the gate.
    let jobs = r#"job "holder" on="desktop" {
    hook "before" "until [ -e /run/bkc/slot-gate ]; do sleep 0.1; done"
    sync "/srv/slot-src/" "/srv/slot-holder/"
}
job "waiter" on="desktop" {
    sync "/srv/slot-src/" "/srv/slot-waiter/"
}
"#;
    let base = topology(&f, "");
    let chain = base.find("job \"desktop-to-a\"").unwrap();
    let text =
        base[..chain].replace("host \"desktop\" ", "host \"desktop\" max-parallel=1 ") + jobs;
    let file = write_topology(&f, "slots.kdl", &text);
    apply_ok(&f, &file);
    f.sh("desktop", "systemctl start --no-block bkc-holder.service");
    assert!(
        Fleet::eventually(20, || f
            .sh("desktop", "cat /run/bkc/locks/slots/0 2>/dev/null; true")
            .contains("\"holder\"")),
        "the holder never took the slot"
    );
    f.sh("desktop", "systemctl start --no-block bkc-waiter.service");
    let status = || {
        let out = bkc(&f, &["status", &file, "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let row = |job: &str| {
            rows.as_array()
                .and_then(|r| r.iter().find(|r| r["job"] == job).cloned())
                .unwrap_or_default()
        };
        (row("holder"), row("waiter"))
    };
    assert!(
        Fleet::eventually(20, || status().1["queued_since"].is_string()),
        "the waiter is not queued: {:?}",
        status()
    );
    let (holder, waiter) = status();
    assert_eq!(holder["service"], "activating", "{holder}");
    assert!(holder.get("queued_since").is_none(), "{holder}");
    assert_eq!(waiter["service"], "activating", "{waiter}");
    let table = String::from_utf8_lossy(&bkc(&f, &["status", &file]).stdout).into_owned();
    let line = |job: &str| {
        table
            .lines()
            .find(|l| l.starts_with(job))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("waiter").contains(" queued "), "{table}");
    assert!(line("holder").contains(" running "), "{table}");

    f.sh("desktop", "touch /run/bkc/slot-gate");
    let done = |job: &str| {
        let s = f.sh(
            "desktop",
            &format!("cat /var/lib/bkc/state/{job}.json 2>/dev/null; true"),
        );
        serde_json::from_str::<serde_json::Value>(&s).unwrap_or_default()
    };
    assert!(
        Fleet::eventually(30, || ["holder", "waiter"]
            .iter()
            .all(|j| done(j)["result"] == "success")),
        "{} {}",
        done("holder"),
        done("waiter")
    );
    let waiter = done("waiter");
    assert!(
        waiter["slot_wait_secs"].as_f64().unwrap_or(0.0) > 0.0,
        "{waiter}"
    );
    assert!(waiter.get("queued_since").is_none(), "{waiter}");
    assert_eq!(f.sh("desktop", "cat /srv/slot-waiter/f").trim(), "x");
    f.sh("desktop", "rm -f /run/bkc/slot-gate");
    baseline(&f);
}
