//! `bkc status` (every job of the fleet: last run, result, next run, lock) and `bkc run`
//! (start a job now, optionally wait for its result).

use std::fmt::Write as _;

use std::collections::BTreeMap;

use bkc_contract::event::{Event, EventLine};
use bkc_contract::state::{RunState, VerifyState, state_file};
use serde::Serialize;

use super::transport::{Transport, run};
use super::{HostError, is_running, quote, unframe};
use crate::printable::printable_line;
use crate::schedule::format_duration;
use crate::topology::Job;
use bkc_contract::names::service_unit;

/// One job's line in `bkc status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub host: String,
    /// When the last run ended (from the runner's state file).
    pub last_run: Option<String>,
    pub result: Option<String>,
    pub exit_code: Option<i64>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The timer's next elapse, as systemd says it.
    pub next_run: Option<String>,
    /// The service's `ActiveState`: `activating` while a backup runs (see [`is_running`]).
    pub service: Option<String>,
    /// Someone holds the job's own lock now.
    pub locked: bool,
    /// When the last successful run ended.
    pub last_success: Option<String>,
    /// Seconds from the last success to now (as this machine's clock says).
    pub age_secs: Option<u64>,
    /// The job's `alert-after` (as written or derived); None for a job started only by hand.
    pub alert_after_secs: Option<u64>,
    /// The age is past `alert-after`, or the job never succeeded.
    pub stale: bool,
    /// Bytes sent and received by the last run.
    pub bytes: Option<u64>,
    /// Seconds the last run waited for locks.
    pub lock_wait_secs: Option<f64>,
    /// Seconds the last run waited for one of its host's `max-parallel` slots.
    pub slot_wait_secs: Option<f64>,
    /// While the running service waits for a `max-parallel` slot: since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_since: Option<String>,
    /// Snapshots the last run completed.
    pub snapshots: Vec<String>,
    /// The last recorded verify (`bkc-verify@<job>`); for a job with `verify` that has none
    /// yet, one without a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStatus>,
}

/// How the last recorded verify of a job went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyStatus {
    /// When it ended; None when the job has not been verified yet.
    pub end: Option<String>,
    pub result: Option<String>,
    pub checksum: bool,
    pub corrupted: u64,
    pub missing: u64,
    pub changed: u64,
    pub reason: Option<String>,
    /// When the last verify that found nothing wrong ended.
    pub last_success: Option<String>,
}

impl VerifyStatus {
    fn of(v: VerifyState) -> VerifyStatus {
        let shown = |t: String| printable_line(&t).into_owned();
        VerifyStatus {
            end: v.end.or(v.start).map(shown),
            result: v.result.map(|r| r.to_string()),
            checksum: v.checksum,
            corrupted: v.corrupted,
            missing: v.missing,
            changed: v.changed,
            reason: v.reason.map(shown),
            last_success: v.last_success.map(shown),
        }
    }

    /// The verify found something corrupted or missing, or could not compare.
    pub fn failed(&self) -> bool {
        self.result
            .as_deref()
            .is_some_and(|r| r != "success" && r != "skipped")
    }

    /// The table's cell: "ok 2026-…", "failed 2026-…: 1 corrupted, 0 missing", "never".
    pub fn cell(&self) -> String {
        match (&self.result, &self.end) {
            (Some(r), end) => {
                let when = end.as_deref().unwrap_or("?");
                if r == "success" {
                    format!("ok {when}")
                } else if r == "failed" {
                    format!(
                        "FAILED {when}: {} corrupted, {} missing",
                        self.corrupted, self.missing
                    )
                } else {
                    format!("{} {when}", r.to_uppercase())
                }
            }
            (None, _) => "never".to_string(),
        }
    }
}

/// An age as people say it, to the two largest units: "3d 4h", "2h 5min", "40s".
pub fn rounded(secs: u64) -> String {
    let unit = match secs {
        0..3600 => 1,
        3600..86_400 => 60,
        _ => 3600,
    };
    format_duration((secs / unit).max(1) * unit)
}

/// Why `bkc status --check` is not content with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The last success is older than `alert-after`, or there is none.
    Stale,
    /// The last run ended with a result other than success or skipped.
    Failed,
    /// The last recorded verify found corrupted or missing files, or could not compare.
    VerifyFailed,
}

