//! Knowing that backups work: `bkc status --check` against real sshd hosts in network
//! namespaces (tests/harness). Needs root; see tests/harness.

mod common;
mod harness;

use std::process::{Command, Output};

use harness::*;

/// A topology of the harness's hosts h1 and h2, each running one daily job into the other,
/// with state files under /srv (each host's own) so the test can write them.
fn topology(net: &Net) -> String {
    let known = std::fs::read_to_string(net.dir.join("known_hosts")).unwrap();
    let mut s = String::from("defaults {\n    state-dir \"/srv/state\"\n}\n");
    for (h, line) in net.hosts.iter().zip(known.lines()) {
        let key: Vec<&str> = line.split_whitespace().skip(1).collect();
        s.push_str(&format!(
            "host \"{}\" address=\"{}\" {{\n    host-key \"{}\"\n}}\n",
            h.name,
            h.addr,
            key.join(" ")
        ));
    }
    s.push_str(
        r#"job "one" on="h1" {
    schedule "daily"
    sync "/srv/data/" "h2:/srv/one/"
}
job "two" on="h2" {
    schedule "daily"
    alert-after "2h"
    sync "/srv/data/" "h1:/srv/two/"
}
"#,
    );
    s
}

fn ssh_config(net: &Net) -> std::path::PathBuf {
    let config = net.dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host *\n  ProxyCommand ip netns exec {} nc %h %p\n  IdentityFile {}\n  User root\n  ConnectTimeout 2\n",
            net.ctl,
            net.dir.join("client_key").display()
        ),
    )
    .unwrap();
    config
}

/// A state file for `job` on `host`: its last run ended `ago` seconds ago with `result`, and
/// its last success `success_ago` seconds ago (none if `None`).
fn state(net: &Net, host: &str, job: &str, result: &str, success_ago: Option<i64>) {
    let now = jiff::Timestamp::now();
    let at = |ago: i64| {
        now.checked_sub(jiff::SignedDuration::from_secs(ago))
            .unwrap()
            .to_string()
    };
    let s = serde_json::json!({
        "version": 1, "job": job, "run": "r1", "start": at(70), "end": at(60),
        "result": result, "exit_code": if result == "success" { 0 } else { 1 },
        "reason": if result == "success" { None } else { Some("rsync exit code 23") },
        "last_success": success_ago.map(at),
    });
    write(
        &net.srv(host).join(format!("state/{job}.json")),
        &s.to_string(),
    );
}

fn check(net: &Net, file: &std::path::Path, config: &std::path::Path) -> Output {
    Command::new(common::bin("bkc"))
        .args(["status", "--check"])
        .arg(file)
        .env("BKC_SSH_CONFIG", config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("bkc on {}: {e}", net.dir.display()))
}

fn said(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_check_exit_codes() {
    let Some(net) = Net::new(2) else { return };
    let _turn = shared();
    let file = net.dir.join("t.kdl");
    std::fs::write(&file, topology(&net)).unwrap();
    let config = ssh_config(&net);

    // Both fresh and successful: 0, and nothing printed.
    state(&net, "h1", "one", "success", Some(60));
    state(&net, "h2", "two", "success", Some(600));
    let o = check(&net, &file, &config);
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(o.stdout.is_empty(), "{}", said(&o));

    // `two` has an alert-after of 2h; three hours without success make it stale.
    state(&net, "h2", "two", "success", Some(3 * 3600));
    let o = check(&net, &file, &config);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "stale: two on h2: last success 3h ago, alert after 2h\n"
    );

    // `one` (alert-after derived: 2 × 1d + 1h) failed its last run, but is still fresh.
    state(&net, "h2", "two", "success", Some(60));
    state(&net, "h1", "one", "failed", Some(86_400));
    let o = check(&net, &file, &config);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "failed: one on h1: last run failed: rsync exit code 23\n"
    );

    // Never succeeded: stale.
    state(&net, "h1", "one", "failed", None);
    let o = check(&net, &file, &config);
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with("stale: one on h1: never succeeded, alert after 2d 1h\n"),
        "{}",
        said(&o)
    );

    // A host out of reach: 2, whatever the others say.
    state(&net, "h1", "one", "success", Some(60));
    net.link_down("h2");
    let o = check(&net, &file, &config);
    net.link_up("h2");
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("h2"),
        "{}",
        said(&o)
    );
}
