//! `bkc status` and `bkc run`: the jobs on their hosts.

use std::path::PathBuf;

use bkc::deploy::bounded;
use bkc::deploy::status;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::output::{self, json};
use super::remote::{Fleet, Remote};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Only these hosts: a name, or @tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The job.
    job: String,
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Wait for the run to end, print its log and exit with the runner's exit code.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn status(args: &StatusArgs, v: Verbosity) -> Result<Exit, Exit> {
    let Fleet { t, hosts, .. } = Fleet::open(&args.file, &HostFilter::new(&args.hosts), v)?;
    let ssh = args.remote.session(&hosts, &[])?;
    let with_jobs: Vec<_> = hosts
        .iter()
        .enumerate()
        .filter(|(_, (d, _))| t.jobs.values().any(|j| j.host == d.host))
        .map(|(i, (d, target))| ssh.host(&d.host, target, i))
        .collect();
    let results = bounded(&with_jobs, args.remote.options().jobs, |tr| {
        let name = bkc::deploy::transport::Transport::host(tr);
        let jobs: Vec<_> = t.jobs.values().filter(|j| j.host == name).collect();
        status::host_status(tr, &jobs)
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
    let text = if args.json {
        json(&rows)
    } else {
        status::table(&rows)
    };
    output::stdout(text.as_bytes())?;
    Ok(Exit::HostFailed.when(failed))
}

pub fn run(args: &RunArgs, v: Verbosity) -> Result<Exit, Exit> {
    let job = args.job.as_str();
    let t = super::load::for_deploy(&args.file, v)?;
    let Some(j) = t.jobs.get(job) else {
        let known: Vec<&str> = t.jobs.keys().map(String::as_str).collect();
        eprintln!(
            "error: {} has no job `{job}` (its jobs: {})",
            args.file.display(),
            known.join(", ")
        );
        return Err(Exit::CouldNotRun);
    };
    let only = HostFilter::new(&[Selector::Name(j.host.clone())]);
    let Fleet { hosts, .. } = Fleet::of(t, &args.file, &only)?;
    let ssh = args.remote.session(&hosts, &[])?;
    let (_, target) = hosts.first().ok_or(Exit::CouldNotRun)?;
    let transport = ssh.host(&j.host, target, 0);
    if args.wait && !v.quiet {
        eprintln!("{}: running {job}", j.host);
    }
    let Some(ran) = status::start(&transport, job, args.wait).or_exit(Exit::HostFailed)? else {
        if !v.quiet {
            eprintln!(
                "{}: started {}",
                j.host,
                bkc_contract::names::service_unit(job)
            );
        }
        return Ok(Exit::Success);
    };
    for l in &ran.log {
        eprintln!("{}: {l}", j.host);
    }
    if !v.quiet {
        eprintln!("{}: {job} exited with {}", j.host, ran.exit_code);
    }
    Ok(Exit::Runner(u8::try_from(ran.exit_code).unwrap_or(1)))
}
