//! A host's `max-parallel` slots on a real host (a namespace host of tests/harness), with the
//! files `bkc build` writes: 50 jobs started together never run more than 4 at once, waiters
//! go by priority and then by how long they wait, a runner killed with SIGKILL frees its slot at
//! once, and `queue-timeout` gives up. Needs root.

use std::collections::BTreeSet;
use std::process::Child;

use crate::harness::site::Site;
use crate::harness::{Net, alone, collect, signal};

const SLOTS: usize = 4;

/// `n` local jobs on `box`; each records its entry into a trace from its before hook, then
/// holds its slot until the test creates its gate file, and records its exit from its after
/// hook.
fn jobs(n: usize, priority: impl Fn(usize) -> i32) -> String {
    let mut kdl = String::new();
    for i in 0..n {
        let p = priority(i);
        let priority = if p == 0 {
            String::new()
        } else {
            format!("    priority {p}\n")
        };
        kdl.push_str(&format!(
            r#"job "j{i:02}" on="box" {{
{priority}    hook "before" "echo j{i:02} enter $(date +%s%N) >> /srv/trace; until [ -e /srv/gate/j{i:02} ]; do sleep 0.005; done"
    hook "after" "echo j{i:02} exit $(date +%s%N) >> /srv/trace"
    sync "/srv/src/" "/srv/dst-{i:02}/"
}}
"#
        ));
    }
    kdl
}

/// (time in ns, job, "enter" | "exit"), in time order.
fn trace(site: &Site) -> Vec<(u128, String, String)> {
    let text = std::fs::read_to_string(site.srv("box", "trace")).unwrap_or_default();
    let mut ev: Vec<(u128, String, String)> = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[2].parse().unwrap(), w[0].to_string(), w[1].to_string())
        })
        .collect();
    ev.sort();
    ev
}

fn entered(site: &Site) -> Vec<String> {
    trace(site)
        .into_iter()
        .filter(|e| e.2 == "enter")
        .map(|e| e.1)
        .collect()
}

