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
    /// For monitors: print one line per stale job or failed last run, and exit 0 when there is
    /// none, 1 when there is, 2 when a host cannot be reached.
    #[arg(long, conflicts_with = "json")]
    pub check: bool,
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
    let fleet = Fleet::open(&args.file, &HostFilter::new(&args.hosts), v)?;
    let (rows, unreachable) = gather(&fleet, &args.remote, None)?;
    let failed = !unreachable.is_empty();
    if args.check {
        return check(&rows.0, failed);
    }
    let text = if args.json {
        json(&rows.0)
    } else {
        status::table(&rows.0)
    };
    output::stdout(text.as_bytes())?;
    Ok(Exit::HostFailed.when(failed))
}

/// The statuses of the jobs on `fleet`'s hosts, judged now, and with `runs`, the last runs of
/// each from the journal; and the hosts that could not be reached (each said on stderr).
pub fn gather(
    fleet: &Fleet,
    remote: &Remote,
    runs: Option<usize>,
) -> Result<(Gathered, Vec<String>), Exit> {
    let Fleet { t, hosts, .. } = fleet;
    let ssh = remote.session(hosts, &[])?;
    let with_jobs: Vec<_> = hosts
        .iter()
        .enumerate()
        .filter(|(_, (d, _))| t.jobs.values().any(|j| j.host == d.host))
        .map(|(i, (d, target))| ssh.host(&d.host, target, i))
        .collect();
    let results = bounded(&with_jobs, remote.options().jobs, |tr| {
        let name = bkc::deploy::transport::Transport::host(tr);
        let jobs: Vec<_> = t.jobs.values().filter(|j| j.host == name).collect();
        let rows = status::host_status(tr, &jobs)?;
        let past = match runs {
            Some(n) => status::host_runs(tr, &jobs, n)?,
            None => Default::default(),
        };
        Ok::<_, bkc::deploy::HostError>((rows, past))
    });
    let mut rows = Vec::new();
    let mut past = std::collections::BTreeMap::new();
    let mut unreachable = Vec::new();
    for (r, tr) in results.into_iter().zip(&with_jobs) {
        match r {
            Ok((mut s, mut p)) => {
                rows.append(&mut s);
                past.append(&mut p);
            }
            Err(e) => {
                eprintln!("error: {e}");
                unreachable.push(bkc::deploy::transport::Transport::host(tr).to_string());
            }
        }
    }
    let now = jiff::Timestamp::now();
    for r in &mut rows {
        let limit = t.jobs[&r.job].freshness.as_ref();
        r.judge(limit.map(|f| f.alert_after_secs), now);
    }
    Ok(((rows, past), unreachable))
}

/// Every job's status, and each job's last runs.
pub type Gathered = (
    Vec<status::JobStatus>,
    std::collections::BTreeMap<String, Vec<status::PastRun>>,
);

/// `status --check`: a line on stdout for each thing wrong, then how it ended. A host out of
/// reach outweighs the findings: the jobs on it could not be judged at all.
fn check(rows: &[status::JobStatus], unreachable: bool) -> Result<Exit, Exit> {
    let mut text = String::new();
    for r in rows {
        for p in r.problems() {
            text.push_str(&r.problem_line(p));
            text.push('\n');
        }
    }
    output::stdout(text.as_bytes())?;
    if unreachable {
        return Ok(Exit::HostFailed);
    }
    Ok(Exit::NotFresh.when(!text.is_empty()))
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
