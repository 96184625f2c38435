//! Notifications: the job's `notify` commands, run on the host where their event is seen.
//!
//! A job's end is told by `bkc-run --notify SPEC`, which systemd starts through the job
//! service's `OnFailure=` and `OnSuccess=` as `bkc-notify@<job>.service`, in the job's sandbox.
//! Letting systemd start it means a runner that was killed, or ran out of memory, or hit
//! systemd's own timeout, still gets its failure told: the runner's state file then does not
//! belong to the service run that ended (its `invocation` differs), and the notification says
//! what systemd saw instead. Staleness is told by the freshness check (`fresh.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bkc_contract::spec::{Command as Cmd, JobSpec, Notify, NotifyEvent};
use bkc_contract::state::{RunResult, RunState, VerifyState};

use crate::child;
use crate::report::{self, say};

/// A notify command that hangs is stopped after this long.
const LIMIT: Duration = Duration::from_secs(300);

/// What systemd tells a unit started by `OnFailure=`/`OnSuccess=` about the unit that ended
/// (systemd 251 and later).
#[derive(Debug, Default)]
pub struct Monitor {
    pub service_result: Option<String>,
    pub exit_status: Option<String>,
    pub invocation: Option<String>,
}

impl Monitor {
    pub fn from_env() -> Monitor {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Monitor {
            service_result: var("MONITOR_SERVICE_RESULT"),
            exit_status: var("MONITOR_EXIT_STATUS"),
            invocation: var("MONITOR_INVOCATION_ID"),
        }
    }
}

/// The events of a run's end, or of a recorded verify's (`bkc-verify@<job>`, whose failure
/// systemd tells through the same unit), with its result and message.
pub fn events_of(state: Option<&RunState>, m: &Monitor) -> (Vec<NotifyEvent>, RunResult, String) {
    if let Some(v) = state.and_then(|s| verify_of(s, m)) {
        let result = v.result.unwrap_or(RunResult::Failed);
        let events = if result.is_failure() {
            vec![NotifyEvent::Failure]
        } else {
            Vec::new()
        };
        let why = v.reason.clone().unwrap_or_else(|| result.to_string());
        return (events, result, format!("verify: {why}"));
    }
    let ours = state.filter(|s| m.invocation.is_none() || s.invocation == m.invocation);
    let Some(s) = ours.filter(|s| s.result.is_some()) else {
        // The service ended without the runner writing its report.
        let result = match m.service_result.as_deref() {
            Some("timeout") => RunResult::Timeout,
            Some("signal" | "core-dump" | "watchdog") => RunResult::Interrupted,
            _ => RunResult::Failed,
        };
        let message = format!(
            "the service ended without a report from bkc-run (service result {}, exit status {})",
            m.service_result.as_deref().unwrap_or("unknown"),
            m.exit_status.as_deref().unwrap_or("unknown")
        );
        return (vec![NotifyEvent::Failure], result, message);
    };
    let result = s.result.unwrap_or(RunResult::Failed);
    let message = s.reason.clone().unwrap_or_else(|| result.to_string());
    let events = match result {
        RunResult::Skipped => Vec::new(),
        RunResult::Success if s.previous_result.is_some_and(RunResult::is_failure) => {
            vec![NotifyEvent::Recovery, NotifyEvent::Success]
        }
        RunResult::Success => vec![NotifyEvent::Success],
        _ => vec![NotifyEvent::Failure],
    };
    (events, result, message)
}

/// The recorded verify the notification is about: the one of the service that ended, or, when
/// systemd does not say which service that was (before 251), the verify when it ended after the
/// last run.
fn verify_of<'s>(s: &'s RunState, m: &Monitor) -> Option<&'s VerifyState> {
    let v = s.verify.as_ref().filter(|v| v.result.is_some())?;
    match &m.invocation {
        Some(inv) => (v.invocation.as_ref() == Some(inv)).then_some(v),
        None => {
            let time = |t: Option<&String>| t.and_then(|t| t.parse::<jiff::Timestamp>().ok());
            let run = time(s.end.as_ref());
            let verify = time(v.end.as_ref());
            (verify.is_some() && (run.is_none() || verify > run)).then_some(v)
        }
    }
}

/// `bkc-run --notify SPEC`: tell the job's notify commands how its last run ended. Exit 1
/// when a command failed, so the notification unit shows as failed.
pub fn main(spec: &JobSpec) -> i32 {
    let path = report::state_path(&spec.state_dir, &spec.job);
    let state = match report::read_state(&path) {
        Ok(s) => s,
        Err(m) => {
            say!("bkc-run: {}: {m}", spec.job);
            None
        }
    };
    let (events, result, message) = events_of(state.as_ref(), &Monitor::from_env());
    let mut ok = true;
    for e in events {
        ok &= run_all(&spec.job, &spec.notify, e, result.as_str(), &message);
    }
    i32::from(!ok)
}

