//! Pings in the healthchecks.io protocol: `<url>/start` when a run begins, `<url>` when it
//! succeeds, `<url>/fail` with the run's last log lines when it fails.
//!
//! Sent with the system `curl` rather than an HTTP crate: the runner stays small and starts in
//! milliseconds without a TLS stack of its own, and curl uses the host's CA certificates and
//! proxy settings as the admin configured them. A ping never changes how a run ends: when curl
//! is missing, the URL cannot be reached or answers with an error, the run gets a `warning`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Ctx, child};

/// Per attempt, and one retry: a dead monitoring server delays a run by at most about 21 s.
const MAX_TIME_SECS: u32 = 10;
const RETRIES: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

impl Ping {
    fn suffix(self) -> &'static str {
        match self {
            Ping::Start => "/start",
            Ping::Success => "",
            Ping::Fail => "/fail",
        }
    }
}

/// curl's arguments for a ping of `url` with `body`. `--data-raw` so a body that begins with
/// `@` is sent as it is, not read as a file name.
pub fn argv(url: &str, kind: Ping, body: &str) -> Vec<String> {
    let mut a: Vec<String> = [
        "--silent",
        "--show-error",
        "--fail",
        "--output",
        "/dev/null",
        "--max-time",
        &MAX_TIME_SECS.to_string(),
        "--retry",
        &RETRIES.to_string(),
        "--retry-delay",
        "1",
        "--retry-all-errors",
        "--data-raw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(body.to_string());
    a.push("--".into());
    a.push(format!("{}{}", url.trim_end_matches('/'), kind.suffix()));
    a
}

/// Send `kind` to the job's ping URL, if it has one. Never fails the run.
pub fn send(ctx: &Ctx, kind: Ping, body: &str) {
    let Some(url) = &ctx.spec.ping else { return };
    if ctx.dry_run {
        return;
    }
    let mut cmd = Command::new("curl");
    cmd.args(argv(url, kind, body));
    let bound = Duration::from_secs(u64::from((MAX_TIME_SECS + 2) * (RETRIES + 1)));
    match child::capture_echo(cmd, Some(Instant::now() + bound), false) {
        Ok((0, _, None)) => {}
        Ok((code, _, _)) => ctx.report.warning(&format!(
            "ping {}{} failed (curl exit code {code}); the run goes on",
            url,
            kind.suffix()
        )),
        Err(e) => ctx.report.warning(&format!(
            "cannot run curl to ping {url}: {e}; the run goes on"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies() {
        let a = argv("https://hc.example/abc/", Ping::Fail, "@etc/passwd");
        assert_eq!(a.last().unwrap(), "https://hc.example/abc/fail");
        let i = a.iter().position(|x| x == "--data-raw").unwrap();
        assert_eq!(a[i + 1], "@etc/passwd");
        assert_eq!(
            argv("http://h/x", Ping::Success, "").last().unwrap(),
            "http://h/x"
        );
    }
}