impl JobStatus {
    /// Fill in the age and whether the job is stale at `now`, given its `alert-after`.
    pub fn judge(&mut self, alert_after_secs: Option<u64>, now: jiff::Timestamp) {
        self.alert_after_secs = alert_after_secs;
        self.age_secs = self
            .last_success
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| u64::try_from(now.as_second() - t.as_second()).unwrap_or(0));
        self.stale = match (alert_after_secs, self.age_secs) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(limit), Some(age)) => age > limit,
        };
    }

    /// What `--check` finds wrong with the job, in the order it says them.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.stale {
            p.push(Problem::Stale);
        }
        if self
            .result
            .as_deref()
            .is_some_and(|r| r != "success" && r != "skipped")
        {
            p.push(Problem::Failed);
        }
        if self.verify.as_ref().is_some_and(VerifyStatus::failed) {
            p.push(Problem::VerifyFailed);
        }
        p
    }

    /// One line for `--check` about `problem`.
    pub fn problem_line(&self, problem: Problem) -> String {
        match problem {
            Problem::Stale => {
                let limit = self.alert_after_secs.map_or_else(String::new, |l| {
                    format!(", alert after {}", format_duration(l))
                });
                match self.age_secs {
                    Some(age) => format!(
                        "stale: {} on {}: last success {} ago{limit}",
                        self.job,
                        self.host,
                        rounded(age)
                    ),
                    None => format!(
                        "stale: {} on {}: never succeeded{limit}",
                        self.job, self.host
                    ),
                }
            }
            Problem::Failed => format!(
                "failed: {} on {}: last run {}{}",
                self.job,
                self.host,
                self.result.as_deref().unwrap_or("?"),
                self.reason
                    .as_deref()
                    .map_or_else(String::new, |r| format!(": {r}"))
            ),
            Problem::VerifyFailed => {
                let v = self.verify.clone().unwrap_or_default();
                format!(
                    "verify failed: {} on {}: last verify {}{}",
                    self.job,
                    self.host,
                    v.result.as_deref().unwrap_or("?"),
                    v.reason
                        .as_deref()
                        .map_or_else(String::new, |r| format!(": {r}"))
                )
            }
        }
    }
}

/// Where a job keeps its lock on its own host.
fn own_lock(job: &Job) -> Option<&str> {
    job.spec
        .locks
        .iter()
        .find(|l| l.at.host == job.host && l.owner == job.name)
        .map(|l| l.at.path.as_str())
}

const STATUS: &str = r#"
st() {
    echo "job $1"
    if [ -f "$R$2" ]; then echo "F $(wc -c < "$R$2") $1"; cat "$R$2"; fi
    echo "next $1 $(systemctl show -p NextElapseUSecRealtime --value "bkc-$1.timer" 2>/dev/null)"
    echo "service $1 $(systemctl show -p ActiveState --value "bkc-$1.service" 2>/dev/null)"
    if [ -n "$3" ] && [ -e "$R$3" ] && ! flock -n -x "$R$3" true 2>/dev/null; then
        echo "lock $1 held"
    fi
}
"#;

/// The status of `jobs`, all on the host behind `t`, in one round trip.
pub fn host_status(t: &dyn Transport, jobs: &[&Job]) -> Result<Vec<JobStatus>, HostError> {
    let mut script = STATUS.to_string();
    for j in jobs {
        let state = state_file(&j.spec.state_dir, &j.name);
        let _ = writeln!(
            script,
            "st {} {} {}",
            quote(&j.name),
            quote(&state),
            quote(own_lock(j).unwrap_or(""))
        );
    }
    script.push_str("echo end\n");
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    read_status(jobs, &out.stdout).map_err(|e| {
        let why = e.unwrap_or_else(|| format!("cannot read the status: {}", out.stderr.trim()));
        HostError::new(t.host(), why)
    })
}

