//! `bkc check` and `bkc build`: judge a topology, then write what each host gets.

use std::path::PathBuf;
use std::time::Instant;

use clap::ValueEnum;

use bkc::emit;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::load::{Input, load, report, valid};
use super::output::print_timings;
use super::simulate::{self, Play};

#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    input: Input,
    /// Then simulate the next 30 days, print the report and fail if any run would time out.
    #[arg(long)]
    simulate: bool,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    input: Input,
    /// Output directory.
    #[arg(short, long, default_value = "out")]
    out: PathBuf,
    /// What to write for each host.
    #[arg(long, value_enum, default_value_t = Emit::Systemd)]
    emit: Emit,
    /// Only these hosts: a name, or @tag for every host with the tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// Unit files, job specs, known_hosts and manifest under OUT/<host>/etc/.
    Systemd,
    /// One NixOS module per host, OUT/<host>/bkc.nix, declaring the same.
    Nixos,
    /// Prometheus alerting rules for the whole topology, OUT/bkc.rules.yml.
    Prometheus,
}

pub fn check(args: &CheckArgs, v: Verbosity) -> Result<Exit, Exit> {
    let input = &args.input;
    let c = load(&input.file)?;
    let failed = report(c, input, v);
    if input.timed(v) {
        print_timings(&c.timings);
    }
    let Some(t) = c.topology.as_ref().filter(|_| !failed) else {
        return Err(Exit::Invalid);
    };
    if !v.quiet {
        eprintln!(
            "{}: ok, {} hosts, {} jobs, {} derived exclusions",
            input.file.display(),
            t.hosts.len(),
            t.jobs.len(),
            t.derived.len()
        );
    }
    if v.verbose {
        for j in t.jobs.values() {
            let limit = j
                .freshness
                .as_ref()
                .map_or_else(|| "never (started by hand)".to_string(), |f| f.describe());
            eprintln!("job {}: stale after {limit}", j.name);
        }
    }
    if args.simulate {
        simulate::run(t, &Play::default(), None)
    } else {
        Ok(Exit::Success)
    }
}

pub fn build(args: &BuildArgs, v: Verbosity) -> Result<Exit, Exit> {
    let input = &args.input;
    let (c, t) = valid(input, v)?;
    let file = input.file.display().to_string();
    let selected = HostFilter::new(&args.hosts)
        .in_topology(t, &file)
        .or_exit(Exit::CouldNotRun)?;
    let only = selected.only();
    if let Emit::Prometheus = args.emit {
        return prometheus(t, &args.out, v);
    }
    let start = Instant::now();
    let emitted = match args.emit {
        Emit::Systemd | Emit::Prometheus => emit::emit(t, only),
        Emit::Nixos => emit::emit_nixos(t, only),
    };
    // Leaked like the topology (see `load`).
    let artifacts: &'static _ = Box::leak(Box::new(emitted.or_report(Exit::CouldNotRun)?));
    let emitted = Instant::now();
    let written =
        emit::write_tree(artifacts, &args.out, only.is_empty()).or_report(Exit::CouldNotRun)?;
    if input.timed(v) {
        let mut timings = c.timings.clone();
        timings.push(("emit", emitted - start));
        timings.push(("write", emitted.elapsed()));
        print_timings(&timings);
    }
    if !v.quiet {
        let access = emit::access::all(t);
        let unknown: usize = artifacts
            .hosts
            .keys()
            .filter_map(|h| access.get(h))
            .map(|a| a.missing_keys(&emit::Facts::default()))
            .sum();
        if unknown > 0 {
            eprintln!(
                "note: {unknown} authorized key lines are comments for now: the jobs' own keys are not pinned, so `bkc apply` makes them on the jobs' hosts and fills the lines in (pin a key with key \"ssh-ed25519 …\" in its job to build them whole)"
            );
        }
        let files: usize = artifacts.hosts.values().map(|h| h.files.len()).sum();
        let total = artifacts.hosts.len();
        eprintln!(
            "{}: {files} files for {total} hosts ({written} written, {} already up to date)",
            args.out.display(),
            total - written
        );
    }
    Ok(Exit::Success)
}

/// `build --emit prometheus`: one rules file for the whole topology, written whole (a
/// temporary file renamed into place), so Prometheus never loads half of it.
fn prometheus(
    t: &bkc::topology::Topology,
    out: &std::path::Path,
    v: Verbosity,
) -> Result<Exit, Exit> {
    let text = emit::emit_prometheus(t).or_report(Exit::CouldNotRun)?;
    let path = out.join(emit::RULES_FILE);
    let tmp = out.join(format!(".{}.tmp", emit::RULES_FILE));
    std::fs::create_dir_all(out)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
        .or_exit(Exit::CouldNotRun)?;
    if t.jobs.values().all(|j| j.spec.metrics_dir.is_none()) && !v.quiet {
        eprintln!(
            "warning: no job writes metrics: set `metrics-dir` in `defaults` (docs/MONITORING.md), or these rules see nothing"
        );
    }
    if !v.quiet {
        eprintln!("wrote {}", path.display());
    }
    Ok(Exit::Success)
}
