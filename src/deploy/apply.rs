//! `bkc apply` on one host: one script (apply.sh) stages the new generation and waits for
//! "commit"; the switch (activate.sh) then runs detached on the host. See docs/DEPLOY.md.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use super::plan::{HostPlan, Observed};
use super::transport::Transport;
use super::{Desired, HostError, KEEP_GENERATIONS, quote, running_sh};
use crate::emit::{MANIFEST_PATH, sha256_hex};
use crate::printable::printable_line;
use bkc_contract::names::{
    AUTHORIZED_KEYS_DIR, AUTHORIZED_KEYS_PATTERN, SSHD_DROPIN_PATH, job_of, service_unit,
    started_unit_of,
};
use bkc_contract::serve::SERVE_DIR;

const APPLY: &str = include_str!("apply.sh");
const ACTIVATE: &str = include_str!("activate.sh");

/// The local `bkc-run` to install where a plan says so.
pub struct Runner<'a> {
    pub bytes: &'a [u8],
    /// `uname -m` of the machine it was built for.
    pub arch: &'a str,
}

/// A successful apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    /// Files the generation dropped but the switch left in place, because a backup that may
    /// read them was running.
    pub kept: Vec<Kept>,
    /// What the switch said (warnings).
    pub log: Vec<String>,
}

/// A dropped file left in place for a running backup; the next apply removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub path: String,
    /// The service whose run it is kept for; for a serve file, the file itself, which a
    /// `bkc-run serve` session of its job holds.
    pub service: String,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.service == self.path {
            return write!(
                f,
                "kept {}: a run of its job from another host uses it now; the next apply removes it",
                self.path
            );
        }
        write!(
            f,
            "kept {}: {} is running now; the next apply removes it",
            self.path, self.service
        )
    }
}

/// Whether `path` says who may log in (an authorized keys file or the sshd drop-in).
fn is_access(path: &str) -> bool {
    path == SSHD_DROPIN_PATH || path.starts_with(&format!("{AUTHORIZED_KEYS_DIR}/"))
}

/// The script and the bytes that follow it on stdin.
fn build(
    t: &dyn Transport,
    want: &Desired,
    obs: &Observed,
    plan: &HostPlan,
    runner: Option<&Runner>,
) -> (String, Vec<u8>) {
    let mut tail = String::new();
    let mut payload = Vec::new();
    let mut steps = String::new();
    let removed_started: Vec<&str> = plan
        .remove
        .iter()
        .filter_map(|p| started_unit_of(p))
        .collect();
    if !removed_started.is_empty() {
        let names: Vec<String> = removed_started.iter().map(|u| quote(u)).collect();
        let _ = writeln!(
            steps,
            "systemctl disable --now {} || return 1",
            names.join(" ")
        );
    }
    if let Some(r) = runner.filter(|_| !plan.runner_install.is_empty()) {
        stage_runner(r, plan, &mut tail, &mut payload, &mut steps);
    }
    stage_files(want, obs, plan, &mut tail, &mut payload, &mut steps);
    drop_steps(plan, &mut tail, &mut steps);
    // sshd must accept what it will read before it is told to, and must then read bkc's
    // authorized keys; otherwise the switch fails and everything is put back.
    let dropin = SSHD_DROPIN_PATH.to_string();
    let dropin_touched = plan.remove.contains(&dropin)
        || (want.files.files.contains_key(&dropin)
            && (!obs.files.contains_key(&dropin) || plan.changed.contains(&dropin)));
    if dropin_touched {
        let wanted = u8::from(want.files.files.contains_key(&dropin));
        let _ = writeln!(steps, "sshd_check {wanted} || return 1");
    }
    if let Some(m) = want.files.files.get(MANIFEST_PATH) {
        let _ = writeln!(
            steps,
            "put {} {} {:04o} || return 1",
            quote(&format!("files{MANIFEST_PATH}")),
            quote(MANIFEST_PATH),
            m.mode
        );
    }
    steps.push_str("systemctl daemon-reload || return 1\n");
    if dropin_touched {
        steps.push_str("sshd_reload || return 1\n");
    }
    timer_steps(want, plan, &removed_started, &mut tail, &mut steps);
    steps.push_str(":\n");
    let act = format!(
        "{}\nS=$(cd \"${{0%/*}}\" && pwd) || exit 1\nn=${{S##*/}}\nKEEP={KEEP_GENERATIONS}\nDROPIN={}\nPATTERN={}\n{}steps() {{\n{steps}}}\n{ACTIVATE}",
        t.preamble(),
        quote(SSHD_DROPIN_PATH),
        quote(AUTHORIZED_KEYS_PATTERN),
        running_sh()
    );
    tail.push_str(SWITCH);
    let expect = obs.manifest_sha().unwrap_or_else(|| "-".into());
    let script = format!(
        "EXPECT={}\nACT={}\n{APPLY}\n{tail}",
        quote(&expect),
        quote(&act)
    );
    (script, payload)
}

