//! `bkc apply` (a topology, or exactly a saved plan) and `bkc rollback`.

use bkc::printable::printable_line;
use bkc_contract::names;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bkc::deploy::fleet::{self, HostRun, LocalRunner, Outcome};
use bkc::deploy::plan::{self, PLAN_VERSION, PlanFile, PlannedHostExt, compare, observe};
use bkc::deploy::transport::{SshSession, Target};
use bkc::deploy::{Desired, HostError, bounded};

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{Candidate, HostFilter, Selector};
use super::output;
use super::remote::{Fleet, Remote, confirm, style};

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The topology file, or a plan saved by `bkc plan -o` (a .json file).
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
    /// Only these hosts: a name, or @tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    /// The host.
    host: String,
    /// The topology file (for how to reach the host).
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// The generation to go back to (default: the one before the current one).
    #[arg(long, value_name = "N")]
    to: Option<u64>,
    /// Do not ask.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn apply(args: &ApplyArgs, v: Verbosity) -> Result<Exit, Exit> {
    if args.file.extension().is_some_and(|e| e == "json") {
        return apply_saved(args, v);
    }
    let fleet = Fleet::open(&args.file, &HostFilter::new(&args.hosts), v)?;
    let runner = fleet.runner()?;
    let ssh = args.remote.session(&fleet.hosts, &fleet.sources)?;
    let opts = args.remote.options();
    let plan = || {
        fleet::plan_all(
            &ssh,
            fleet.hosts.clone(),
            fleet.sources.clone(),
            runner.as_ref(),
            &opts,
            true,
        )
    };
    let mut runs = plan();
    // Keys first: the authorized keys of the other hosts are planned with them. A new key
    // opens nothing until the plan below, which lets it in, is applied.
    if runs.iter().any(|r| {
        r.plan
            .as_ref()
            .is_some_and(|p| !plan::keys_to_make(p).is_empty())
    }) {
        fleet::make_keys(&runs, &opts);
        runs = plan();
    }
    let (text, (add, change, remove), failed) = fleet::render_all(&runs, style());
    let changes = add + change + remove > 0;
    if !v.quiet || changes {
        output::stdout(text.as_bytes())?;
    }
    if !changes {
        if !v.quiet {
            eprintln!("nothing to apply");
        }
        return Ok(Exit::HostFailed.when(failed > 0));
    }
    confirm(args.yes, "Apply this plan?")?;
    let outcomes = fleet::apply_all(&runs, runner.as_ref(), &opts);
    Ok(summarise(&runs, &outcomes, v))
}

/// `bkc apply plan.json`: exactly the saved plan, on hosts that have not changed since.
fn apply_saved(args: &ApplyArgs, v: Verbosity) -> Result<Exit, Exit> {
    let file = &args.file;
    let saved = read_plan(file)?;
    let hosts = saved_hosts(&saved, &HostFilter::new(&args.hosts), file)?;
    let runner = saved_runner(&saved)?;
    let ssh = args.remote.session(&hosts, &[])?;
    let opts = args.remote.options();
    let runs = observe_saved(&saved, hosts, &ssh, opts.jobs);
    let stale = stale(&saved, &runs, runner.as_ref());
    if !stale.is_empty() {
        for s in &stale {
            eprintln!("error: {s}");
        }
        eprintln!(
            "the saved plan {} is stale; nothing was applied. Run `bkc plan` again.",
            file.display()
        );
        return Err(Exit::StalePlan);
    }
    let (text, _, _) = fleet::render_all(&runs, style());
    if !v.quiet {
        output::stdout(text.as_bytes())?;
    }
    // The saved authorized keys were planned without the keys made now: the next plan adds
    // their lines.
    if !fleet::make_keys(&runs, &opts) {
        eprintln!(
            "note: run `bkc plan` again to see what the keys that could not be made leave out"
        );
    }
    let outcomes = fleet::apply_all(&runs, runner.as_ref(), &opts);
    Ok(summarise(&runs, &outcomes, v))
}

/// The hosts of the plan in `file` that `filter` selects, with what each gets and how to
/// reach it.
fn saved_hosts(
    saved: &PlanFile,
    filter: &HostFilter,
    file: &Path,
) -> Result<Vec<(Desired, Target)>, Exit> {
    let planned: Vec<Candidate> = saved
        .hosts
        .iter()
        .map(|(name, h)| (name.as_str(), h.tags.as_slice()))
        .collect();
    let selected = filter
        .select(&planned, &format!("the plan {}", file.display()))
        .or_exit(Exit::CouldNotRun)?;
    saved
        .hosts
        .iter()
        .filter(|(name, _)| selected.contains(name))
        .map(|(name, h)| {
            // A saved plan is a file anyone could have edited: its targets pass the topology's
            // own rules before ssh sees them.
            if let Some(why) = target_problem(&h.target) {
                eprintln!(
                    "error: the plan {} gives host {} a target bkc would never write: {why}; make the plan again",
                    file.display(),
                    printable_line(name)
                );
                return Err(Exit::CouldNotRun);
            }
            Ok((h.desired(name), h.target.clone()))
        })
        .collect()
}

/// Why a target read from a saved plan is not one `bkc check` would have let through.
fn target_problem(t: &Target) -> Option<String> {
    if let Some(why) = names::address_problem(&t.address) {
        return Some(format!("address `{}`: {why}", printable_line(&t.address)));
    }
    if !names::is_valid_user(&t.user) {
        return Some(format!("user `{}`", printable_line(&t.user)));
    }
    if t.port == 0 {
        return Some("port 0".into());
    }
    t.host_keys
        .iter()
        .find(|k| k.chars().any(char::is_control))
        .map(|k| format!("host key `{}`", printable_line(k)))
}

