//! `bkc status` (every job of the fleet: last run, result, next run, lock) and `bkc run`
//! (start a job now, optionally wait for its result).

use std::fmt::Write as _;

use bkc_contract::state::{RunState, state_file};
use serde::Serialize;

use super::transport::{Transport, run};
use super::{HostError, is_running, quote, unframe};
use crate::printable::printable_line;
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
    }
    Ok(all)
}

/// The fleet's status as a table.
pub fn table(rows: &[JobStatus]) -> String {
    let head = ["JOB", "HOST", "LAST RUN", "RESULT", "NEXT RUN", "LOCK"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let result = match (&r.result, &r.service) {
                (_, Some(s)) if is_running(s) => "running".to_string(),
                (Some(res), _) => res.clone(),
                (None, _) => "never run".to_string(),
            };
            [
                r.job.clone(),
                r.host.clone(),
                r.last_run.clone().unwrap_or_else(|| "-".into()),
                result,
                r.next_run.clone().unwrap_or_else(|| "-".into()),
                if r.locked { "held" } else { "free" }.to_string(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
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
    line(head.to_vec());
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