/// The end of the host's script, once everything is staged: write the switch, say so, wait for
/// bkc's `commit`, and run the switch detached (so a lost link cannot stop it halfway).
const SWITCH: &str = "printf '%s\\n' \"$ACT\" >\"$S/activate.sh\" || die \"cannot write $S/activate.sh\"\n\
say \"ready $n\"\n\
line=$(timeout 30 head -n 1) || line=\n\
if [ \"$line\" != commit ]; then rm -rf \"$S\"; die \"bkc did not confirm the switch (the link was lost?); nothing was changed\"; fi\n\
trap - HUP PIPE TERM\n\
setsid sh \"$S/activate.sh\" activate </dev/null >\"$B/activate.log\" 2>&1 &\n\
wait $!\n\
rc=$?\n\
sed 's/^/log /' \"$B/activate.log\"\n\
rm -rf \"$S\"\n\
[ $rc = 0 ] || die \"the switch to generation $n failed and was rolled back\"\n\
say \"done $n\"\n";

/// Every file of the generation staged (sent and checked by its hash), and put in place by the
/// switch where it is new or changed; the manifest goes last, by `build`.
fn stage_files(
    want: &Desired,
    obs: &Observed,
    plan: &HostPlan,
    tail: &mut String,
    payload: &mut Vec<u8>,
    steps: &mut String,
) {
    for (path, f) in &want.files.files {
        let name = format!("files{path}");
        tail.push_str(&format!(
            "recv {} {} {:04o} {}{}",
            f.bytes.len(),
            sha256_hex(&f.bytes),
            f.mode,
            quote(&name),
            stage_fail(path)
        ));
        payload.extend_from_slice(&f.bytes);
        let _ = writeln!(tail, "keep {}", quote(path));
        let fresh = !obs.files.contains_key(path) || plan.changed.contains(path);
        if fresh && path != MANIFEST_PATH {
            let _ = writeln!(
                steps,
                "put {} {} {:04o} || return 1",
                quote(&name),
                quote(path),
                f.mode
            );
        }
    }
}

/// ` || die "cannot stage WHAT"`, after a staging line.
fn stage_fail(what: &str) -> String {
    format!(" || die {}\n", quote(&format!("cannot stage {what}")))
}

/// The runner's bytes staged once, after a check of the host's architecture, and put at each
/// path the plan installs it.
fn stage_runner(
    r: &Runner,
    plan: &HostPlan,
    tail: &mut String,
    payload: &mut Vec<u8>,
    steps: &mut String,
) {
    let _ = writeln!(
        tail,
        "[ \"$(uname -m)\" = {arch} ] || die \"the host is $(uname -m), the local bkc-run is built for {arch}\"",
        arch = quote(r.arch)
    );
    tail.push_str(&format!(
        "recv {} {} 0755 runner{}",
        r.bytes.len(),
        sha256_hex(r.bytes),
        stage_fail("bkc-run")
    ));
    payload.extend_from_slice(r.bytes);
    for p in &plan.runner_install {
        let _ = writeln!(tail, "keep {}", quote(p));
        let _ = writeln!(steps, "put runner {} 0755 || return 1", quote(p));
    }
}

/// Removing `plan`'s removed files: kept in the staging (for a rollback), dropped by the switch
/// unless something reads them now.
fn drop_steps(plan: &HostPlan, tail: &mut String, steps: &mut String) {
    for path in &plan.remove {
        let _ = writeln!(tail, "keep {}", quote(path));
        // What a run may read stays while it runs: a job's own service and spec while that job
        // runs, a file of no one job (known_hosts) while any job of the host does. Who may log
        // in is no file a run of this host reads.
        let service = match job_of(path) {
            Some(_) if started_unit_of(path).is_some() => String::new(),
            Some(job) => quote(&service_unit(job)),
            // A serve file is in use while a session of its job, run from another host, is.
            None if path.starts_with(SERVE_DIR) => quote(path),
            None if is_access(path) => String::new(),
            None => "$(services)".to_string(),
        };
        let _ = writeln!(steps, "drop {} {service} || return 1", quote(path));
    }
}

