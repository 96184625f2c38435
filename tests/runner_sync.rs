//! The runner against real rsync and sshd on namespaced test hosts: data paths, guards, hooks,
//! snapshots, schedules. Needs root; see tests/harness.

use crate::common;

use std::os::unix::fs::MetadataExt;

use crate::harness::*;
use bkc::spec::{
    Command as HookCommand, Hook, HookWhen, Interval, LockMode, OnFailure, Retention, Snapshot,
};

#[test]
#[ignore = "needs root, sshd and rsync"]
fn seed_chain_desktop_to_a_then_a_to_b() {
    let _serial = shared();
    let Some(net) = Net::new(3) else { return };
    // h1 = desktop, h2 = backup_a, h3 = backup_b.
    write(&net.srv("h1").join("home/music/song.flac"), "la la la");
    write(&net.srv("h1").join("home/mail/inbox"), "hello");

    let mut d2a = net.spec("desktop-to-a", "h1");
    d2a.syncs.push(sync(
        at("h1", "/srv/home/"),
        at("h2", "/srv/backup/desktop/"),
    ));
    own_locks(&mut d2a);
    d2a.locks
        .push(lock("h2", "a-to-b", LockMode::Shared, "a-to-b"));
    d2a.locks.sort_by(|a, b| a.at.cmp(&b.at));
    let r = net.run(&d2a, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events("locked").len(), 3);
    assert!(r.end()["bytes_sent"].as_u64().unwrap() > 0);

    let mut a2b = net.spec("a-to-b", "h2");
    a2b.syncs.push(sync(
        at("h2", "/srv/backup/"),
        at("h3", "/srv/offsite/backup_a/"),
    ));
    own_locks(&mut a2b);
    a2b.locks
        .push(lock("h2", "desktop-to-a", LockMode::Shared, "desktop-to-a"));
    a2b.locks.sort_by(|a, b| a.at.cmp(&b.at));
    let r = net.run(&a2b, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let got = std::fs::read_to_string(
        net.srv("h3")
            .join("offsite/backup_a/desktop/music/song.flac"),
    )
    .unwrap();
    assert_eq!(got, "la la la");
    // State and metrics on the runner's host; no lock left held anywhere.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.srv("h2").join("bkc/state/a-to-b.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["result"], "success");
    assert!(state["last_success"].is_string());
    let prom = std::fs::read_to_string(net.srv("h2").join("bkc/metrics/bkc_a-to-b.prom")).unwrap();
    assert!(
        prom.contains("bkc_runs_total{job=\"a-to-b\",result=\"success\"} 1"),
        "{prom}"
    );
    for (h, j) in [
        ("h1", "desktop-to-a"),
        ("h2", "desktop-to-a"),
        ("h2", "a-to-b"),
        ("h3", "a-to-b"),
    ] {
        assert!(net.lock_free(h, &lock_path(j)), "{h} {j}");
    }
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn empty_source_guard_refuses_deleting_syncs() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    std::fs::create_dir_all(net.srv("h1").join("empty")).unwrap();
    write(&net.srv("h2").join("dst/keep.txt"), "precious");
    write(&net.srv("h2").join("src-empty/.placeholder-dir/x"), "");
    std::fs::remove_dir_all(net.srv("h2").join("src-empty/.placeholder-dir")).unwrap();
    let deleting = |src, dst| {
        let mut s = sync(src, dst);
        s.opts.push("--delete".into());
        s.deletes = true;
        s
    };
    // Push from an empty local dir, from a missing one, and pull from an empty remote dir.
    for src in [at("h1", "/srv/empty/"), at("h1", "/srv/not-mounted/")] {
        let mut spec = net.spec("guard", "h1");
        spec.syncs
            .push(deleting(src.clone(), at("h2", "/srv/dst/")));
        let r = net.run(&spec, &[], &[]);
        assert_eq!(r.code, 5, "{src:?}: {}", r.stderr);
        assert_eq!(r.end()["result"], "refused");
        assert!(
            r.events("sync-start").is_empty(),
            "rsync must not even start"
        );
        assert!(net.srv("h2").join("dst/keep.txt").exists());
    }
    write(&net.srv("h1").join("local-dst/keep.txt"), "precious too");
    let mut spec = net.spec("guard", "h1");
    spec.syncs.push(deleting(
        at("h2", "/srv/src-empty/"),
        at("h1", "/srv/local-dst/"),
    ));
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("source is empty"), "{}", r.stderr);
    assert!(net.srv("h1").join("local-dst/keep.txt").exists());

    // Said on purpose: the deletion goes through.
    let mut spec = net.spec("guard", "h1");
    let mut s = deleting(at("h1", "/srv/empty/"), at("h2", "/srv/dst/"));
    s.allow_empty_source = true;
    spec.syncs.push(s);
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!net.srv("h2").join("dst/keep.txt").exists());
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn hook_failure_policies() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/f"), "x");
    let trace = net.dir.join("trace");
    let t = trace.display().to_string();
    let base = |policy: OnFailure| {
        let mut spec = net.spec("hooks", "h1");
        spec.syncs
            .push(sync(at("h1", "/srv/data/"), at("h2", "/srv/copy/")));
        own_locks(&mut spec);
        spec.hooks.push(hook(
            HookWhen::Before,
            "h1",
            &format!("echo before-1 >> {t}; exit 3"),
            policy,
        ));
        spec.hooks.push(hook(
            HookWhen::Before,
            "h1",
            &format!("echo before-2 >> {t}"),
            OnFailure::Break,
        ));
        spec.hooks.push(hook(
            HookWhen::After,
            "h1",
            &format!("echo \"after $BKC_JOB $BKC_RESULT $BKC_EXIT_CODE\" >> {t}"),
            OnFailure::Ignore,
        ));
        spec
    };
    let read = || {
        let s = std::fs::read_to_string(&trace).unwrap_or_default();
        let _ = std::fs::remove_file(&trace);
        let _ = std::fs::remove_dir_all(net.srv("h2").join("copy"));
        s
    };

    let r = net.run(&base(OnFailure::Ignore), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(), "before-1\nbefore-2\nafter hooks success 0\n");
    assert_eq!(r.events("warning").len(), 1);

    let r = net.run(&base(OnFailure::Continue), &[], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        net.srv("h2").join("copy/f").exists(),
        "continue still syncs"
    );
    assert_eq!(read(), "before-1\nbefore-2\nafter hooks failed 1\n");

    let r = net.run(&base(OnFailure::Break), &[], &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.events("sync-start").is_empty(), "break skips the syncs");
    assert!(!net.srv("h2").join("copy").exists());
    assert_eq!(
        read(),
        "before-1\nafter hooks break 4\n",
        "break stops later before hooks; after hooks run"
    );

    // Over SSH: an argv is quoted word by word, a shell line goes as is, with the environment.
    let mut spec = net.spec("remote-hooks", "h1");
    spec.hooks.push(Hook {
        when: HookWhen::Before,
        host: "h2".into(),
        command: HookCommand::Argv(vec!["touch".into(), "/srv/it's a $file".into()]),
        on_failure: OnFailure::Break,
    });
    spec.hooks.push(hook(
        HookWhen::After,
        "h2",
        "cd /srv && echo \"$BKC_JOB $BKC_RESULT $BKC_EXIT_CODE\" > after.txt",
        OnFailure::Continue,
    ));
    spec.hooks
        .push(hook(HookWhen::After, "h2", "false", OnFailure::Continue));
    let r = net.run(&spec, &[], &[]);
    assert_eq!(
        r.code, 1,
        "an after hook with on-failure continue fails the run: {}",
        r.stderr
    );
    assert!(net.srv("h2").join("it's a $file").exists());
    assert_eq!(
        std::fs::read_to_string(net.srv("h2").join("after.txt")).unwrap(),
        "remote-hooks success 0\n"
    );
}

