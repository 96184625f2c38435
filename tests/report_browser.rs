//! `bkc report`'s page in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), loading the page of a fleet with one fresh, one stale and one failed job. The
//! test asserts on the DOM and saves a screenshot (docs/status-page.png with
//! BKC_UPDATE_SCREENSHOT=1, which the README shows). Needs chromium, chromium-driver and
//! graphviz; without them it skips, unless CI=true.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bkc::deploy::status::{JobStatus, PastRun};

use crate::common;
use serde_json::{Value, json};

const TOPOLOGY: &str = r#"
host "desktop" address="desktop.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiHVL3zFL6hLBhJSKvFibnrF4/SbGfY"; }
host "backup_a" address="backup-a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC0IXDHIYGZ8zdZsxNgy4rD/ctoe01"; }
host "backup_b" address="backup-b.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBMXgi/225NxZPeToRXujW1orTcxdIes+J9xWOVdKMce"; }
job "music" on="desktop" {
    schedule "daily"
    sync "/home/alice/Music/" "backup_a:/srv/backup/music/"
}
job "photos" on="desktop" {
    schedule "daily"
    sync "/home/alice/Photos/" "backup_a:/srv/backup/photos/"
}
job "offsite" on="backup_a" {
    every "4d"
    sync "/srv/backup/" "backup_b:/srv/offsite/" {
        snapshot keep-daily=7
    }
}
"#;

/// The fleet's statuses: music fresh, photos stale (last success four days ago), offsite failed.
fn rows(now: jiff::Timestamp) -> (Vec<JobStatus>, BTreeMap<String, Vec<PastRun>>) {
    let ago = |h: i64| {
        now.checked_sub(jiff::SignedDuration::from_hours(h))
            .unwrap()
            .to_string()
    };
    let status = |job: &str, host: &str, result: &str, success_h: i64| JobStatus {
        job: job.into(),
        host: host.into(),
        last_run: Some(ago(2)),
        result: Some(result.into()),
        exit_code: Some(if result == "success" { 0 } else { 1 }),
        reason: (result != "success").then(|| {
            "sync /srv/backup/ -> backup_b:/srv/offsite/ failed: rsync exit code 12".into()
        }),
        next_run: Some("Sun 2026-11-29 00:00:00 UTC".into()),
        last_success: Some(ago(success_h)),
        bytes: Some(123_456_789),
        lock_wait_secs: Some(12.0),
        snapshots: if job == "offsite" {
            vec!["2026-11-20T030000Z".into()]
        } else {
            vec![]
        },
        ..JobStatus::default()
    };
    let mut rows = vec![
        status("music", "desktop", "success", 2),
        status("photos", "desktop", "success", 96),
        status("offsite", "backup_a", "failed", 30),
    ];
    let c = bkc::analyze::compile("fleet.kdl", TOPOLOGY);
    let t = c.topology.expect("the test topology compiles");
    for r in &mut rows {
        let limit = t.jobs[&r.job]
            .freshness
            .as_ref()
            .map(|f| f.alert_after_secs);
        r.judge(limit, now);
    }
    let mut runs = BTreeMap::new();
    runs.insert(
        "offsite".to_string(),
        vec![
            PastRun {
                end: ago(2),
                result: "failed".into(),
                secs: 30.0,
                bytes: 0,
                message: Some("rsync exit code 12".into()),
            },
            PastRun {
                end: ago(30),
                result: "success".into(),
                secs: 3600.0,
                bytes: 1 << 30,
                message: None,
            },
        ],
    );
    (rows, runs)
}

/// A WebDriver session with chromedriver, over plain HTTP/1.1 on loopback.
struct Driver {
    port: u16,
    child: Child,
    session: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Driver {
            port,
            child,
            session: String::new(),
        };
        let end = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,1000"]
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .into();
        d
    }

    /// One request; the `value` of the answer.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // chromedriver answers with a Content-Length (never chunked) and may keep the
        // connection open, so the body is read by its length, not to the end.
        let mut r = std::io::BufReader::new(s);
        let mut len = 0;
        loop {
            let mut h = String::new();
            std::io::BufRead::read_line(&mut r, &mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut json = vec![0; len];
        r.read_exact(&mut json).unwrap();
        let v: Value = serde_json::from_slice(&json)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
        v["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", &self.at("/screenshot"), None);
        base64(v.as_str().unwrap())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| {
            acc | (u32::from(val(*c)) << (18 - 6 * i))
        });
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..=take]);
    }
    out
}

#[test]
#[ignore = "needs chromium, chromium-driver and graphviz"]
fn the_status_page_in_a_real_browser() {
    if !["chromium", "chromedriver", "dot"]
        .iter()
        .all(|t| common::require_tool(t))
    {
        return;
    }
    let now = jiff::Timestamp::now();
    let c = bkc::analyze::compile("fleet.kdl", TOPOLOGY);
    let t = c.topology.expect("the test topology compiles");
    let (rows, runs) = rows(now);
    let page = bkc::report::page(&t, &rows, &runs, &[], now).unwrap();
    // Namespaces name http URLs (xmlns), but nothing points the browser at one.
    for fetch in ["<script", "src=", "href=\"http", "url(", "@import", "<link"] {
        assert!(!page.contains(fetch), "the page has {fetch}");
    }
    let dir = common::scratch("report", "browser");
    let file = dir.join("status.html");
    std::fs::write(&file, &page).unwrap();

    let d = Driver::start();
    d.call(
        "POST",
        &d.at("/url"),
        Some(json!({"url": format!("file://{}", file.display())})),
    );
    // Every job has its row, marked with its state, and its box in the picture.
    let states = d.js(
        "return Array.from(document.querySelectorAll('#jobs tr.job')).map(r => [r.id, r.dataset.state, r.querySelector('td.state').textContent])",
    );
    assert_eq!(
        states,
        json!([
            ["row-offsite", "failed", "failed"],
            ["row-photos", "stale", "stale"],
            ["row-music", "fresh", "fresh"]
        ])
    );
    let boxes = d.js(
        "return ['music','photos','offsite'].map(j => { const g = document.getElementById('job-' + j); return g ? g.getAttribute('class') : null; })",
    );
    assert_eq!(
        boxes,
        json!([
            "node job state-fresh",
            "node job state-stale",
            "node job state-failed"
        ])
    );
    let counts = d.js(
        "return ['failed','stale','fresh'].map(s => document.getElementById('count-' + s).textContent.trim())",
    );
    assert_eq!(counts, json!(["1 failed", "1 stale", "1 fresh"]));
    // The last runs come from the journal; the failure's message is shown.
    let runs = d.js("return document.querySelectorAll('#runs-offsite tr.run').length");
    assert_eq!(runs, json!(2));
    // Self-contained: no script, nothing fetched.
    let outside =
        d.js("return [document.scripts.length, performance.getEntriesByType('resource').length]");
    assert_eq!(outside, json!([0, 0]));
    let shot = d.screenshot();
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    std::fs::write(dir.join("status-page.png"), &shot).unwrap();
    if std::env::var_os("BKC_UPDATE_SCREENSHOT").is_some() {
        std::fs::write("docs/status-page.png", &shot).unwrap();
    }

    // On a phone's width the page itself does not scroll sideways: the tables do, inside.
    d.call(
        "POST",
        &d.at("/window/rect"),
        Some(json!({"width": 390, "height": 844})),
    );
    let fits = d.js("return document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(fits, json!(true));
    std::fs::write(dir.join("status-page-phone.png"), d.screenshot()).unwrap();
}