/// The timers, path units and watchers of the generation enabled and started (a changed one
/// restarted), and those of both generations named for a rollback.
fn timer_steps(
    want: &Desired,
    plan: &HostPlan,
    removed_started: &[&str],
    tail: &mut String,
    steps: &mut String,
) {
    let timers: Vec<&str> = want
        .files
        .files
        .keys()
        .filter_map(|p| started_unit_of(p))
        .collect();
    let all: Vec<&str> = timers.iter().chain(removed_started).copied().collect();
    for u in &all {
        let _ = writeln!(tail, "timer {}", quote(u));
    }
    if !timers.is_empty() {
        let names: Vec<String> = timers.iter().map(|u| quote(u)).collect();
        let _ = writeln!(
            steps,
            "systemctl enable {} >/dev/null 2>&1 || return 1",
            names.join(" ")
        );
        // A changed schedule takes effect now; restarting a timer or path unit never touches its
        // service. A changed watcher restarts to watch what the new spec says.
        let changed: Vec<String> = plan
            .changed
            .iter()
            .filter_map(|p| started_unit_of(p))
            .map(quote)
            .collect();
        if !changed.is_empty() {
            let _ = writeln!(steps, "systemctl restart {} || return 1", changed.join(" "));
        }
        let _ = writeln!(steps, "systemctl start {} || return 1", names.join(" "));
    }
}

/// What the host's script said, line by line.
#[derive(Default)]
struct Answer {
    /// bkc sent `commit`: the switch may have begun.
    committed: bool,
    error: Option<String>,
    /// The generation the host is on now, once it said so.
    done: Option<u64>,
    log: Vec<String>,
    kept: Vec<Kept>,
}

impl Answer {
    /// One line of the host's: reported, remembered, or answered with the commit.
    fn line(&mut self, line: &str, progress: &(dyn Fn(&str) + Sync), commit: &mpsc::Sender<()>) {
        // Everything below is printed or kept for printing: the host's text, made safe.
        let line = printable_line(line);
        let (key, rest) = line.split_once(' ').unwrap_or((&line, ""));
        match key {
            "progress" => progress(rest),
            "ready" => {
                progress(&format!("staged generation {rest}, switching"));
                self.committed = commit.send(()).is_ok();
            }
            "log" => match rest.strip_prefix("kept ").and_then(|k| k.split_once(' ')) {
                Some((service, path)) => {
                    let k = Kept {
                        path: path.to_string(),
                        service: service.to_string(),
                    };
                    progress(&k.to_string());
                    self.kept.push(k);
                }
                None => {
                    if !rest.starts_with("activated") {
                        progress(rest);
                    }
                    self.log.push(rest.to_string());
                }
            },
            "error" => self.error = Some(rest.to_string()),
            "done" => self.done = rest.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
}

/// Apply `plan` to the host behind `t`, reporting progress lines as they come.
pub fn apply_host(
    t: &dyn Transport,
    want: &Desired,
    obs: &Observed,
    plan: &HostPlan,
    runner: Option<&Runner>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Applied, HostError> {
    let host = t.host();
    if let Some(b) = &plan.blocked {
        return Err(HostError::new(host, b.clone()));
    }
    let (script, payload) = build(t, want, obs, plan, runner);
    let mut child = t
        .start(&script)
        .map_err(|e| HostError::new(host, format!("cannot start ssh: {e}")))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (commit_tx, commit_rx) = mpsc::channel::<()>();
    let mut answer = Answer::default();
    let stderr_text = std::thread::scope(|s| {
        s.spawn(move || {
            let Some(mut w) = stdin else { return };
            if w.write_all(&payload).and_then(|()| w.flush()).is_err() {
                return;
            }
            // The commit goes only after the host said it staged everything.
            if commit_rx.recv().is_ok() {
                let _ = w.write_all(b"commit\n");
                let _ = w.flush();
            }
        });
        let errs = s.spawn(move || {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut text);
            }
            text
        });
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                answer.line(&line, progress, &commit_tx);
            }
        }
        drop(commit_tx);
        errs.join().unwrap_or_default()
    });
    let status = child.wait();
    if let Some(generation) = answer.done {
        return Ok(Applied {
            generation,
            kept: answer.kept,
            log: answer.log,
        });
    }
    let message = match answer.error {
        Some(e) => e,
        None if answer.committed => format!(
            "the link was lost after the switch began; it finishes or rolls back on the host by itself — run `bkc plan` to see which ({})",
            stderr_text.trim()
        ),
        None => format!(
            "the link was lost before the switch; the host is unchanged ({})",
            match status {
                Ok(s) if stderr_text.trim().is_empty() => format!("{s}"),
                _ => stderr_text.trim().to_string(),
            }
        ),
    };
    Err(HostError::new(host, message))
}