/// The status of `jobs` from what their host answered to the status script. `Err(None)` when
/// the answer was cut short. Public for the fuzz target that feeds it arbitrary answers.
pub fn read_status(jobs: &[&Job], stdout: &[u8]) -> Result<Vec<JobStatus>, Option<String>> {
    let framed = unframe(stdout).map_err(Some)?;
    if framed.lines.last().map(String::as_str) != Some("end") {
        return Err(None);
    }
    let mut all: Vec<JobStatus> = jobs
        .iter()
        .map(|j| JobStatus {
            job: j.name.clone(),
            host: j.host.clone(),
            verify: j.spec.verify.as_ref().map(|_| VerifyStatus::default()),
            ..JobStatus::default()
        })
        .collect();
    for line in &framed.lines {
        let mut w = line.splitn(3, ' ');
        let (Some(key), Some(job)) = (w.next(), w.next()) else {
            continue;
        };
        let value = w.next().unwrap_or("").trim();
        let Some(s) = all.iter_mut().find(|s| s.job == job) else {
            continue;
        };
        let value =
            (!value.is_empty() && value != "n/a").then(|| printable_line(value).into_owned());
        match key {
            "next" => s.next_run = value,
            "service" => s.service = value,
            "lock" => s.locked = true,
            _ => {}
        }
    }
    for s in &mut all {
        let Some(bytes) = framed.files.get(&s.job) else {
            continue;
        };
        let Ok(state) = serde_json::from_slice::<RunState>(bytes) else {
            s.result = Some("unreadable state file".into());
            continue;
        };
        // The state file is the host's text: made printable for the table.
        let shown = |t: String| printable_line(&t).into_owned();
        s.last_run = state.end.or(state.start).map(shown);
        s.result = state.result.map(|r| r.to_string());
        s.reason = state.reason.map(shown);
        s.exit_code = Some(i64::from(state.exit_code));
        s.last_success = state.last_success.map(shown);
        s.bytes = Some(state.bytes_sent + state.bytes_received);
        s.lock_wait_secs = Some(state.lock_wait_secs);
        s.slot_wait_secs = Some(state.slot_wait_secs);
        // A killed run leaves its mark behind: believed only while the service runs.
        if s.service.as_deref().is_some_and(is_running) {
            s.queued_since = state.queued_since.map(shown);
        }
        s.snapshots = state
            .syncs
            .into_iter()
            .filter_map(|y| y.snapshot)
            .map(shown)
            .collect();
        if let Some(v) = state.verify {
            s.verify = Some(VerifyStatus::of(v));
        }
    }
    Ok(all)
}

