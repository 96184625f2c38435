//! The runner's locks and waits against real hosts: exclusion, crashes, signals, dead links,
//! timeouts and seed-style lock files. Needs root; see tests/harness.

use std::time::{Duration, Instant};

use crate::harness::*;
use bkc::spec::{HookWhen, JobSpec, LockMode, OnFailure, WaitFile};

/// A job on `host` that pushes its /srv/data to h-dest and blocks on `other` (shared lock on
/// `other`'s lock at `dest`).
fn pushing(net: &Net, job: &str, host: &str, dest: &str, other: Option<&str>) -> JobSpec {
    let mut s = net.spec(job, host);
    s.syncs.push(sync(
        at(host, "/srv/data/"),
        at(dest, &format!("/srv/from-{job}/")),
    ));
    own_locks(&mut s);
    if let Some(o) = other {
        s.locks.push(lock(dest, o, LockMode::Shared, o));
        s.locks.sort_by(|a, b| a.at.cmp(&b.at));
    }
    s
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn jobs_blocking_on_each_other_never_overlap() {
    let _serial = alone();
    let Some(net) = Net::new(2) else { return };
    // The canonical pair: desktop (h1) pushes into backup_a (h2), holding its lock there over SSH;
    // backup_a's own job copies the same data locally, holding the same lock files by flock(2).
    write(&net.srv("h1").join("data/f"), "from h1");
    write(&net.srv("h2").join("data/f"), "from h2");
    let trace = net.dir.join("trace");
    let t = trace.display().to_string();
    let mut a = pushing(&net, "a", "h1", "h2", Some("b"));
    // a reaches h2 with a key of its own, through `bkc-run serve a` as a forced command.
    net.restrict(&mut a);
    let mut b = net.spec("b", "h2");
    b.syncs
        .push(sync(at("h2", "/srv/data/"), at("h2", "/srv/copy/")));
    own_locks(&mut b);
    b.locks.push(lock("h2", "a", LockMode::Shared, "a"));
    b.locks.sort_by(|x, y| x.at.cmp(&y.at));
    // The before hooks last long enough that the loser has finished its SSH handshake and truly
    // waits on the lock by the time the winner leaves: the gap then measures the wake-up.
    for (spec, name) in [(&mut a, "a"), (&mut b, "b")] {
        let host = spec.host.clone();
        spec.hooks.push(hook(
            HookWhen::Before,
            &host,
            &format!("echo {name} enter $(date +%s%N) >> {t}; sleep 0.4"),
            OnFailure::Break,
        ));
        spec.hooks.push(hook(
            HookWhen::After,
            &host,
            &format!("echo {name} exit $(date +%s%N) >> {t}"),
            OnFailure::Break,
        ));
    }
    let rounds = 20;
    for round in 0..rounds {
        let ca = net.runner(&a, &[]);
        let cb = net.runner(&b, &[]);
        let (ra, rb) = (net.spawn(ca), net.spawn(cb));
        let (ra, rb) = (collect(ra), collect(rb));
        assert_eq!(
            (ra.code, rb.code),
            (0, 0),
            "round {round}: {}\n{}",
            ra.stderr,
            rb.stderr
        );
    }
    let ev = trace_events(&trace);
    assert_eq!(ev.len(), 4 * rounds);
    for pair in ev.chunks(4) {
        // Each round: one job enters and exits, then the other; never interleaved.
        assert_eq!(pair[0].2, "enter", "{pair:?}");
        assert_eq!(pair[1].2, "exit", "{pair:?}");
        assert_eq!(pair[0].1, pair[1].1, "{pair:?}");
        assert_eq!(pair[2].2, "enter", "{pair:?}");
        assert_eq!(pair[3].2, "exit", "{pair:?}");
        assert_eq!(pair[2].1, pair[3].1, "{pair:?}");
        assert_ne!(pair[0].1, pair[2].1, "{pair:?}");
        // The second waited no longer than the first's run plus a second.
        let gap = Duration::from_nanos((pair[2].0 - pair[1].0) as u64);
        assert!(
            gap < Duration::from_secs(1),
            "waited {gap:?} after the other finished: {pair:?}"
        );
    }
}

/// A job whose rsync runs for a long while: a big file through a narrow bwlimit.
fn slow_push(net: &Net) -> JobSpec {
    let f = net.srv("h1").join("data/big");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    let out = std::process::Command::new("head")
        .args(["-c", "40M", "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(&f, out.stdout).unwrap();
    let mut s = pushing(net, "slow", "h1", "h2", None);
    s.syncs[0].bwlimit = Some("2000".into());
    s
}

/// Start [`slow_push`]'s runner and return once its rsync is moving data: the runner has said
/// `sync-start`, and the first bytes have reached h2.
fn mid_rsync(net: &Net, spec: &JobSpec) -> Live {
    let mut live = Live::new(net.spawn(net.runner(spec, &[])));
    live.wait_event("sync-start", 20);
    let dest = net.srv("h2").join("from-slow");
    let arrived = || {
        walkdir::WalkDir::new(&dest)
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .any(|m| m.is_file() && m.len() > 0)
    };
    assert!(
        Net::eventually(20.0, arrived),
        "no data reached h2: {:?}",
        live.seen
    );
    live
}

fn rsyncs_in(net: &Net, host: &str) -> usize {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", &net.host(host).ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "rsync")
        })
        .count()
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn kill_9_mid_rsync_leaves_no_lock() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let spec = slow_push(&net);
    let live = mid_rsync(&net, &spec);
    assert_eq!(rsyncs_in(&net, "h1"), 1);
    signal(live.pid(), libc::SIGKILL);
    let _ = live.finish(5);
    assert!(
        Net::eventually(2.0, || rsyncs_in(&net, "h1") == 0),
        "the orphaned rsync must die with the runner"
    );

    // The next run takes its locks at once, with a timeout that would fail otherwise.
    let mut again = spec.clone();
    again.syncs[0].bwlimit = None;
    for l in &mut again.locks {
        l.timeout_secs = 3;
    }
    let r = net.run(&again, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.events("lock-wait").is_empty(), "{:?}", r.events);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn sigterm_stops_rsync_and_frees_every_lock() {
    let _serial = alone();
    let Some(net) = Net::new(2) else { return };
    let spec = slow_push(&net);
    let live = mid_rsync(&net, &spec);
    assert_eq!(rsyncs_in(&net, "h1"), 1);
    let sent = Instant::now();
    signal(live.pid(), libc::SIGTERM);
    let r = live.finish(10);
    assert_eq!(r.code, 143, "{}", r.stderr);
    assert_eq!(r.end()["result"], "interrupted");
    assert!(Net::eventually(2.0 - sent.elapsed().as_secs_f64(), || {
        rsyncs_in(&net, "h1") == 0
            && net.lock_free("h1", &lock_path("slow"))
            && net.lock_free("h2", &lock_path("slow"))
    }));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "took {:?}",
        sent.elapsed()
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.srv("h1").join("bkc/state/slow.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["exit_code"], 143);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn dead_link_mid_sync_retries_then_fails_cleanly() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let mut spec = slow_push(&net);
    // rsync's own I/O timeout notices the dead link sooner than ssh's keepalive would.
    spec.syncs[0].opts.push("--timeout=3".into());
    spec.retries = 1;
    spec.retry_delay_secs = 1;
    let live = mid_rsync(&net, &spec);
    net.link_down("h2");
    let r = live.finish(60);
    net.link_up("h2");
    assert_eq!(r.code, 1, "{}", r.stderr);
    let ends = r.events("sync-end");
    assert_eq!(ends.len(), 2, "one retry: {:?}", r.events);
    assert!(ends.iter().all(|e| e["class"] == "network"), "{ends:?}");
    assert_eq!(r.events("retry").len(), 1);
    assert!(
        r.end()["message"]
            .as_str()
            .unwrap()
            .contains("network error"),
        "{:?}",
        r.end()
    );
    assert!(net.lock_free("h1", &lock_path("slow")));
    // The far side's lock goes with its session: sshd drops it after ClientAliveInterval.
    assert!(
        Net::eventually(10.0, || net.lock_free("h2", &lock_path("slow"))),
        "remote lock still held"
    );
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn blocks_on_timeout_names_the_holder() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    // Job `a` on h1 holds its lock for a while (a slow before hook).
    let mut a = net.spec("a", "h1");
    a.locks.push(lock("h1", "a", LockMode::Exclusive, "a"));
    a.hooks
        .push(hook(HookWhen::Before, "h1", "sleep 7", OnFailure::Break));
    let mut live = Live::new(net.spawn(net.runner(&a, &[])));
    live.wait_event("locked", 10);

    for host in ["h1", "h2"] {
        // Job `b` blocks on `a`: locally on h1 through flock(2), from h2 through ssh and flock(1).
        let mut b = net.spec("b", host);
        let mut shared = lock("h1", "a", LockMode::Shared, "a");
        shared.timeout_secs = 2;
        b.locks.push(shared);
        b.locks.push(lock(host, "b", LockMode::Exclusive, "b"));
        b.locks.sort_by(|x, y| x.at.cmp(&y.at));
        let r = net.run(&b, &[], &[]);
        assert_eq!(r.code, 3, "{host}: {}", r.stderr);
        let msg = r.end()["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("timed out") && msg.contains("job a on host h1"),
            "{host}: {msg}"
        );
        assert!(
            msg.contains(&format!("pid {}", live.pid())),
            "{host}: {msg}"
        );
        assert!(!r.events("lock-wait").is_empty());
        assert!(
            r.events("lock-wait")[0]["waiting_for"]
                .as_str()
                .unwrap()
                .starts_with("a (")
        );
        assert!(net.lock_free(host, &lock_path("b")));
    }
    let ra = live.finish(10);
    assert_eq!(ra.code, 0, "{}", ra.stderr);

    // Once `a` is gone, `b` starts at once.
    let mut b = net.spec("b", "h1");
    b.locks.push(lock("h1", "a", LockMode::Shared, "a"));
    let r = net.run(&b, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn seed_style_lock_files_and_waits() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    let dead = 2_147_483_000u32;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string();
    let wf = |host: &str, path: &str, timeout: u64| WaitFile {
        at: at(host, path),
        wait_secs: 1,
        timeout_secs: timeout,
    };

    // Stale: the seed's "host pid" format naming this host and a dead pid; and our JSON format on
    // another host naming the runner's host and a dead pid.
    write(&net.srv("h1").join("seed/busy"), &format!("h1 {dead}\n"));
    write(
        &net.srv("h2").join("seed/busy"),
        &format!(
            "{{\"job\":\"x\",\"host\":\"h1\",\"pid\":{dead},\"boot_id\":\"{boot}\",\"start\":\"t\"}}\n"
        ),
    );
    let mut s = net.spec("w", "h1");
    s.wait_files.push(wf("h1", "/srv/seed/busy", 5));
    s.wait_files.push(wf("h2", "/srv/seed/busy", 5));
    let r = net.run(&s, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events("warning").len(), 2, "{:?}", r.events);
    assert!(!net.srv("h1").join("seed/busy").exists() && !net.srv("h2").join("seed/busy").exists());

    // Live holder elsewhere: wait until it is gone; inotify wakes the runner at once.
    write(&net.srv("h1").join("seed/busy"), "elsewhere 1\n");
    let mut live = Live::new(net.spawn(net.runner(&s, &[])));
    let waiting = live.wait_event("lock-wait", 10);
    assert_eq!(waiting["file"], "h1:/srv/seed/busy", "{:?}", live.seen);
    std::fs::remove_file(net.srv("h1").join("seed/busy")).unwrap();
    let r = live.finish(10);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.events("lock-wait").is_empty() && !r.events("wait-end").is_empty(),
        "{:?}",
        r.events
    );

    // ... or time out, naming it.
    write(&net.srv("h2").join("seed/busy"), "elsewhere 1\n");
    let mut t = net.spec("w", "h1");
    t.wait_files.push(wf("h2", "/srv/seed/busy", 1));
    let r = net.run(&t, &[], &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.end()["message"].as_str().unwrap().contains("elsewhere 1"),
        "{:?}",
        r.end()
    );

    // lock-file: created while the job runs, removed after; an existing live one fails the run.
    let mut l = net.spec("l", "h1");
    l.lock_files.push(at("h1", "/srv/seed/l.lock"));
    l.lock_files.push(at("h2", "/srv/seed/l.lock"));
    l.hooks.push(hook(
        HookWhen::Before,
        "h1",
        "cat /srv/seed/l.lock > /srv/seen",
        OnFailure::Break,
    ));
    let r = net.run(&l, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(net.srv("h1").join("seen"))
            .unwrap()
            .contains("\"job\":\"l\"")
    );
    assert!(
        !net.srv("h1").join("seed/l.lock").exists() && !net.srv("h2").join("seed/l.lock").exists()
    );

    write(&net.srv("h2").join("seed/l.lock"), "otherbox 77\n");
    let r = net.run(&l, &[], &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.end()["message"]
            .as_str()
            .unwrap()
            .contains("held by otherbox 77"),
        "{:?}",
        r.end()
    );
    assert!(
        !net.srv("h1").join("seed/l.lock").exists(),
        "our other lock file is cleaned up"
    );
    assert_eq!(
        std::fs::read_to_string(net.srv("h2").join("seed/l.lock")).unwrap(),
        "otherbox 77\n"
    );

    // A stale one (this host, dead pid) is replaced.
    write(&net.srv("h2").join("seed/l.lock"), &format!("h1 {dead}\n"));
    let r = net.run(&l, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!net.srv("h2").join("seed/l.lock").exists());
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn sigint_stops_a_hook_then_after_hooks_run() {
    let _serial = shared();
    let Some(net) = Net::new(1) else { return };
    let mut spec = net.spec("int", "h1");
    spec.locks
        .push(lock("h1", "int", LockMode::Exclusive, "int"));
    spec.hooks.push(hook(
        HookWhen::Before,
        "h1",
        "touch /srv/hook-started; sleep 30; touch /srv/not-reached",
        OnFailure::Break,
    ));
    spec.hooks.push(hook(
        HookWhen::After,
        "h1",
        "echo $BKC_RESULT $BKC_EXIT_CODE > /srv/after",
        OnFailure::Ignore,
    ));
    let mut live = Live::new(net.spawn(net.runner(&spec, &[])));
    live.wait_event("locked", 10);
    // The hook says when it runs: the runner has no event for a hook's start.
    assert!(
        Net::eventually(10.0, || net.srv("h1").join("hook-started").exists()),
        "the before hook did not start: {:?}",
        live.seen
    );
    signal(live.pid(), libc::SIGINT);
    let r = live.finish(10);
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(net.srv("h1").join("after")).unwrap(),
        "interrupted 130\n"
    );
    assert!(!net.srv("h1").join("not-reached").exists());
    assert!(net.lock_free("h1", &lock_path("int")));
}

#[test]
#[ignore = "needs root, sshd and rsync"]
fn lock_files_and_wait_files_in_a_circle_do_not_deadlock() {
    let _serial = shared();
    let Some(net) = Net::new(2) else { return };
    // x creates lock file A and waits while B exists; y creates B and waits while A exists. Both
    // files live on h2, so every step is an SSH round trip and the two runners, started together,
    // reach each step at about the same time.
    let trace = net.dir.join("trace");
    let t = trace.display().to_string();
    let job = |name: &str, mine: &str, theirs: &str| {
        let mut s = net.spec(name, "h1");
        s.lock_files.push(at("h2", &format!("/srv/seed/{mine}")));
        s.wait_files.push(WaitFile {
            at: at("h2", &format!("/srv/seed/{theirs}")),
            wait_secs: 1,
            timeout_secs: 20,
        });
        s.hooks.push(hook(
            HookWhen::Before,
            "h1",
            &format!("echo {name} enter $(date +%s%N) >> {t}; sleep 0.2"),
            OnFailure::Break,
        ));
        s.hooks.push(hook(
            HookWhen::After,
            "h1",
            &format!("echo {name} exit $(date +%s%N) >> {t}"),
            OnFailure::Break,
        ));
        s
    };
    let (x, y) = (job("x", "A", "B"), job("y", "B", "A"));
    let rounds = 4;
    let mut retries = 0;
    for round in 0..rounds {
        let (cx, cy) = (net.runner(&x, &[]), net.runner(&y, &[]));
        let (rx, ry) = (net.spawn(cx), net.spawn(cy));
        let (rx, ry) = (collect(rx), collect(ry));
        assert_eq!(
            (rx.code, ry.code),
            (0, 0),
            "round {round}: {}\n{}",
            rx.stderr,
            ry.stderr
        );
        retries += [&rx, &ry]
            .iter()
            .map(|r| r.stderr.matches("trying again").count())
            .sum::<usize>();
    }
    eprintln!("{rounds} rounds, {retries} collisions resolved by trying again");
    // Started together, the two meet at every step (in practice every round collides), so a
    // run without one never tried the back-off this test is about.
    assert!(
        retries > 0,
        "in {rounds} rounds no runner backed off: the collision was never made"
    );
    let ev = trace_events(&trace);
    assert_eq!(ev.len(), 4 * rounds);
    for pair in ev.chunks(4) {
        assert_eq!(
            [&pair[0].2, &pair[1].2, &pair[2].2, &pair[3].2],
            ["enter", "exit", "enter", "exit"],
            "{pair:?}"
        );
        assert_eq!(pair[0].1, pair[1].1, "{pair:?}");
        assert_eq!(pair[2].1, pair[3].1, "{pair:?}");
        assert_ne!(pair[0].1, pair[2].1, "{pair:?}");
    }
    assert!(
        !net.srv("h2").join("seed/A").exists() && !net.srv("h2").join("seed/B").exists(),
        "both lock files removed"
    );
}

/// The lines `job enter|exit nanoseconds` of a trace file, as (nanoseconds, job, what), in order.
fn trace_events(trace: &std::path::Path) -> Vec<(u128, String, String)> {
    let text = std::fs::read_to_string(trace).unwrap();
    let mut ev: Vec<(u128, String, String)> = text
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let (job, what, ns) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (ns.parse().unwrap(), job.to_string(), what.to_string())
        })
        .collect();
    ev.sort();
    ev
}