fn run_at(net: &Net, spec: &bkc::spec::JobSpec, now: &str) -> Ran {
    let r = net.run(spec, &[], &[("BKC_RUN_NOW", now)]);
    assert_eq!(r.code, 0, "{now}: {}", r.stderr);
    r
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn snapshots_and_retention_remote_and_local_dest() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/same.txt"), "unchanged");
    write(&net.srv("h1").join("data/day.txt"), "day 0");
    write(&net.srv("h2").join("data/same.txt"), "pulled");
    let ret = Retention {
        keep_last: Some(1),
        keep_daily: Some(2),
        ..Default::default()
    };

    // Push: the snapshots live on h2, everything is done over SSH.
    let mut push = net.spec("snap-push", "h1");
    let mut s = sync(at("h1", "/srv/data/"), at("h2", "/srv/snaps/"));
    // The runner prunes these itself (append-only snapshots are pruned on their host: see
    // tests/serve.rs).
    s.snapshot = Some(Snapshot {
        retention: ret.clone(),
        append_only: false,
    });
    push.syncs.push(s);
    own_locks(&mut push);
    // A leftover from a run interrupted long ago: never a base, removed once a newer snapshot exists.
    std::fs::create_dir_all(net.srv("h2").join("snaps/.partial-2025-12-01T000000Z")).unwrap();

    // Pull: the snapshots live on the runner's own host.
    let mut pull = net.spec("snap-pull", "h1");
    let mut s = sync(at("h2", "/srv/data/"), at("h1", "/srv/local-snaps/"));
    s.snapshot = Some(Snapshot {
        retention: Retention {
            keep_last: Some(2),
            ..Default::default()
        },
        append_only: false,
    });
    pull.syncs.push(s);
    own_locks(&mut pull);

    for day in 1..=4 {
        write(&net.srv("h1").join("data/day.txt"), &format!("day {day}"));
        let now = format!("2026-03-{day:02}T02:15:00Z");
        let r = run_at(&net, &push, &now);
        let ev = r.events("snapshot");
        assert_eq!(ev[0]["name"], format!("2026-03-{day:02}T021500Z"));
        if day > 1 {
            assert_eq!(
                ev[0]["base"],
                format!("/srv/snaps/2026-03-{:02}T021500Z", day - 1)
            );
        } else {
            assert!(ev[0]["base"].is_null(), "a partial is never a base");
        }
        if day >= 2 {
            run_at(&net, &pull, &now);
        }
    }
    // An interrupted run left a partial newer than the newest snapshot: the next run reuses it,
    // and what it holds that the source no longer has does not survive into the snapshot.
    write(
        &net.srv("h2")
            .join("snaps/.partial-2026-03-04T100000Z/gone.txt"),
        "deleted at the source since",
    );
    // A second snapshot on day 4: keep-daily keeps only the newest of the day.
    let r = run_at(&net, &push, "2026-03-04T20:00:00Z");
    assert!(
        r.events("sync-start")[0]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--delete")
    );
    assert!(
        !net.srv("h2")
            .join("snaps/2026-03-04T200000Z/gone.txt")
            .exists()
    );

    let snaps = net.srv("h2").join("snaps");
    assert_eq!(
        names(&snaps),
        ["2026-03-03T021500Z", "2026-03-04T200000Z", "latest"],
        "keep-daily 2 over 4 days, stale partial gone"
    );
    assert_eq!(
        std::fs::read_link(snaps.join("latest")).unwrap().to_str(),
        Some("2026-03-04T200000Z")
    );
    let ino = |p: &str| std::fs::metadata(snaps.join(p)).unwrap().ino();
    assert_eq!(
        ino("2026-03-03T021500Z/same.txt"),
        ino("2026-03-04T200000Z/same.txt"),
        "hardlinked"
    );
    assert_ne!(
        ino("2026-03-03T021500Z/day.txt"),
        ino("2026-03-04T200000Z/day.txt")
    );
    assert_eq!(
        std::fs::read_to_string(snaps.join("latest/day.txt")).unwrap(),
        "day 4"
    );

    let local = net.srv("h1").join("local-snaps");
    assert_eq!(
        names(&local),
        ["2026-03-03T021500Z", "2026-03-04T021500Z", "latest"]
    );
    let lino = |p: &str| std::fs::metadata(local.join(p)).unwrap().ino();
    assert_eq!(
        lino("2026-03-03T021500Z/same.txt"),
        lino("2026-03-04T021500Z/same.txt")
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.srv("h1").join("bkc/state/snap-pull.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["syncs"][0]["snapshot"], "2026-03-04T021500Z");

    // An empty source (a missing mount) makes no snapshot, so retention cannot prune good ones.
    let mut empty = push.clone();
    empty.syncs[0].source.path = "/srv/not-mounted/".into();
    let r = net.run(&empty, &[], &[("BKC_RUN_NOW", "2026-03-09T02:15:00Z")]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(names(&snaps).len(), 3);

    // A failed run keeps every snapshot and leaves its partial for the next run to reuse.
    let mut failing = push.clone();
    failing.syncs[0].opts.push("--no-such-option".into());
    let r = net.run(&failing, &[], &[("BKC_RUN_NOW", "2026-03-07T02:15:00Z")]);
    assert_eq!(r.code, 1);
    assert!(r.events("prune").is_empty());
    assert_eq!(names(&snaps).len(), 3);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn every_skips_until_due() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/f"), "x");
    let mut spec = net.spec("every", "h1");
    spec.every = Some(Interval {
        secs: 4 * 86400,
        slack_secs: 3600,
    });
    spec.syncs
        .push(sync(at("h1", "/srv/data/"), at("h2", "/srv/copy/")));
    own_locks(&mut spec);

    let r = run_at(&net, &spec, "2026-01-01T00:00:00Z");
    assert!(r.events("skipped").is_empty(), "no state yet: due");
    std::fs::remove_dir_all(net.srv("h2").join("copy")).unwrap();

    // Three days later: not due (needs 4 days minus one hour of slack).
    let r = run_at(&net, &spec, "2026-01-04T00:00:00Z");
    let skipped = r.events("skipped");
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0]["reason"].as_str().unwrap().contains("not due"));
    assert_eq!(r.end()["result"], "skipped");
    assert!(r.events("locked").is_empty() && r.events("sync-start").is_empty());
    assert!(!net.srv("h2").join("copy").exists());
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.srv("h1").join("bkc/state/every.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["result"], "skipped");
    assert!(
        state["last_success"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-01T00:00:0")
    );
    assert_eq!(state["runs_total"]["skipped"], 1);

    // Within the slack of four days: due.
    let r = run_at(&net, &spec, "2026-01-04T23:30:00Z");
    assert!(r.events("skipped").is_empty());
    assert!(net.srv("h2").join("copy/f").exists());
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn dry_run_changes_nothing() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    write(&net.srv("h1").join("data/new.txt"), "new");
    write(&net.srv("h2").join("copy/old.txt"), "old");
    let mut spec = net.spec("dry", "h1");
    let mut s = sync(at("h1", "/srv/data/"), at("h2", "/srv/copy/"));
    s.opts.push("--delete".into());
    s.deletes = true;
    spec.syncs.push(s);
    let mut s = sync(at("h1", "/srv/data/"), at("h2", "/srv/snaps/"));
    s.snapshot = Some(Snapshot::default());
    spec.syncs.push(s);
    own_locks(&mut spec);
    spec.lock_files.push(at("h2", "/srv/seed/dry.lock"));
    spec.hooks.push(hook(
        HookWhen::Before,
        "h1",
        "touch /srv/hook-ran",
        OnFailure::Break,
    ));

    let r = net.run(&spec, &["--dry-run"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.events("dry-run").len() >= 4, "says what it would do");
    assert!(r.events("sync-start").iter().all(|e| {
        e["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--dry-run")
    }));
    assert!(net.srv("h2").join("copy/old.txt").exists());
    assert!(!net.srv("h2").join("copy/new.txt").exists());
    assert!(!net.srv("h2").join("snaps").exists(), "no snapshot");
    assert!(!net.srv("h2").join("seed").exists(), "no lock file");
    assert!(!net.srv("h1").join("bkc").exists(), "no lock, no state");
    assert!(!net.srv("h2").join("bkc").exists());
    assert!(!net.srv("h1").join("hook-ran").exists());
}

#[test]
fn bad_specs_exit_2_with_a_clear_message() {
    let dir = common::scratch("runner", "badspec");
    let cases = [
        ("missing.json", None, "cannot read job spec"),
        (
            "broken.json",
            Some("{\"version\": 1, \"job\": "),
            "not valid",
        ),
        ("future.json", Some("{\"version\": 99}"), "version 99"),
        ("garbage.json", Some("\u{0}\u{1}\u{ff}"), "not valid"),
    ];
    for (name, content, want) in cases {
        let p = dir.join(name);
        if let Some(c) = content {
            std::fs::write(&p, c).unwrap();
        }
        let out = std::process::Command::new(runner())
            .arg(&p)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    let out = std::process::Command::new(runner())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn run_timeout_stops_what_runs_and_after_hooks_still_run() {
    let _serial = shared();
    let Some(net) = Net::new(1) else { return };
    let mut spec = net.spec("slowhook", "h1");
    spec.timeout_secs = Some(1);
    spec.locks
        .push(lock("h1", "slowhook", LockMode::Exclusive, "slowhook"));
    spec.hooks
        .push(hook(HookWhen::Before, "h1", "sleep 30", OnFailure::Break));
    spec.hooks.push(hook(
        HookWhen::After,
        "h1",
        "echo $BKC_RESULT $BKC_EXIT_CODE > /srv/after",
        OnFailure::Ignore,
    ));
    let t = std::time::Instant::now();
    let r = net.run(&spec, &[], &[]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "the hook was not stopped"
    );
    assert_eq!(
        std::fs::read_to_string(net.srv("h1").join("after")).unwrap(),
        "timeout 6\n"
    );
    assert!(net.lock_free("h1", &lock_path("slowhook")));
}

/// A spec for `job` on the test machine itself (host `me`), state under `dir`, with no syncs.
fn local_spec(job: &str, dir: &str) -> bkc::spec::JobSpec {
    bkc::spec::JobSpec {
        version: bkc::spec::SPEC_VERSION,
        job: job.into(),
        host: "me".into(),
        state_dir: format!("{dir}/state"),
        metrics_dir: None,
        known_hosts: "/dev/null".into(),
        identity: None,
        hosts: Default::default(),
        every: None,
        timeout_secs: None,
        nice: None,
        io_class: None,
        retries: 0,
        retry_delay_secs: 0,
        locks: vec![],
        lock_files: vec![],
        wait_files: vec![],
        hooks: vec![],
        syncs: vec![],
        notify: vec![],
        ping: None,
        fresh_markers: vec![],
        restore_to: vec![],
        verify: None,
        slot: None,
        watch: None,
    }
}

/// Odd but well-typed specs: every one ends with a documented exit code, never a panic (101).
#[test]
#[ignore = "needs rsync"]
fn odd_specs_never_panic() {
    if !common::require_tool("rsync") {
        return;
    }
    let dir = common::scratch("runner", "odd");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let d = dir.display().to_string();
    let base = || {
        let mut s = local_spec("odd", &d);
        s.syncs.push(sync(
            at("me", &format!("{d}/src/")),
            at("me", &format!("{d}/dst/")),
        ));
        s
    };
    let mut cases: Vec<(bkc::spec::JobSpec, &[i32])> = Vec::new();
    let mut s = base();
    s.every = Some(Interval {
        secs: u64::MAX,
        slack_secs: 0,
    });
    s.timeout_secs = Some(u64::MAX);
    s.retries = u32::MAX;
    s.retry_delay_secs = u64::MAX;
    s.nice = Some(i32::MIN);
    s.locks.push(bkc::spec::Lock {
        at: at("me", &format!("{d}/locks/odd.lock")),
        mode: LockMode::Exclusive,
        owner: "odd".into(),
        wait_secs: u64::MAX,
        timeout_secs: u64::MAX,
    });
    s.syncs[0].snapshot = Some(Snapshot {
        retention: Retention {
            keep_last: Some(u32::MAX),
            ..Default::default()
        },
        append_only: false,
    });
    s.syncs[0].allow_empty_source = true;
    cases.push((s, &[0]));
    let mut s = base();
    s.job = "../escape".into();
    cases.push((s, &[2]));
    let mut s = base();
    s.syncs[0].dest.host = "nowhere".into();
    cases.push((s, &[2]));
    let mut s = base();
    s.hooks.push(Hook {
        when: HookWhen::Before,
        host: "me".into(),
        command: HookCommand::Argv(vec![]),
        on_failure: OnFailure::Break,
    });
    cases.push((s, &[4]));
    let mut s = base();
    s.syncs[0].opts = vec!["--no-such-rsync-option\n".into()];
    cases.push((s, &[1]));
    let mut s = base();
    s.syncs[0].source.path = format!("{d}/src/\n\u{0}");
    cases.push((s, &[2]));
    // Locks out of the one global order, or one lock twice: refused before anything is taken.
    let lock_at = |path: &str| bkc::spec::Lock {
        at: at("me", &format!("{d}/locks/{path}")),
        mode: LockMode::Exclusive,
        owner: "odd".into(),
        wait_secs: 1,
        timeout_secs: 1,
    };
    let mut s = base();
    s.locks = vec![lock_at("b.lock"), lock_at("a.lock")];
    cases.push((s, &[2]));
    let mut s = base();
    s.locks = vec![lock_at("a.lock"), lock_at("a.lock")];
    cases.push((s, &[2]));
    for (i, (spec, want)) in cases.iter().enumerate() {
        let p = dir.join(format!("{i}.json"));
        std::fs::write(&p, spec.to_json()).unwrap();
        let out = std::process::Command::new(runner())
            .arg(&p)
            .env("BKC_RUN_NOW", "9999-12-30T21:59:59Z")
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        assert!(
            want.contains(&code),
            "case {i}: exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs rsync"]
fn a_future_dated_snapshot_never_costs_the_new_one() {
    if !common::require_tool("rsync") {
        return;
    }
    // A snapshot named after this run's start (a clock that was ahead once) must neither push the
    // new snapshot out under keep-last 1 nor become its base.
    let dir = common::scratch("runner", "skew");
    let d = dir.display().to_string();
    write(&dir.join("src/f.txt"), "now");
    write(&dir.join("snaps/2026-02-01T000000Z/f.txt"), "last month");
    write(&dir.join("snaps/2030-01-01T000000Z/f.txt"), "a clock ahead");
    let mut s = bkc::spec::JobSpec {
        syncs: vec![sync(
            at("me", &format!("{d}/src/")),
            at("me", &format!("{d}/snaps")),
        )],
        ..local_spec("skew", &d)
    };
    s.syncs[0].snapshot = Some(Snapshot {
        retention: Retention {
            keep_last: Some(1),
            ..Default::default()
        },
        append_only: false,
    });
    let p = dir.join("skew.json");
    std::fs::write(&p, s.to_json()).unwrap();
    let out = std::process::Command::new(runner())
        .arg(&p)
        .env("BKC_RUN_NOW", "2026-03-01T02:15:00Z")
        .output()
        .unwrap();
    let r = parse(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let snaps = dir.join("snaps");
    assert_eq!(
        names(&snaps),
        ["2026-03-01T021500Z", "2030-01-01T000000Z", "latest"],
        "the new one and the newest by name stay"
    );
    assert_eq!(
        std::fs::read_link(snaps.join("latest")).unwrap().to_str(),
        Some("2026-03-01T021500Z")
    );
    assert_eq!(
        std::fs::read_to_string(snaps.join("latest/f.txt")).unwrap(),
        "now"
    );
    assert_eq!(
        r.events("snapshot")[0]["base"],
        format!("{d}/snaps/2026-02-01T000000Z")
    );
    assert!(
        r.events("warning").iter().any(|w| w["message"]
            .as_str()
            .unwrap()
            .contains("2030-01-01T000000Z")),
        "{:?}",
        r.events
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A power cut right after a run must not lose its record: each of the state file and the
/// metrics is synced before it is renamed into place, and its directory after, or a job with
/// `every` runs again at boot. There is no power switch here, so the order of the system calls is
/// what is checked, through real strace.
#[test]
fn state_and_metrics_are_synced_before_and_after_the_rename() {
    if !common::require_tool("strace") {
        return;
    }
    let dir = common::scratch("fsync", "run");
    let d = dir.display().to_string();
    write(&dir.join("src/f.txt"), "data");
    let mut s = bkc::spec::JobSpec {
        syncs: vec![sync(
            at("me", &format!("{d}/src/")),
            at("me", &format!("{d}/dst/")),
        )],
        ..local_spec("synced", &d)
    };
    s.metrics_dir = Some(format!("{d}/metrics"));
    let p = dir.join("synced.json");
    std::fs::write(&p, s.to_json()).unwrap();
    let trace = dir.join("trace");
    let out = std::process::Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close",
        ])
        .arg("-o")
        .arg(&trace)
        .arg(runner())
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = std::fs::read_to_string(&trace).unwrap();
    for (sub, file) in [("state", "synced.json"), ("metrics", "bkc_synced.prom")] {
        let dir = format!("{d}/{sub}");
        let order = synced_rename(&calls, &dir, file);
        assert_eq!(
            order,
            [
                "open temporary",
                "sync temporary",
                "rename",
                "open directory",
                "sync directory"
            ],
            "{file}: {calls}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The steps of replacing `dir/file` that `calls` (strace's lines) show, in order: the temporary
/// file (a dot file beside it) opened and synced, the rename, the directory opened and synced.
fn synced_rename(calls: &str, dir: &str, file: &str) -> Vec<&'static str> {
    let tmp_prefix = format!("\"{dir}/.{file}.");
    let mut tmp_fd = None;
    let mut dir_fd = None;
    let mut steps = Vec::new();
    for line in calls.lines() {
        // "<pid> <call>(<args>) = <result>"
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        let result = call.rsplit_once(" = ").map(|(_, r)| r.trim());
        let fd_arg = call
            .split_once('(')
            .and_then(|(_, a)| a.split([',', ')']).next())
            .map(str::trim);
        if call.starts_with("openat(") && call.contains(&tmp_prefix) {
            tmp_fd = result.map(str::to_string);
            steps.push("open temporary");
        } else if call.starts_with("openat(")
            && call.contains(&format!("\"{dir}\""))
            // The lock a state update holds on its directory is no step of the replacing.
            && !call.contains("O_DIRECTORY")
        {
            dir_fd = result.map(str::to_string);
            steps.push("open directory");
        } else if call.starts_with("fsync(") || call.starts_with("fdatasync(") {
            if fd_arg.is_some() && fd_arg == tmp_fd.as_deref() {
                steps.push("sync temporary");
            } else if fd_arg.is_some() && fd_arg == dir_fd.as_deref() {
                steps.push("sync directory");
            }
        } else if call.starts_with("rename") && call.contains(&tmp_prefix) {
            steps.push("rename");
        } else if call.starts_with("close(") {
            if fd_arg.is_some() && fd_arg == tmp_fd.as_deref() {
                tmp_fd = None;
            } else if fd_arg.is_some() && fd_arg == dir_fd.as_deref() {
                dir_fd = None;
            }
        }
    }
    steps
}