/// Run every command of `notify` that listens for `event`; false when one failed.
pub fn run_all(
    job: &str,
    notify: &[Notify],
    event: NotifyEvent,
    result: &str,
    message: &str,
) -> bool {
    let mut ok = true;
    for n in notify.iter().filter(|n| n.on.contains(&event)) {
        let env = [
            ("BKC_JOB", job),
            ("BKC_EVENT", event.as_str()),
            ("BKC_RESULT", result),
            ("BKC_MESSAGE", message),
        ];
        let shown = crate::hooks::display(&n.command);
        match run_one(&n.command, &env) {
            Ok(()) => say!("bkc-run: {job}: notified {} with `{shown}`", event.as_str()),
            Err(m) => {
                say!(
                    "bkc-run: {job}: notify `{shown}` of {} failed: {m}",
                    event.as_str()
                );
                ok = false;
            }
        }
    }
    ok
}

fn run_one(c: &Cmd, env: &[(&str, &str)]) -> Result<(), String> {
    let mut cmd = match c {
        Cmd::Shell(s) => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(s);
            cmd
        }
        Cmd::Argv(v) => {
            let (prog, args) = v.split_first().ok_or("the command is empty")?;
            let mut cmd = Command::new(prog);
            cmd.args(args);
            cmd
        }
    };
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(child::stderr_stdio());
    let mut r = child::spawn(&mut cmd, true).map_err(|e| format!("cannot start: {e}"))?;
    match r.wait(Some(Instant::now() + LIMIT)) {
        Ok((_, Some(_))) => Err(format!("stopped after {}s", LIMIT.as_secs())),
        Ok((st, None)) if st.success() => Ok(()),
        Ok((st, None)) => Err(format!("exit code {}", child::code(&st))),
        Err(e) => Err(format!("cannot wait: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(result: RunResult, previous: Option<RunResult>, inv: &str) -> RunState {
        RunState {
            result: Some(result),
            previous_result: previous,
            reason: (result != RunResult::Success).then(|| "it broke".to_string()),
            invocation: Some(inv.into()),
            ..Default::default()
        }
    }

    fn monitor(inv: &str, result: &str) -> Monitor {
        Monitor {
            service_result: Some(result.into()),
            exit_status: Some("9".into()),
            invocation: Some(inv.into()),
        }
    }

    #[test]
    fn events_of_a_run() {
        let s = state(RunResult::Failed, Some(RunResult::Success), "a");
        let (e, r, m) = events_of(Some(&s), &monitor("a", "exit-code"));
        assert_eq!(
            (e, r, m.as_str()),
            (vec![NotifyEvent::Failure], RunResult::Failed, "it broke")
        );
        let s = state(RunResult::Success, Some(RunResult::LockFailed), "b");
        let (e, _, _) = events_of(Some(&s), &monitor("b", "success"));
        assert_eq!(e, vec![NotifyEvent::Recovery, NotifyEvent::Success]);
        let s = state(RunResult::Success, Some(RunResult::Success), "c");
        assert_eq!(
            events_of(Some(&s), &Monitor::default()).0,
            vec![NotifyEvent::Success]
        );
        let s = state(RunResult::Skipped, Some(RunResult::Failed), "d");
        assert!(events_of(Some(&s), &Monitor::default()).0.is_empty());
    }

    #[test]
    fn a_failed_verify_is_told_as_a_failure_and_a_run_still_as_itself() {
        let mut s = state(RunResult::Success, None, "run");
        s.end = Some("2026-01-01T00:00:00Z".into());
        s.verify = Some(VerifyState {
            result: Some(RunResult::Failed),
            reason: Some("1 corrupted, 0 missing".into()),
            end: Some("2026-01-02T00:00:00Z".into()),
            invocation: Some("ver".into()),
            ..Default::default()
        });
        let (e, r, m) = events_of(Some(&s), &monitor("ver", "exit-code"));
        assert_eq!(
            (e, r, m.as_str()),
            (
                vec![NotifyEvent::Failure],
                RunResult::Failed,
                "verify: 1 corrupted, 0 missing"
            )
        );
        // The run's own end is told as before.
        assert_eq!(
            events_of(Some(&s), &monitor("run", "success")).0,
            vec![NotifyEvent::Success]
        );
        // Without the invocation, the newer of the two.
        assert_eq!(
            events_of(Some(&s), &Monitor::default()).1,
            RunResult::Failed
        );
        s.end = Some("2026-01-03T00:00:00Z".into());
        assert_eq!(
            events_of(Some(&s), &Monitor::default()).1,
            RunResult::Success
        );
    }

    #[test]
    fn a_run_killed_before_its_report_is_a_failure() {
        let old = state(RunResult::Success, None, "earlier");
        let (e, r, m) = events_of(Some(&old), &monitor("now", "signal"));
        assert_eq!(e, vec![NotifyEvent::Failure]);
        assert_eq!(r, RunResult::Interrupted);
        assert!(
            m.contains("without a report") && m.contains("signal"),
            "{m}"
        );
        assert_eq!(
            events_of(None, &monitor("now", "timeout")).1,
            RunResult::Timeout
        );
    }
}
