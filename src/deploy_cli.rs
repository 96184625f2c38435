//! The deploy commands of the `bkc` binary: plan, apply, rollback, status, run. The work is in
//! `bkc::deploy`; this file reads arguments, asks, prints and picks exit codes.
//!
//! Exit codes: 0 success (with `plan --detailed-exitcode`: no changes); 1 a host failed, or the
//! topology has errors; 2 bad arguments, or (`plan --detailed-exitcode`) there are changes.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use bkc::deploy::fleet::{HostRun, LocalRunner, Outcome};
use bkc::deploy::plan::{PLAN_VERSION, PlanFile, PlannedHostExt, Style, compare, observe};
use bkc::deploy::transport::{SshSession, Target};
use bkc::deploy::{Desired, HostError, bounded, desired, select_hosts};
use bkc::topology::Topology;

use super::{Input, Remote, Verbosity, fleet, load, report};

/// The compiled topology, or the exit code after its diagnostics.
fn topology(file: &Path, v: Verbosity) -> Result<&'static Topology, ExitCode> {
    let input = Input {
        file: file.to_path_buf(),
        deny_warnings: false,
        timings: false,
    };
    let c = load(&input)?;
    // Warnings were shown by `bkc check`; here only errors stop the command.
    let quiet = Verbosity {
        quiet: true,
        verbose: v.verbose,
    };
    if report(c, &input, quiet) {
        return Err(ExitCode::from(1));
    }
    c.topology.as_ref().ok_or(ExitCode::from(1))
}

/// Every selected host with what it should have and how to reach it.
fn wanted(t: &Topology, selectors: &[String]) -> Result<Vec<(Desired, Target)>, ExitCode> {
    let names = select_hosts(t, selectors).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let artifacts = bkc::emit::emit(t, &names).map_err(|e| {
        eprintln!("{:?}", miette::Report::new(e));
        ExitCode::from(1)
    })?;
    Ok(desired(t, artifacts))
}

/// The local bkc-run, when any host needs one.
fn runner_for(hosts: &[(Desired, Target)]) -> Result<Option<LocalRunner>, ExitCode> {
    if hosts.iter().all(|(d, _)| d.runner_paths.is_empty()) {
        return Ok(None);
    }
    LocalRunner::find().map(Some).map_err(fail)
}

fn session(hosts: &[(Desired, Target)], remote: &Remote) -> Result<SshSession, ExitCode> {
    fleet::session(hosts, &remote.options()).map_err(fail)
}

type Reached = (Vec<(Desired, Target)>, Option<LocalRunner>, SshSession);

/// The selected hosts, the local bkc-run (when `with_runner` and a host needs one) and a session
/// to the hosts, in that order so that a missing runner fails before any connection.
fn reach(
    t: &Topology,
    selectors: &[String],
    remote: &Remote,
    with_runner: bool,
) -> Result<Reached, ExitCode> {
    let hosts = wanted(t, selectors)?;
    let runner = if with_runner {
        runner_for(&hosts)?
    } else {
        None
    };
    let ssh = session(&hosts, remote)?;
    Ok((hosts, runner, ssh))
}

/// What a deploy command works on.
struct Fleet {
    t: &'static Topology,
    hosts: Vec<(Desired, Target)>,
    runner: Option<LocalRunner>,
    ssh: SshSession,
}

/// Compile `file` and reach the hosts `selectors` picks.
fn open(
    file: &Path,
    selectors: &[String],
    remote: &Remote,
    v: Verbosity,
    with_runner: bool,
) -> Result<Fleet, ExitCode> {
    let t = topology(file, v)?;
    let (hosts, runner, ssh) = reach(t, selectors, remote, with_runner)?;
    Ok(Fleet {
        t,
        hosts,
        runner,
        ssh,
    })
}

/// Report an error and give the exit code of a failure.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn print_out(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::from(1)
        }
    }
}

