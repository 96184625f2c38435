//! `bkc plan`: what `bkc apply` would change on each host.

use std::path::PathBuf;

use bkc::deploy::fleet;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::output::{self, json};
use super::remote::{Fleet, Remote, style};

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Only these hosts: a name, or @tag for every host with the tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    /// Save the plan, for `bkc apply FILE.json`.
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 with no changes, 1 on an error, 2 with changes.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn plan(args: &PlanArgs, v: Verbosity) -> Result<Exit, Exit> {
    let fleet = Fleet::open(&args.file, &HostFilter::new(&args.hosts), v)?;
    let runner = fleet.runner()?;
    let ssh = args.remote.session(&fleet.hosts, &fleet.sources)?;
    let opts = args.remote.options();
    let runs = fleet::plan_all(
        &ssh,
        fleet.hosts,
        fleet.sources,
        runner.as_ref(),
        &opts,
        !args.json,
    );
    let (text, (add, change, remove), failed) = fleet::render_all(&runs, style());
    let saved = json(&fleet::plan_file(&runs, runner.as_ref()).or_exit(Exit::CouldNotRun)?);
    output::stdout(if args.json { &saved } else { &text }.as_bytes())?;
    if let Some(path) = &args.out {
        output::file(path, &saved)?;
        if !v.quiet {
            eprintln!(
                "saved the plan to {}; apply exactly this plan with `bkc apply {}`",
                path.display(),
                path.display()
            );
        }
    }
    Ok(if failed > 0 {
        Exit::HostFailed
    } else if args.detailed_exitcode && add + change + remove > 0 {
        Exit::Changes
    } else {
        Exit::Success
    })
}
