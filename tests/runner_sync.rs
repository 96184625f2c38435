//! The runner against real rsync and sshd on namespaced test hosts: data paths, guards, hooks,
//! snapshots, schedules. Needs root; see tests/harness.

mod harness;

use std::os::unix::fs::MetadataExt;

use bkc::spec::{Command as HookCommand, Hook, HookWhen, Interval, LockMode, OnFailure, Retention};
use harness::*;

#[test]
fn seed_chain_desktop_to_a_then_a_to_b() {
    let Some(net) = Net::new(3) else { return };
    // h1 = desktop, h2 = backup_a, h3 = backup_b.
    write(&net.srv("h1").join("home/music/song.flac"), "la la la");
    write(&net.srv("h1").join("home/mail/inbox"), "hello");

    let mut d2a = net.spec("desktop-to-a", "h1");
    d2a.syncs.push(sync(at("h1", "/srv/home/"), at("h2", "/srv/backup/desktop/")));
    own_locks(&mut d2a);
    d2a.locks.push(lock("h2", "a-to-b", LockMode::Shared, "a-to-b"));
    d2a.locks.sort_by(|a, b| a.at.cmp(&b.at));
    let r = net.run(&d2a, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events("locked").len(), 3);
    assert!(r.end()["bytes_sent"].as_u64().unwrap() > 0);

    let mut a2b = net.spec("a-to-b", "h2");
    a2b.syncs.push(sync(at("h2", "/srv/backup/"), at("h3", "/srv/offsite/backup_a/")));
    own_locks(&mut a2b);
    a2b.locks.push(lock("h2", "desktop-to-a", LockMode::Shared, "desktop-to-a"));
    a2b.locks.sort_by(|a, b| a.at.cmp(&b.at));
    let r = net.run(&a2b, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let got = std::fs::read_to_string(net.srv("h3").join("offsite/backup_a/desktop/music/song.flac")).unwrap();
    assert_eq!(got, "la la la");
    // State and metrics on the runner's host; no lock left held anywhere.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.srv("h2").join("bkc/state/a-to-b.json")).unwrap()).unwrap();
    assert_eq!(state["result"], "success");
    assert!(state["last_success"].is_string());
    let prom = std::fs::read_to_string(net.srv("h2").join("bkc/metrics/bkc_a-to-b.prom")).unwrap();
    assert!(prom.contains("bkc_runs_total{job=\"a-to-b\",result=\"success\"} 1"), "{prom}");
    for (h, j) in [("h1", "desktop-to-a"), ("h2", "desktop-to-a"), ("h2", "a-to-b"), ("h3", "a-to-b")] {
        assert!(net.lock_free(h, &lock_path(j)), "{h} {j}");
    }
}