fn json(value: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

pub(crate) fn plan(
    file: &Path,
    selectors: &[String],
    out: Option<&Path>,
    detailed: bool,
    as_json: bool,
    remote: &Remote,
    v: Verbosity,
) -> ExitCode {
    let Fleet {
        hosts, runner, ssh, ..
    } = match open(file, selectors, remote, v, true) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let runs = fleet::plan_all(&ssh, hosts, runner.as_ref(), &remote.options(), !as_json);
    let (text, (add, change, remove), failed) = fleet::render_all(&runs, style());
    let saved = match fleet::plan_file(&runs, runner.as_ref()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let printed = if as_json {
        print_out(&json(&saved))
    } else {
        print_out(&text)
    };
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    if let Some(path) = out {
        if let Err(e) = std::fs::write(path, json(&saved)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
        if !v.quiet {
            eprintln!(
                "saved the plan to {}; apply exactly this plan with `bkc apply {}`",
                path.display(),
                path.display()
            );
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else if detailed && add + change + remove > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// Ask on a terminal; refuse without one.
fn confirm(yes: bool, question: &str) -> Result<(), ExitCode> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: standard input is not a terminal, so bkc cannot ask; pass --yes to go ahead"
        );
        return Err(ExitCode::from(2));
    }
    eprint!("{question} Only `yes` goes ahead: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        eprintln!("nothing was changed");
        Err(ExitCode::from(1))
    }
}

/// Print each host's outcome and pick the exit code.
fn summarise(runs: &[HostRun], outcomes: &[Outcome], v: Verbosity) -> ExitCode {
    let (mut applied, mut unchanged, mut failed) = (0, 0, 0);
    for (r, o) in runs.iter().zip(outcomes) {
        let host = &r.want.host;
        match o {
            Outcome::Unchanged => {
                unchanged += 1;
                if !v.quiet {
                    eprintln!("{host}: unchanged");
                }
            }
            Outcome::Applied(a) => {
                applied += 1;
                if !v.quiet {
                    eprintln!("{host}: applied, now on generation {}", a.generation);
                }
            }
            Outcome::Failed(e) => {
                failed += 1;
                eprintln!("{host}: FAILED: {}", e.message);
            }
        }
    }
    eprintln!("Apply: {applied} applied, {unchanged} unchanged, {failed} failed");
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn apply(
    file: &Path,
    yes: bool,
    selectors: &[String],
    remote: &Remote,
    v: Verbosity,
) -> ExitCode {
    if file.extension().is_some_and(|e| e == "json") {
        return apply_saved(file, selectors, remote, v);
    }
    let Fleet {
        hosts, runner, ssh, ..
    } = match open(file, selectors, remote, v, true) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let opts = remote.options();
    let runs = fleet::plan_all(&ssh, hosts, runner.as_ref(), &opts, true);
    let (text, (add, change, remove), failed) = fleet::render_all(&runs, style());
    if !v.quiet || add + change + remove > 0 {
        let code = print_out(&text);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    if add + change + remove == 0 {
        if !v.quiet {
            eprintln!("nothing to apply");
        }
        return if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    if let Err(code) = confirm(yes, "Apply this plan?") {
        return code;
    }
    let outcomes = fleet::apply_all(&runs, runner.as_ref(), &opts);
    summarise(&runs, &outcomes, v)
}

/// `bkc apply plan.json`: exactly the saved plan, on hosts that have not changed since.
fn apply_saved(file: &Path, selectors: &[String], remote: &Remote, v: Verbosity) -> ExitCode {
    let saved: PlanFile = match std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot read the plan {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    if saved.version != PLAN_VERSION {
        eprintln!(
            "error: {} is a version {} plan; this bkc reads version {PLAN_VERSION}",
            file.display(),
            saved.version
        );
        return ExitCode::from(2);
    }
    let mut hosts = Vec::new();
    for (name, ph) in &saved.hosts {
        if !selectors.is_empty() && !selectors.contains(name) {
            continue;
        }
        hosts.push((ph.desired(name), ph.target.clone()));
    }
    let needs_runner = saved
        .hosts
        .values()
        .any(|h| !h.plan.runner_install.is_empty());
    let runner = if needs_runner {
        match LocalRunner::find() {
            Ok(r) if Some(&r.sha256) == saved.runner_sha256.as_ref() => Some(r),
            Ok(_) => {
                eprintln!(
                    "error: the plan installs a bkc-run that differs from the one next to this bkc; run `bkc plan` again"
                );
                return ExitCode::from(1);
            }
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let ssh = match session(&hosts, remote) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = remote.options();
    let transports: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, (d, t))| ssh.host(&d.host, t, i))
        .collect();
    let observed = bounded(&transports, opts.jobs, |t| {
        let paths = saved.hosts[bkc::deploy::transport::Transport::host(t)]
            .runner_paths
            .clone();
        observe(t, &paths)
    });
    let mut stale = Vec::new();
    let mut runs = Vec::new();
    for (((want, target), transport), obs) in hosts.into_iter().zip(transports).zip(observed) {
        let ph = &saved.hosts[&want.host];
        if let Ok(o) = &obs
            && o.fingerprint() != ph.fingerprint
        {
            let now = compare(
                &want,
                o,
                runner.as_ref().map(|r| (r.sha256.as_str(), r.arch)),
            );
            stale.push(format!(
                "{}: changed since the plan was made (it would now need {})",
                want.host,
                bkc::deploy::plan::summary(now.counts())
            ));
        }
        runs.push(HostRun {
            plan: Some(ph.plan.clone()),
            want,
            target,
            transport: Box::new(transport),
            observed: obs,
            old: BTreeMap::new(),
        });
    }
    if !stale.is_empty() {
        for s in &stale {
            eprintln!("error: {s}");
        }
        eprintln!(
            "the saved plan {} is stale; nothing was applied. Run `bkc plan` again.",
            file.display()
        );
        return ExitCode::from(1);
    }
    let (text, _, _) = fleet::render_all(&runs, style());
    if !v.quiet {
        let code = print_out(&text);
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    let outcomes = fleet::apply_all(&runs, runner.as_ref(), &opts);
    summarise(&runs, &outcomes, v)
}

pub(crate) fn rollback(
    host: &str,
    file: &Path,
    to: Option<u64>,
    yes: bool,
    remote: &Remote,
    v: Verbosity,
) -> ExitCode {
    let Fleet { hosts, ssh, .. } = match open(file, &[host.to_string()], remote, v, false) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let Some((want, target)) = hosts.into_iter().next() else {
        return ExitCode::from(2);
    };
    let transport = ssh.host(host, &target, 0);
    let obs = match observe(&transport, &want.runner_paths) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let Some(to) = to.or_else(|| {
        obs.kept
            .iter()
            .rev()
            .find(|g| **g < obs.generation)
            .copied()
    }) else {
        return fail(HostError::new(
            host,
            format!(
                "no generation before {} is kept (kept: {:?})",
                obs.generation, obs.kept
            ),
        ));
    };
    let back = match fleet::generation(&transport, to) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let p = compare(&back, &obs, None);
    let old = if p.changed.is_empty() {
        BTreeMap::new()
    } else {
        match bkc::deploy::plan::fetch(&transport, &p.changed) {
            Ok(o) => o,
            Err(e) => return fail(e),
        }
    };
    let code = print_out(&bkc::deploy::plan::render(host, &p, &back, &old, style()));
    if code != ExitCode::SUCCESS {
        return code;
    }
    if !p.has_changes() {
        eprintln!("{host}: already has the files of generation {to}; nothing to do");
        return ExitCode::SUCCESS;
    }
    if let Err(code) = confirm(yes, &format!("Roll {host} back to generation {to}?")) {
        return code;
    }
    let progress = |msg: &str| eprintln!("{host}: {msg}");
    match bkc::deploy::apply::apply_host(&transport, &back, &obs, &p, None, &progress) {
        Ok(a) => {
            if !v.quiet {
                eprintln!(
                    "{host}: rolled back to the files of generation {to} (now generation {})",
                    a.generation
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub(crate) fn status(
    file: &Path,
    selectors: &[String],
    as_json: bool,
    remote: &Remote,
    v: Verbosity,
) -> ExitCode {
    let Fleet { t, hosts, ssh, .. } = match open(file, selectors, remote, v, false) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let with_jobs: Vec<_> = hosts
        .iter()
        .enumerate()
        .filter(|(_, (d, _))| t.jobs.values().any(|j| j.host == d.host))
        .map(|(i, (d, target))| ssh.host(&d.host, target, i))
        .collect();
    let results = bounded(&with_jobs, remote.options().jobs, |tr| {
        let name = bkc::deploy::transport::Transport::host(tr);
        let jobs: Vec<_> = t.jobs.values().filter(|j| j.host == name).collect();
        bkc::deploy::status::host_status(tr, &jobs)
    });
    let mut rows = Vec::new();
    let mut failed = false;
    for r in results {
        match r {
            Ok(mut s) => rows.append(&mut s),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    let text = if as_json {
        json(&rows)
    } else {
        bkc::deploy::status::table(&rows)
    };
    let code = print_out(&text);
    if failed { ExitCode::from(1) } else { code }
}

pub(crate) fn run_job(
    job: &str,
    file: &Path,
    wait: bool,
    remote: &Remote,
    v: Verbosity,
) -> ExitCode {
    let t = match topology(file, v) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let Some(j) = t.jobs.get(job) else {
        let known: Vec<&str> = t.jobs.keys().map(String::as_str).collect();
        eprintln!(
            "error: {} has no job `{job}` (its jobs: {})",
            file.display(),
            known.join(", ")
        );
        return ExitCode::from(2);
    };
    let (hosts, _, ssh) = match reach(t, std::slice::from_ref(&j.host), remote, false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some((_, target)) = hosts.first() else {
        return ExitCode::from(2);
    };
    let transport = ssh.host(&j.host, target, 0);
    if wait && !v.quiet {
        eprintln!("{}: running {job}", j.host);
    }
    match bkc::deploy::status::start(&transport, job, wait) {
        Ok(None) => {
            if !v.quiet {
                eprintln!("{}: started bkc-{job}.service", j.host);
            }
            ExitCode::SUCCESS
        }
        Ok(Some(ran)) => {
            for l in &ran.log {
                eprintln!("{}: {l}", j.host);
            }
            if !v.quiet {
                eprintln!("{}: {job} exited with {}", j.host, ran.exit_code);
            }
            ExitCode::from(u8::try_from(ran.exit_code).unwrap_or(1))
        }
        Err(e) => fail(e),
    }
}