/// Jobs waiting in the slots' queue now (their files; dead waiters' would count too, and the
/// test has none until it kills one).
fn queued(site: &Site) -> usize {
    std::fs::read_dir(site.srv("box", "bkc/locks/slots/queue"))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn start(site: &Site, job: &str) -> Child {
    let spec = format!("/etc/bkc/jobs/{job}.json");
    site.net.spawn(
        site.net
            .cmd(site.h("box"), &[crate::harness::runner(), &spec]),
    )
}

fn open_gate(site: &Site, job: &str) {
    site.sh_ok("box", &format!("touch /srv/gate/{job}"));
}

#[test]
#[ignore = "needs root, network namespaces and rsync"]
fn fifty_jobs_never_run_more_than_four_at_once_and_go_by_priority() {
    let _serial = alone();
    // j40..j49 go first (priority 10), j30..j39 last (-5), the rest in between.
    let prio = |i: usize| match i {
        40.. => 10,
        30..=39 => -5,
        _ => 0,
    };
    let Some(site) = Site::new_with(&["box"], "    max-parallel 4\n", &jobs(50, prio)) else {
        return;
    };
    site.sh_ok(
        "box",
        "mkdir -p /srv/src /srv/gate && echo data > /srv/src/f",
    );
    let mut children: Vec<(String, Child)> = Vec::new();
    // The first four take the slots, then the others queue in the order they start.
    for i in 0..SLOTS {
        let job = format!("j{i:02}");
        children.push((job.clone(), start(&site, &job)));
    }
    assert!(
        Net::eventually(20.0, || entered(&site).len() == SLOTS),
        "the first four did not enter: {:?}",
        trace(&site)
    );
    for i in SLOTS..50 {
        let job = format!("j{i:02}");
        children.push((job.clone(), start(&site, &job)));
        // Queued one after another, so that their waiting times differ.
        let n = i - SLOTS + 1;
        assert!(
            Net::eventually(20.0, || queued(&site) == n),
            "{job} did not queue: {} queued",
            queued(&site)
        );
    }
    assert_eq!(
        entered(&site).len(),
        SLOTS,
        "a waiter entered while all slots were held"
    );

    // While they wait, their state files and metrics say since when (what `bkc status` shows
    // as queued while the service runs; no systemd here, see status.rs's tests).
    let queued_since = |i: usize| -> Option<String> {
        let text = std::fs::read_to_string(site.srv("box", &format!("bkc/state/j{i:02}.json")));
        let state: serde_json::Value = serde_json::from_str(&text.ok()?).ok()?;
        state["queued_since"].as_str().map(str::to_string)
    };
    // Each records it right after queueing.
    assert!(
        Net::eventually(10.0, || (SLOTS..50).all(|i| queued_since(i).is_some())),
        "{:?}",
        (SLOTS..50).map(queued_since).collect::<Vec<_>>()
    );

    // Free one slot at a time, the one held longest; once, kill its runner instead.
    let mut killed = None;
    let mut done: BTreeSet<String> = BTreeSet::new();
    while done.len() + killed.iter().count() < 50 {
        let running: Vec<String> = entered(&site)
            .into_iter()
            .filter(|j| !done.contains(j) && killed.as_ref() != Some(j))
            .collect();
        let Some(oldest) = running.first().cloned() else {
            panic!("nothing runs: {:?}", trace(&site));
        };
        let before = entered(&site).len();
        if before == 20 && killed.is_none() {
            let (_, child) = children.iter().find(|(j, _)| *j == oldest).unwrap();
            signal(child.id() as i32, libc::SIGKILL);
            killed = Some(oldest.clone());
        } else {
            open_gate(&site, &oldest);
            done.insert(oldest.clone());
        }
        if before < 50 {
            assert!(
                Net::eventually(20.0, || entered(&site).len() == before + 1),
                "no waiter entered after {oldest} ended ({:?})",
                killed
            );
        }
    }
    let killed = killed.unwrap();
    for (job, child) in children {
        let ran = collect(child);
        if job == killed {
            assert_eq!(ran.code, -1, "{job} was killed");
        } else {
            assert_eq!(ran.code, 0, "{job}: {}", ran.stderr);
        }
    }

    // Never more than four between an entry and its exit, and four most of the time. The
    // killed run wrote no exit: its slot was free at its death, so it counts as gone just
    // before the entry that followed the kill (the 21st).
    let order = entered(&site);
    let mut ev = trace(&site);
    let next = ev.iter().filter(|e| e.2 == "enter").nth(20).unwrap().0;
    ev.push((next - 1, killed.clone(), "exit".into()));
    ev.sort();
    let mut live = 0i32;
    let mut peak = 0i32;
    for (_, _, what) in &ev {
        live += if what == "enter" { 1 } else { -1 };
        peak = peak.max(live);
    }
    assert_eq!(peak, SLOTS as i32, "{ev:?}");

    // The waiters entered by priority, then in the order they began to wait.
    let waiters: Vec<String> = (SLOTS..50).map(|i| format!("j{i:02}")).collect();
    let mut expected: Vec<String> = waiters.clone();
    expected.sort_by_key(|j| {
        let i: usize = j[1..].parse().unwrap();
        (std::cmp::Reverse(prio(i)), i)
    });
    assert_eq!(&order[SLOTS..], &expected[..]);
}

#[test]
#[ignore = "needs root, network namespaces and rsync"]
fn a_queue_timeout_gives_up_and_says_why() {
    let _serial = alone();
    let jobs = format!(
        "{}job \"late\" on=\"box\" {{\n    queue-timeout \"2s\"\n    sync \"/srv/src/\" \"/srv/late/\"\n}}\n",
        jobs(1, |_| 0)
    );
    let Some(site) = Site::new_with(
        &["box"],
        "    max-parallel 1\n    metrics-dir \"/srv/bkc/metrics\"\n",
        &jobs,
    ) else {
        return;
    };
    site.sh_ok(
        "box",
        "mkdir -p /srv/src /srv/gate && echo data > /srv/src/f",
    );
    let holder = start(&site, "j00");
    assert!(Net::eventually(20.0, || entered(&site).len() == 1));
    let late = collect(start(&site, "late"));
    assert_eq!(late.code, 3, "{}", late.stderr);
    let end = late.end();
    assert_eq!(end["result"], "lock-failed");
    let why = end["message"].as_str().unwrap();
    assert!(
        why.contains("timed out after 2s waiting for a slot of this host (1 of 1 in use by job j00 on host box"),
        "{why}"
    );
    let wait = &late.events("lock-wait")[0];
    assert_eq!(
        (&wait["ahead"], &wait["count"]),
        (&0.into(), &1.into()),
        "{wait}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(site.srv("box", "bkc/state/late.json")).unwrap(),
    )
    .unwrap();
    assert!(state["slot_wait_secs"].as_f64().unwrap() >= 2.0, "{state}");
    assert!(state.get("queued_since").is_none(), "{state}");
    let metrics = std::fs::read_to_string(site.srv("box", "bkc/metrics/bkc_late.prom")).unwrap();
    assert!(
        metrics.contains("bkc_slot_wait_seconds{job=\"late\"} 2."),
        "{metrics}"
    );
    assert!(!metrics.contains("bkc_queued_since"), "{metrics}");
    // The slot's holder was never disturbed.
    open_gate(&site, "j00");
    assert_eq!(collect(holder).code, 0);
}
