//! Knowing that backups work: `bkc status --check` against real sshd hosts in network
//! namespaces (tests/harness). Needs root; see tests/harness.

use std::process::{Command, Output};

use crate::common;
use crate::harness::*;

/// A topology of the harness's hosts h1 and h2, each running one daily job into the other,
/// with state files under /srv (each host's own) so the test can write them.
fn topology(net: &Net) -> String {
    let known = std::fs::read_to_string(net.dir.join("known_hosts")).unwrap();
    let mut s = String::from("defaults {\n    state-dir \"/srv/state\"\n}\n");
    for h in &net.hosts {
        // known_hosts has a line per address of a host (IPv4 and IPv6): take its IPv4 one.
        let line = known
            .lines()
            .find(|l| l.split_whitespace().next() == Some(h.addr.as_str()))
            .unwrap();
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
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
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

    // The same fleet as a page: every job, each with its state.
    state(&net, "h1", "one", "success", Some(60));
    state(&net, "h2", "two", "success", Some(3 * 3600));
    let page = net.dir.join("status.html");
    let o = Command::new(common::bin("bkc"))
        .args(["report", "-o"])
        .arg(&page)
        .arg(&file)
        .env("BKC_SSH_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(r#"id="row-one" data-state="fresh""#),
        "{html}"
    );
    assert!(
        html.contains(r#"id="row-two" data-state="stale""#),
        "{html}"
    );

    // A host out of reach: 2, whatever the others say.
    state(&net, "h2", "two", "success", Some(60));
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

// ---------------------------------------------------------------------------------------------
// Pings and notifications of a run, on this machine (no namespaces needed).

/// A spec for `job` on this machine (host `me`), syncing `dir/src/` to `dir/dst/`, state
/// under `dir/state`.
fn local_job(job: &str, dir: &std::path::Path) -> bkc::spec::JobSpec {
    let d = dir.display().to_string();
    let mut spec: bkc::spec::JobSpec = serde_json::from_value(serde_json::json!({
        "version": bkc::spec::SPEC_VERSION, "job": job, "host": "me",
        "state-dir": format!("{d}/state"), "metrics-dir": null,
        "known-hosts": "/dev/null", "identity": null, "hosts": {}, "every": null,
        "timeout-secs": null, "nice": null, "io-class": null, "retries": 0,
        "retry-delay-secs": 1, "locks": [], "lock-files": [], "wait-files": [], "hooks": [],
        "syncs": [],
    }))
    .unwrap();
    spec.syncs.push(sync(
        at("me", &format!("{d}/src/")),
        at("me", &format!("{d}/dst/")),
    ));
    spec
}

fn run_local(spec: &bkc::spec::JobSpec, dir: &std::path::Path, args: &[&str]) -> Ran {
    let p = dir.join(format!("{}.json", spec.job));
    std::fs::write(&p, spec.to_json()).unwrap();
    let out = Command::new(runner())
        .arg(&p)
        .args(args)
        .env_remove("BKC_RUN_NOW")
        .env_remove("INVOCATION_ID")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    parse(out)
}

/// One request the ping server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: String,
}

/// An HTTP server on loopback that answers 200 to everything and records what it got. It
/// stops by itself after a minute.
struct PingServer {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl PingServer {
    fn start() -> PingServer {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/5f0a3c3e-uuid", l.local_addr().unwrap());
        l.set_nonblocking(true).unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::time::Instant::now() < end {
                let Ok((s, _)) = l.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut words = line.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                sink.lock().unwrap().push(Request {
                    method: method.into(),
                    path: path.into(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let _ = r.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
                );
            }
        });
        PingServer { url, got }
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

#[test]
#[ignore = "needs curl and rsync"]
fn pings_arrive_start_then_success_or_fail() {
    if !common::require_tool("curl") || !common::require_tool("rsync") {
        return;
    }
    let dir = common::scratch("monitor", "ping");
    write(&dir.join("src/song.flac"), "la la la");
    let server = PingServer::start();
    let mut spec = local_job("pinged", &dir);
    spec.ping = Some(server.url.clone());

    let ran = run_local(&spec, &dir, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let got = server.take();
    let path = server
        .url
        .split_once("/5f0a")
        .map(|(_, p)| format!("/5f0a{p}"))
        .unwrap();
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("POST".to_string(), format!("{path}/start")),
            ("POST".to_string(), path.clone())
        ]
    );

    // A sync that fails: /fail, with the run's last lines.
    spec.syncs[0].source.path = format!("{}/missing/", dir.display());
    let ran = run_local(&spec, &dir, &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let got = server.take();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].path, format!("{path}/start"));
    assert_eq!(got[1].path, format!("{path}/fail"));
    assert!(
        got[1].body.contains("rsync exit code 23") && got[1].body.contains("bkc-run: pinged"),
        "{got:?}"
    );
}

#[test]
#[ignore = "needs curl and rsync"]
fn an_unreachable_ping_url_never_fails_the_backup() {
    if !common::require_tool("curl") || !common::require_tool("rsync") {
        return;
    }
    let dir = common::scratch("monitor", "noping");
    write(&dir.join("src/f"), "x");
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = local_job("unpinged", &dir);
    spec.ping = Some(format!("http://127.0.0.1:{port}/uuid"));
    let ran = run_local(&spec, &dir, &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.end()["result"], "success");
    let warnings = ran.events("warning");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("/uuid/start"),
        "{warnings:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("dst/f")).unwrap(),
        "x",
        "the data went across all the same"
    );
}

/// A notify command that writes its BKC_ environment to `dir/<event>.env`.
fn recorder(dir: &std::path::Path, on: &[bkc::spec::NotifyEvent]) -> bkc::spec::Notify {
    bkc::spec::Notify {
        on: on.to_vec(),
        command: bkc::spec::Command::Shell(format!(
            "env | grep ^BKC_ | sort > {}/\"$BKC_EVENT\".env",
            dir.display()
        )),
    }
}

fn env_of(dir: &std::path::Path, event: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{event}.env"))).unwrap_or_default()
}

#[test]
#[ignore = "needs rsync"]
fn notify_tells_failure_then_recovery() {
    use bkc::spec::NotifyEvent::*;
    if !common::require_tool("rsync") {
        return;
    }
    let dir = common::scratch("monitor", "notify");
    write(&dir.join("src/f"), "x");
    let mut spec = local_job("told", &dir);
    spec.notify = vec![
        recorder(&dir, &[Failure]),
        recorder(&dir, &[Recovery, Success]),
    ];
    let good = spec.syncs[0].source.path.clone();

    // A failed run, then its notification as systemd's OnFailure= starts it.
    spec.syncs[0].source.path = format!("{}/missing/", dir.display());
    assert_eq!(run_local(&spec, &dir, &[]).code, 1);
    let told = run_local(&spec, &dir, &["--notify"]);
    assert_eq!(told.code, 0, "{}", told.stderr);
    let env = env_of(&dir, "failure");
    assert!(env.contains("BKC_EVENT=failure\n"), "{env}");
    assert!(env.contains("BKC_JOB=told\n"), "{env}");
    assert!(env.contains("BKC_RESULT=failed\n"), "{env}");
    assert!(
        env.contains("BKC_MESSAGE=sync ") && env.contains("rsync exit code 23"),
        "{env}"
    );
    assert_eq!(env_of(&dir, "recovery"), "");

    // The next success is a recovery (and a success).
    spec.syncs[0].source.path = good;
    assert_eq!(run_local(&spec, &dir, &[]).code, 0);
    assert_eq!(run_local(&spec, &dir, &["--notify"]).code, 0);
    assert!(env_of(&dir, "recovery").contains("BKC_RESULT=success\n"));
    assert!(env_of(&dir, "success").contains("BKC_EVENT=success\n"));

    // A success after a success is no recovery.
    std::fs::remove_file(dir.join("recovery.env")).unwrap();
    assert_eq!(run_local(&spec, &dir, &[]).code, 0);
    assert_eq!(run_local(&spec, &dir, &["--notify"]).code, 0);
    assert_eq!(env_of(&dir, "recovery"), "");

    // A service that ended without the runner's report (killed): systemd says so.
    let p = dir.join("told.json");
    let out = Command::new(runner())
        .arg(&p)
        .arg("--notify")
        .env("MONITOR_SERVICE_RESULT", "signal")
        .env("MONITOR_EXIT_STATUS", "KILL")
        .env("MONITOR_INVOCATION_ID", "0123456789abcdef")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = env_of(&dir, "failure");
    assert!(env.contains("BKC_RESULT=interrupted\n"), "{env}");
    assert!(
        env.contains("without a report from bkc-run (service result signal, exit status KILL)"),
        "{env}"
    );
}

// ---------------------------------------------------------------------------------------------
// The dead man's switch: a destination notices that its source stopped sending.

#[test]
#[ignore = "needs root, sshd and rsync (namespace hosts)"]
fn a_silent_source_goes_stale_on_its_destination() {
    use bkc::spec::NotifyEvent::*;
    let Some(net) = Net::new(2) else { return };
    let _turn = shared();
    // h1 pushes to h2 and leaves its marker there.
    write(&net.srv("h1").join("data/f"), "x");
    let marker = "/srv/in/.bkc-fresh.pusher";
    let mut spec = net.spec("pusher", "h1");
    spec.syncs
        .push(sync(at("h1", "/srv/data/"), at("h2", "/srv/in/")));
    spec.fresh_markers.push(at("h2", marker));
    let ran = net.run(&spec, &[], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.srv("h2").join("in/.bkc-fresh.pusher")).unwrap(),
    )
    .unwrap();
    assert_eq!(m["job"], "pusher");
    let end: jiff::Timestamp = m["end"].as_str().unwrap().parse().unwrap();

    // h2's freshness check, as bkc builds it, with the notify commands for stale and recovery.
    let fresh = bkc_contract::fresh::FreshSpec {
        version: bkc_contract::fresh::FRESH_VERSION,
        job: "pusher".into(),
        source: "h1".into(),
        host: "h2".into(),
        markers: vec![marker.into()],
        alert_after_secs: 7200,
        state_dir: "/srv/bkc/state".into(),
        notify: vec![recorder(std::path::Path::new("/srv"), &[Stale, Recovery])],
    };
    let file = net.srv("h2").join("fresh.json");
    std::fs::write(&file, fresh.to_json()).unwrap();
    let check = |at: jiff::Timestamp| {
        let out = net
            .cmd("h2", &[runner(), "--fresh", "/srv/fresh.json"])
            .env("BKC_RUN_NOW", at.to_string())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let later = |secs: i64| {
        end.checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    let stale_env = net.srv("h2").join("stale.env");

    // An hour on, the data is fresh.
    assert_eq!(check(later(3600)).0, Some(0));
    assert!(!stale_env.exists());
    // The source stopped: past alert-after (2h), stale, told once.
    let (code, said) = check(later(7260));
    assert_eq!(code, Some(1), "{said}");
    let env = std::fs::read_to_string(&stale_env).unwrap();
    assert!(
        env.contains("BKC_EVENT=stale\n") && env.contains("BKC_JOB=pusher\n"),
        "{env}"
    );
    assert!(env.contains("BKC_MESSAGE=no data from h1 since"), "{env}");
    std::fs::remove_file(&stale_env).unwrap();
    assert_eq!(check(later(9000)).0, Some(1));
    assert!(
        !stale_env.exists(),
        "stale is told once, not at every check"
    );

    // The source sends again: a recovery.
    let ran = net.run(&spec, &[], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (code, said) = check(jiff::Timestamp::now());
    assert_eq!(code, Some(0), "{said}");
    let env = std::fs::read_to_string(net.srv("h2").join("recovery.env")).unwrap();
    assert!(env.contains("BKC_EVENT=recovery\n"), "{env}");
}

// ---------------------------------------------------------------------------------------------
// Prometheus rules, checked by Prometheus' own promtool.

fn rules_of(name: &str, text: &str) -> std::path::PathBuf {
    let dir = common::scratch("monitor", &format!("prom-{name}"));
    let file = dir.join(format!("{name}.kdl"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(common::bin("bkc"))
        .args(["build", "--emit", "prometheus", "-o"])
        .arg(&dir)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
#[ignore = "needs promtool (prometheus)"]
fn promtool_accepts_the_rules_of_every_example() {
    if !common::require_tool("promtool") {
        return;
    }
    for (name, text) in common::examples() {
        let dir = rules_of(&name, &text);
        promtool_check_rules(&dir.join("bkc.rules.yml"), &name);
    }
}

/// `promtool check rules FILE` must accept it; `what` names it in the failure.
fn promtool_check_rules(file: &std::path::Path, what: &str) {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rules docs/MONITORING.md shows as examples of one's own are rules promtool accepts.
#[test]
#[ignore = "needs promtool (prometheus)"]
fn promtool_accepts_the_rules_the_docs_show() {
    if !common::require_tool("promtool") {
        return;
    }
    let doc = std::fs::read_to_string("docs/MONITORING.md").unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(!blocks.is_empty(), "no yaml block in docs/MONITORING.md");
    let dir = common::scratch("monitor", "doc-rules");
    for (i, block) in blocks.iter().enumerate() {
        let file = dir.join(format!("doc-{i}.yml"));
        std::fs::write(&file, block).unwrap();
        promtool_check_rules(&file, &format!("block {i}"));
    }
}

/// The seed chain's rules fire as they should on made-up series: stale past alert-after (and
/// not before), a failed run at once, a lock wait near its timeout.
#[test]
#[ignore = "needs promtool (prometheus)"]
fn the_rules_fire_when_they_should() {
    if !common::require_tool("promtool") {
        return;
    }
    let (_, text) = common::examples()
        .into_iter()
        .find(|(n, _)| n == "seed-chain")
        .unwrap();
    let dir = rules_of("seed-chain", &text);
    // desktop-to-a: alert-after 2d 1h 15min (177300 s); its lock timeout is 12h.
    let test = r#"rule_files:
  - bkc.rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'bkc_last_success_timestamp_seconds{exported_job="desktop-to-a"}'
        values: '0x4000'
      - series: 'bkc_last_exit_code{exported_job="desktop-to-a"}'
        values: '0x100 1x100'
      - series: 'bkc_lock_wait_seconds{exported_job="desktop-to-a"}'
        values: '30000x10 40000x10'
    alert_rule_test:
      - eval_time: 49h
        alertname: BkcJobStale
        exp_alerts: []
      - eval_time: 50h
        alertname: BkcJobStale
        exp_alerts:
          - exp_labels: {severity: critical, bkc_job: desktop-to-a, bkc_host: desktop}
            exp_annotations:
              summary: bkc job desktop-to-a on desktop is stale
              description: "The last success of desktop-to-a was 2d 2h 0m 0s ago; it alerts after 2d 1h 15min (alert-after)."
      - eval_time: 90m
        alertname: BkcJobFailed
        exp_alerts: []
      - eval_time: 150m
        alertname: BkcJobFailed
        exp_alerts:
          - exp_labels: {severity: warning, bkc_job: desktop-to-a, bkc_host: desktop}
            exp_annotations:
              summary: the last run of bkc job desktop-to-a on desktop failed
              description: "It exited with 1 (docs/RUNNER.md lists the codes); `journalctl -u bkc-desktop-to-a EVENT=error` says why."
      - eval_time: 5m
        alertname: BkcLockWaitNearTimeout
        exp_alerts: []
      - eval_time: 15m
        alertname: BkcLockWaitNearTimeout
        exp_alerts:
          - exp_labels: {severity: warning, bkc_job: desktop-to-a, bkc_host: desktop}
            exp_annotations:
              summary: bkc job desktop-to-a on desktop waited long for its locks
              description: "The last run waited 11h 6m 40s for locks; it gives up after 12h."
"#;
    std::fs::write(dir.join("test.yml"), test).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(dir.join("test.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
