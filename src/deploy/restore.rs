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
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.strip_prefix("bkc-run: ").unwrap_or(l))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::transport::Local;

    /// A job whose "runner" is a script printing `answer` on stdout and `said` on stderr, on
    /// a local stand-in host.
    fn fake(name: &str, answer: &str, said: &str) -> (Local, crate::topology::Topology, String) {
        let dir = std::env::temp_dir().join(format!("bkc-fake-run-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let runner = dir.join("bkc-run");
        let script = format!(
            "#!/bin/sh\nprintf '%s' {}\nprintf '%s' {} >&2\n",
            quote(answer),
            quote(said)
        );
        std::fs::write(&runner, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runner, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kdl = format!(
            "defaults {{\n    runner \"{}\"\n}}\nhost \"h\"\njob \"j\" on=\"h\" {{\n    sync \"/a/\" \"/b/\"\n}}\n",
            runner.display()
        );
        let t = crate::analyze::compile("t.kdl", &kdl).topology.unwrap();
        (Local::new("h", &dir), t, dir.display().to_string())
    }

    fn end(job: &str, result: &str) -> String {
        format!(
            r#"{{"job":"{job}","run":"r","event":"end","bytes_received":0,"bytes_sent":0,"dry_run":false,"exit_code":0,"lock_wait_secs":0.0,"message":null,"result":"{result}","secs":0.1}}"#
        )
    }

    fn follow_answer(name: &str, answer: &str) -> Result<Ended, HostError> {
        let (host, t, dir) = fake(name, answer, "bkc-run: j: said something\n");
        let r = follow(&host, &t.jobs["j"], "restore", &[], |_| Answer::Continue);
        let _ = std::fs::remove_dir_all(dir);
        r
    }

    #[test]
    fn a_runs_end_is_its_result() {
        let change =
            r#"{"job":"j","run":"r","event":"change","itemized":">f+++++++++","path":"a"}"#;
        let r = follow_answer("end", &format!("{change}\n{}\n", end("j", "refused")));
        assert_eq!(r.unwrap().result, RunResult::Refused);
    }

    #[test]
    fn what_the_runner_sends_is_checked() {
        let e = follow_answer("junk", "\x1b]52;c;x\x07 not json\n").unwrap_err();
        assert!(e.message.contains("unexpected output from bkc-run"), "{e}");
        assert!(!e.message.contains('\x1b'), "made printable: {e}");
        let e = follow_answer("other", &format!("{}\n", end("k", "success"))).unwrap_err();
        assert!(e.message.contains("not \"j\""), "{e}");
        let e = follow_answer("none", "").unwrap_err();
        assert!(e.message.contains("ended without a result"), "{e}");
    }

    #[test]
    fn a_listing_must_be_of_this_version_and_job() {
        let listing = |v: u32, job: &str| {
            format!(r#"{{"version":{v},"job":"{job}","host":"h","last_success":null,"syncs":[]}}"#)
        };
        for (name, answer, want) in [
            ("ok", listing(LISTING_VERSION, "j"), None),
            (
                "version",
                listing(LISTING_VERSION + 1, "j"),
                Some("same version"),
            ),
            ("job", listing(LISTING_VERSION, "k"), Some("same version")),
            (
                "missing",
                String::new(),
                Some("no listing for j: j: said something"),
            ),
        ] {
            let lines = if answer.is_empty() {
                answer
            } else {
                answer + "\n"
            };
            let (host, t, dir) = fake(name, &lines, "bkc-run: j: said something\n");
            let r = snapshots(&host, &[&t.jobs["j"]]);
            let _ = std::fs::remove_dir_all(dir);
            match want {
                None => assert_eq!(r.unwrap()[0].job, "j"),
                Some(w) => {
                    let e = r.unwrap_err();
                    assert!(e.message.contains(w), "{name}: {e}");
                }
            }
        }
    }
}