/// Every host read again, `jobs` at a time, with its saved plan.
fn observe_saved(
    saved: &PlanFile,
    hosts: Vec<(Desired, Target)>,
    ssh: &SshSession,
    jobs: usize,
) -> Vec<HostRun> {
    let transports: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, (d, t))| ssh.host(&d.host, t, i))
        .collect();
    let wants: Vec<&Desired> = hosts.iter().map(|(d, _)| d).collect();
    let observed = bounded(
        &transports.iter().zip(wants).collect::<Vec<_>>(),
        jobs,
        |(t, w)| observe(*t, w),
    );
    hosts
        .into_iter()
        .zip(transports)
        .zip(observed)
        .map(|(((want, target), transport), observed)| HostRun {
            plan: Some(saved.hosts[&want.host].plan.clone()),
            want,
            target,
            transport: Box::new(transport),
            observed,
            old: BTreeMap::new(),
        })
        .collect()
}

/// A line for each host whose state changed since the plan was made.
fn stale(saved: &PlanFile, runs: &[HostRun], runner: Option<&LocalRunner>) -> Vec<String> {
    let runner = runner.map(|r| (r.sha256.as_str(), r.arch));
    runs.iter()
        .filter_map(|r| {
            let o = r.observed.as_ref().ok()?;
            if o.fingerprint() == saved.hosts[&r.want.host].fingerprint {
                return None;
            }
            Some(format!(
                "{}: changed since the plan was made (it would now need {})",
                r.want.host,
                plan::summary(compare(&r.want, o, runner).counts())
            ))
        })
        .collect()
}

fn read_plan(file: &Path) -> Result<PlanFile, Exit> {
    let saved: PlanFile = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot read the plan {}: {e}", file.display()))
        .or_exit(Exit::CouldNotRun)?;
    if saved.version != PLAN_VERSION {
        eprintln!(
            "error: {} is a version {} plan; this bkc reads version {PLAN_VERSION}",
            file.display(),
            saved.version
        );
        return Err(Exit::CouldNotRun);
    }
    Ok(saved)
}

/// The local bkc-run, when the plan installs one: it must be the one the plan was made with.
fn saved_runner(saved: &PlanFile) -> Result<Option<LocalRunner>, Exit> {
    if saved
        .hosts
        .values()
        .all(|h| h.plan.runner_install.is_empty())
    {
        return Ok(None);
    }
    let r = LocalRunner::find().or_exit(Exit::CouldNotRun)?;
    if Some(&r.sha256) != saved.runner_sha256.as_ref() {
        eprintln!(
            "error: the plan installs a bkc-run that differs from the one next to this bkc; run `bkc plan` again"
        );
        return Err(Exit::StalePlan);
    }
    Ok(Some(r))
}

/// Print each host's outcome and how the apply ends.
fn summarise(runs: &[HostRun], outcomes: &[Outcome], v: Verbosity) -> Exit {
    let (mut applied, mut unchanged, mut failed) = (0, 0, 0);
    for (r, o) in runs.iter().zip(outcomes) {
        let host = &r.want.host;
        // Said even when quiet: no apply puts these right.
        for d in r.plan.iter().flat_map(plan::key_drift) {
            eprintln!("{host}: left for you: {d}");
        }
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
                // Said even when quiet: these files are still on the host.
                for k in &a.kept {
                    eprintln!("{host}: {k}");
                }
            }
            Outcome::Failed(e) => {
                failed += 1;
                eprintln!("{host}: FAILED: {}", e.message);
            }
        }
    }
    eprintln!("Apply: {applied} applied, {unchanged} unchanged, {failed} failed");
    Exit::HostFailed.when(failed > 0)
}

pub fn rollback(args: &RollbackArgs, v: Verbosity) -> Result<Exit, Exit> {
    let host = args.host.as_str();
    let only = HostFilter::new(&[Selector::Name(host.to_string())]);
    let Fleet { hosts, .. } = Fleet::open(&args.file, &only, v)?;
    let ssh = args.remote.session(&hosts, &[])?;
    let (want, target) = hosts.into_iter().next().ok_or(Exit::CouldNotRun)?;
    let transport = ssh.host(host, &target, 0);
    let obs = observe(&transport, &want).or_exit(Exit::HostFailed)?;
    let to = match args.to {
        Some(n) => n,
        None => obs
            .kept
            .iter()
            .rev()
            .find(|g| **g < obs.generation)
            .copied()
            .ok_or_else(|| {
                HostError::new(
                    host,
                    format!(
                        "no generation before {} is kept (kept: {:?})",
                        obs.generation, obs.kept
                    ),
                )
            })
            .or_exit(Exit::HostFailed)?,
    };
    let back = fleet::generation(&transport, to).or_exit(Exit::HostFailed)?;
    let p = compare(&back, &obs, None);
    let old = if p.changed.is_empty() {
        BTreeMap::new()
    } else {
        plan::fetch(&transport, &p.changed).or_exit(Exit::HostFailed)?
    };
    output::stdout(plan::render(host, &p, &back, &old, style()).as_bytes())?;
    if !p.has_changes() {
        eprintln!("{host}: already has the files of generation {to}; nothing to do");
        return Ok(Exit::Success);
    }
    confirm(args.yes, &format!("Roll {host} back to generation {to}?"))?;
    let progress = |msg: &str| eprintln!("{host}: {msg}");
    let a = bkc::deploy::apply::apply_host(&transport, &back, &obs, &p, None, &progress)
        .or_exit(Exit::HostFailed)?;
    if !v.quiet {
        eprintln!(
            "{host}: rolled back to the files of generation {to} (now generation {})",
            a.generation
        );
    }
    Ok(Exit::Success)
}