/// The fleet's status as a table.
pub fn table(rows: &[JobStatus]) -> String {
    let head = [
        "JOB", "HOST", "LAST RUN", "RESULT", "AGE", "FRESH", "NEXT RUN", "LOCK",
    ];
    let verifies = rows.iter().any(|r| r.verify.is_some());
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let result = match (&r.result, &r.service) {
                (_, Some(s)) if is_running(s) => match &r.queued_since {
                    Some(_) => "queued".to_string(),
                    None => "running".to_string(),
                },
                (Some(res), _) => res.clone(),
                (None, _) => "never run".to_string(),
            };
            [
                r.job.clone(),
                r.host.clone(),
                r.last_run.clone().unwrap_or_else(|| "-".into()),
                result,
                r.age_secs.map_or_else(|| "-".into(), rounded),
                match (r.stale, r.alert_after_secs) {
                    (true, _) => "STALE".to_string(),
                    (false, Some(_)) => "fresh".to_string(),
                    (false, None) => "-".to_string(),
                },
                r.next_run.clone().unwrap_or_else(|| "-".into()),
                if r.locked { "held" } else { "free" }.to_string(),
            ]
        })
        .collect();
    // The verify column only when some job has one, so that other fleets see what they did.
    let head: Vec<&str> = head
        .into_iter()
        .chain(verifies.then_some("VERIFY"))
        .collect();
    let cells: Vec<Vec<String>> = cells
        .into_iter()
        .zip(rows)
        .map(|(c, r)| {
            let verify = r
                .verify
                .as_ref()
                .map_or_else(|| "-".into(), VerifyStatus::cell);
            c.into_iter().chain(verifies.then_some(verify)).collect()
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (w, v) in width.iter_mut().zip(c) {
            *w = (*w).max(v.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |vals: Vec<&str>| {
        let mut l = String::new();
        for (i, v) in vals.iter().enumerate() {
            if i + 1 == vals.len() {
                l.push_str(v);
            } else {
                let _ = write!(l, "{v:<w$}  ", w = width[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.clone());
    for c in &cells {
        line(c.iter().map(String::as_str).collect());
    }
    out
}

/// What `bkc run --wait` saw: the runner's exit code and its journal lines.
#[derive(Debug)]
pub struct Ran {
    pub exit_code: i32,
    pub log: Vec<String>,
}

/// Start `job` now on its host; with `wait`, until it ends.
pub fn start(t: &dyn Transport, job: &str, wait: bool) -> Result<Option<Ran>, HostError> {
    let unit = quote(&service_unit(job));
    let script = if wait {
        format!(
            "systemctl start {unit}\n\
             inv=$(systemctl show -p InvocationID --value {unit})\n\
             code=$(systemctl show -p ExecMainStatus --value {unit})\n\
             [ -n \"$inv\" ] && journalctl -q -o cat _SYSTEMD_INVOCATION_ID=\"$inv\" 2>/dev/null | sed 's/^/log /'\n\
             echo \"exit ${{code:-1}}\"\n"
        )
    } else {
        format!("systemctl start --no-block {unit} && echo started\n")
    };
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut log = Vec::new();
    for line in text.lines() {
        if let Some(l) = line.strip_prefix("log ") {
            log.push(printable_line(l).into_owned());
        } else if let Some(code) = line.strip_prefix("exit ") {
            return Ok(Some(Ran {
                exit_code: code.trim().parse().unwrap_or(1),
                log,
            }));
        } else if line == "started" {
            return Ok(None);
        }
    }
    Err(HostError::new(
        t.host(),
        format!(
            "could not start {}: {}",
            service_unit(job),
            out.stderr.trim()
        ),
    ))
}

/// One past run, from the `end` event the runner sent to the journal.
#[derive(Debug, Clone, Serialize)]
pub struct PastRun {
    /// When the journal received the run's end (RFC 3339).
    pub end: String,
    pub result: String,
    pub secs: f64,
    pub bytes: u64,
    pub message: Option<String>,
}

/// The last `n` runs of each of `jobs` on the host behind `t`, newest first, read from the
/// journal's `EVENT=end` entries (docs/RUNNER.md): one round trip. A host without journalctl,
/// or a job without entries, has none.
pub fn host_runs(
    t: &dyn Transport,
    jobs: &[&Job],
    n: usize,
) -> Result<BTreeMap<String, Vec<PastRun>>, HostError> {
    let mut script = String::new();
    for j in jobs {
        let _ = writeln!(
            script,
            "journalctl -q -u {} EVENT=end -o json -n {n} --no-pager 2>/dev/null | sed 's/^/run /'",
            quote(&format!("bkc-{}.service", j.name))
        );
    }
    script.push_str("echo end\n");
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.lines().last() != Some("end") {
        return Err(HostError::new(
            t.host(),
            format!("cannot read the journal: {}", out.stderr.trim()),
        ));
    }
    let mut runs: BTreeMap<String, Vec<PastRun>> = BTreeMap::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("run ")) {
        if let Some((job, run)) = past_run(line)
            && jobs.iter().any(|j| j.name == job)
        {
            runs.entry(job).or_default().push(run);
        }
    }
    for list in runs.values_mut() {
        list.reverse();
    }
    Ok(runs)
}

/// A journal entry (`journalctl -o json`) of an `end` event: its job and the run. Anything
/// else, or anything that does not parse, is no run.
fn past_run(entry: &str) -> Option<(String, PastRun)> {
    let e: serde_json::Value = serde_json::from_str(entry).ok()?;
    let line: EventLine = serde_json::from_str(e.get("MESSAGE")?.as_str()?).ok()?;
    let Event::End {
        bytes_received,
        bytes_sent,
        message,
        result,
        secs,
        ..
    } = line.event
    else {
        return None;
    };
    let micros: i64 = e.get("__REALTIME_TIMESTAMP")?.as_str()?.parse().ok()?;
    let end = jiff::Timestamp::from_microsecond(micros).ok()?;
    let shown = |t: String| printable_line(&t).into_owned();
    Some((
        line.job,
        PastRun {
            end: end.to_string(),
            result: result.to_string(),
            secs,
            bytes: bytes_sent + bytes_received,
            message: message.map(shown),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_verify_shows_in_the_table_and_in_check() {
        let src = r#"host "a" address="a.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJkCofNOLL62lNiH"; }
host "b" address="b.lan" { host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGPmKn9c+ok429EC"; }
job "checked" on="a" {
    schedule "daily"
    sync "/data/" "b:/srv/data/"
    verify "weekly" checksum=#true
}
job "new" on="a" {
    schedule "daily"
    sync "/etc/" "b:/srv/etc/"
    verify "weekly"
}
job "plain" on="a" {
    schedule "daily"
    sync "/srv/" "b:/srv/a/"
}
"#;
        let t = crate::analyze::compile("t.kdl", src).topology.unwrap();
        let jobs: Vec<&Job> = t.jobs.values().collect();
        let state = r#"{"job":"checked","result":"success","end":"2026-01-01T00:00:00Z","verify":{"result":"failed","end":"2026-01-04T04:00:00Z","checksum":true,"corrupted":1,"missing":2,"changed":5,"reason":"1 corrupted, 2 missing, 5 changed since the copy was made"}}"#;
        let out = format!(
            "job checked\nF {} checked\n{state}job new\njob plain\nend\n",
            state.len()
        );
        let rows = read_status(&jobs, out.as_bytes()).unwrap();
        let checked = rows.iter().find(|r| r.job == "checked").unwrap();
        let v = checked.verify.as_ref().unwrap();
        assert_eq!((v.corrupted, v.missing, v.changed), (1, 2, 5));
        assert_eq!(checked.problems(), vec![Problem::VerifyFailed]);
        assert_eq!(
            checked.problem_line(Problem::VerifyFailed),
            "verify failed: checked on a: last verify failed: 1 corrupted, 2 missing, 5 changed since the copy was made"
        );
        let new = rows.iter().find(|r| r.job == "new").unwrap();
        assert_eq!(new.verify.as_ref().unwrap().cell(), "never");
        assert!(
            rows.iter()
                .find(|r| r.job == "plain")
                .unwrap()
                .verify
                .is_none()
        );
        let text = table(&rows);
        let head = text.lines().next().unwrap();
        assert!(head.ends_with("VERIFY"), "{text}");
        assert!(
            text.contains("FAILED 2026-01-04T04:00:00Z: 1 corrupted, 2 missing"),
            "{text}"
        );
        // A fleet without verifies keeps its table as it was.
        let plain: Vec<JobStatus> = rows.into_iter().filter(|r| r.job == "plain").collect();
        assert!(!table(&plain).contains("VERIFY"));
    }

    #[test]
    fn a_run_waiting_for_a_slot_is_queued_while_its_service_runs() {
        let src = r#"host "a" max-parallel=1
job "waits" on="a" {
    sync "/data/" "/srv/data/"
}
job "died" on="a" {
    sync "/etc/" "/srv/etc/"
}
"#;
        let t = crate::analyze::compile("t.kdl", src).topology.unwrap();
        let jobs: Vec<&Job> = t.jobs.values().collect();
        let state = |job: &str| {
            format!(
                r#"{{"job":"{job}","result":"success","slot_wait_secs":2.5,"queued_since":"2026-01-01T00:00:00Z"}}"#
            )
        };
        let (waits, died) = (state("waits"), state("died"));
        // The killed run of `died` left its mark; its service is no longer running.
        let out = format!(
            "job waits\nF {} waits\n{waits}service waits activating\njob died\nF {} died\n{died}service died failed\nend\n",
            waits.len(),
            died.len()
        );
        let rows = read_status(&jobs, out.as_bytes()).unwrap();
        let row = |job: &str| rows.iter().find(|r| r.job == job).unwrap();
        assert_eq!(
            row("waits").queued_since.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(row("waits").slot_wait_secs, Some(2.5));
        assert_eq!(row("died").queued_since, None);
        let text = table(&rows);
        let line = |job: &str| {
            text.lines()
                .find(|l| l.starts_with(job))
                .unwrap()
                .to_string()
        };
        assert!(line("waits").contains(" queued "), "{text}");
        assert!(line("died").contains(" success "), "{text}");
    }

    #[test]
    fn a_journal_entry_is_a_past_run() {
        let msg = r#"{"job":"a","run":"r","event":"end","bytes_received":1,"bytes_sent":2,"dry_run":false,"exit_code":1,"lock_wait_secs":0.0,"message":"it\u001b broke","result":"failed","secs":3.5}"#;
        let entry = serde_json::json!({"MESSAGE": msg, "__REALTIME_TIMESTAMP": "1767225600000000"});
        let (job, run) = past_run(&entry.to_string()).unwrap();
        assert_eq!(job, "a");
        assert_eq!(run.end, "2026-01-01T00:00:00Z");
        assert_eq!(run.result, "failed");
        assert_eq!(run.bytes, 3);
        assert!(!run.message.unwrap().contains('\u{1b}'));
        let other = serde_json::json!({"MESSAGE": "plain text", "__REALTIME_TIMESTAMP": "1"});
        assert!(past_run(&other.to_string()).is_none());
    }
}
