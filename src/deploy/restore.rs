//! Getting data back (`bkc snapshots`, `bkc restore`, `bkc verify`): each runs `bkc-run` on the
//! job's host, through the transport, with the job's deployed spec; the runner reaches the other
//! hosts with the job's own key and holds the job's locks. What the runner sends back is parsed
//! into its contract type and checked here before anything of it is shown.

use std::io::{BufRead, BufReader, Write};
use std::process::Child;

use bkc_contract::event::{Event, EventLine};
use bkc_contract::snapshots::{JobSnapshots, LISTING_VERSION};
use bkc_contract::state::RunResult;

use super::transport::{Transport, run};
use super::{HostError, quote};
use crate::emit::JOB_DIR;
use crate::printable::printable_line;
use crate::topology::Job;

/// The command line that runs `bkc-run <tool> <spec> <args>` for `job` on its host.
fn runner_line(job: &Job, tool: &str, args: &[String]) -> String {
    let mut words = vec![
        quote(&job.service.runner),
        tool.to_string(),
        quote(&format!("{JOB_DIR}/{}.json", job.name)),
    ];
    words.extend(args.iter().map(|a| quote(a)));
    words.join(" ")
}

/// The snapshot listings of `jobs`, all on the host behind `t`, in one round trip.
pub fn snapshots(t: &dyn Transport, jobs: &[&Job]) -> Result<Vec<JobSnapshots>, HostError> {
    let mut script = String::new();
    for j in jobs {
        script.push_str(&runner_line(j, "snapshots", &[]));
        script.push('\n');
    }
    let out = run(t, &script, b"")
        .map_err(|e| HostError::new(t.host(), format!("cannot start ssh: {e}")))?;
    let mut got: Vec<JobSnapshots> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l: JobSnapshots = serde_json::from_str(line).map_err(|e| {
            HostError::new(
                t.host(),
                format!("unexpected answer from bkc-run snapshots ({e}): {line}"),
            )
        })?;
        if l.version != LISTING_VERSION || !jobs.iter().any(|j| j.name == l.job) {
            return Err(HostError::new(
                t.host(),
                format!(
                    "bkc-run sent a listing of version {} for job {:?}; expected version {LISTING_VERSION} for one of this host's jobs (is its bkc-run the same version as bkc?)",
                    l.version, l.job
                ),
            ));
        }
        got.push(l);
    }
    let missing: Vec<&str> = jobs
        .iter()
        .filter(|j| !got.iter().any(|g| g.job == j.name))
        .map(|j| j.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(HostError::new(
            t.host(),
            format!(
                "no listing for {}: {}",
                missing.join(", "),
                runner_errors(&out.stderr)
            ),
        ));
    }
    Ok(got)
}

/// What the runner said on stderr, one line, for an error message.
fn runner_errors(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        "bkc-run said nothing (is the job applied to its host?)".to_string()
    } else {
        lines.join("; ")
    }
}

/// What a tool's caller does with one event: carry on, or answer a `confirm` event.
pub enum Answer {
    Continue,
    Yes,
    No,
}

/// How a tool's run ended, from its `end` event (its message is on stderr already).
#[derive(Debug)]
pub struct Ended {
    pub result: RunResult,
}

/// Run `bkc-run <tool>` for `job` on the host behind `t` and follow its event lines: `each`
/// sees every event as it comes (and answers a `confirm`), the runner's messages go to stderr
/// as `host: message`. Returns the `end` event's outcome.
pub fn follow(
    t: &dyn Transport,
    job: &Job,
    tool: &str,
    args: &[String],
    mut each: impl FnMut(&Event) -> Answer,
) -> Result<Ended, HostError> {
    let fail = |m: String| HostError::new(t.host(), m);
    let script = format!("exec {}\n", runner_line(job, tool, args));
    let mut child = t
        .start(&script)
        .map_err(|e| fail(format!("cannot start ssh: {e}")))?;
    let host = t.host().to_string();
    let err = child.stderr.take();
    let messages = std::thread::spawn(move || forward_messages(&host, err));
    let ended = read_events(&mut child, &job.name, &mut each);
    // The runner's stdin holds nothing more for it; closing it lets a runner that waits for an
    // answer see the end of input rather than hang.
    drop(child.stdin.take());
    let status = child.wait();
    let said = messages.join().unwrap_or_default();
    match ended {
        Ok(Some(e)) => Ok(e),
        Ok(None) => {
            let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
            Err(fail(format!(
                "bkc-run {tool} ended without a result (exit code {code}){}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            )))
        }
        Err(m) => {
            let _ = child.kill();
            Err(fail(m))
        }
    }
}

/// Copy the runner's stderr to ours, each line as `host: line` and printable; returns the last
/// line, for an error message.
fn forward_messages(host: &str, err: Option<std::process::ChildStderr>) -> String {
    let mut last = String::new();
    let Some(err) = err else { return last };
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        let line = printable_line(&line).into_owned();
        let shown = line.strip_prefix("bkc-run: ").unwrap_or(&line);
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "{host}: {shown}");
        last = shown.to_string();
    }
    last
}

/// Read event lines until `end`; `None` when the output stops before one.
fn read_events(
    child: &mut Child,
    job: &str,
    each: &mut impl FnMut(&Event) -> Answer,
) -> Result<Option<Ended>, String> {
    let Some(out) = child.stdout.take() else {
        return Ok(None);
    };
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| format!("cannot read bkc-run's output: {e}"))?;
        let ev: EventLine = serde_json::from_str(&line)
            .map_err(|e| format!("unexpected output from bkc-run ({e}): {line}"))?;
        if ev.job != job {
            return Err(format!(
                "bkc-run answered for job {:?}, not {job:?}",
                ev.job
            ));
        }
        let answer = each(&ev.event);
        if let Event::End { result, .. } = ev.event {
            return Ok(Some(Ended { result }));
        }
        let word = match answer {
            Answer::Continue => continue,
            Answer::Yes => "yes\n",
            Answer::No => "no\n",
        };
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin
                .write_all(word.as_bytes())
                .and_then(|()| stdin.flush());
        }
    }
    Ok(None)
}
