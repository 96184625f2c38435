//! What the deploy commands share: how to reach hosts, the hosts a topology wants, asking before
//! a change.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use bkc::deploy::fleet::{self, LocalRunner};
use bkc::deploy::plan::Style;
use bkc::deploy::transport::{SshSession, Target};
use bkc::deploy::{Desired, desired};
use bkc::emit::access;
use bkc::topology::Topology;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::HostFilter;
use super::load;

/// How the deploy commands reach hosts.
#[derive(clap::Args)]
pub struct Remote {
    /// How many hosts to work on at once.
    #[arg(short = 'j', long = "jobs", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// An ssh_config file for every connection (`ssh -F`); default: $BKC_SSH_CONFIG, else ssh's own.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// An extra ssh option as `ssh -o` takes it, such as `ProxyJump=bastion` (repeatable).
    #[arg(long = "ssh-option", value_name = "OPTION")]
    ssh_options: Vec<String>,
}

impl Remote {
    pub fn options(&self) -> fleet::Options {
        fleet::Options {
            jobs: usize::from(self.jobs),
            ssh_config: self
                .ssh_config
                .clone()
                .or_else(|| std::env::var_os("BKC_SSH_CONFIG").map(PathBuf::from)),
            ssh_options: self.ssh_options.clone(),
        }
    }

    /// One SSH session for `hosts` and `sources` (see [`Fleet::sources`]).
    pub fn session(
        &self,
        hosts: &[(Desired, Target)],
        sources: &[(Desired, Target)],
    ) -> Result<SshSession, Exit> {
        fleet::session(hosts, sources, &self.options()).or_exit(Exit::CouldNotRun)
    }
}

/// The hosts of a topology that a deploy command works on, with what each should have and how
/// to reach it.
pub struct Fleet {
    pub t: &'static Topology,
    pub hosts: Vec<(Desired, Target)>,
    /// Hosts outside the selection whose jobs log in to selected hosts with keys of their
    /// own: read for those keys, never changed.
    pub sources: Vec<(Desired, Target)>,
}

impl Fleet {
    /// Compile `file` and pick the hosts `filter` selects.
    pub fn open(file: &Path, filter: &HostFilter, v: Verbosity) -> Result<Fleet, Exit> {
        Fleet::of(load::for_deploy(file, v)?, file, filter)
    }

    /// The hosts `filter` selects in `t`, compiled from `file`.
    pub fn of(t: &'static Topology, file: &Path, filter: &HostFilter) -> Result<Fleet, Exit> {
        let selected = filter
            .in_topology(t, &file.display().to_string())
            .or_exit(Exit::CouldNotRun)?;
        let sources: Vec<String> = match selected.only() {
            [] => Vec::new(),
            only => {
                let mut all = access::all(t);
                let mut v: Vec<String> = only
                    .iter()
                    .filter_map(|h| all.remove(h))
                    .flat_map(|a| a.grants.into_values().flatten())
                    .map(|g| g.job_host)
                    .filter(|h| !selected.contains(h))
                    .collect();
                v.sort();
                v.dedup();
                v
            }
        };
        let mut only = selected.only().to_vec();
        if !only.is_empty() {
            only.extend(sources.iter().cloned());
        }
        let artifacts = bkc::emit::emit(t, &only).or_report(Exit::CouldNotRun)?;
        let (sources, hosts) = desired(t, artifacts)
            .into_iter()
            .partition(|(d, _)| sources.contains(&d.host));
        Ok(Fleet { t, hosts, sources })
    }

    /// The local bkc-run, when any host needs one. Looked for before any connection, so that a
    /// missing runner fails first.
    pub fn runner(&self) -> Result<Option<LocalRunner>, Exit> {
        if self.hosts.iter().all(|(d, _)| d.runner_paths.is_empty()) {
            return Ok(None);
        }
        LocalRunner::find().map(Some).or_exit(Exit::CouldNotRun)
    }
}

pub fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Go ahead when `yes`; otherwise ask on a terminal, and refuse without one.
pub fn confirm(yes: bool, question: &str) -> Result<(), Exit> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "error: standard input is not a terminal, so bkc cannot ask; pass --yes to go ahead"
        );
        return Err(Exit::CouldNotRun);
    }
    eprint!("{question} Only `yes` goes ahead: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        eprintln!("nothing was changed");
        Err(Exit::Declined)
    }
}
