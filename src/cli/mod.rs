//! The `bkc` command line: one file per command or group of commands, each given its clap
//! arguments whole. Every command ends with an [`exit::Exit`], a meaning that becomes a number
//! only in [`exit::Exit::code`]; every `--host` is a [`hosts::HostFilter`].

mod apply;
mod check;
mod exit;
mod fmt;
mod graph;
mod hosts;
mod import;
mod init;
mod load;
mod output;
mod plan;
mod remote;
mod report;
mod restore;
mod simulate;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use exit::{Codes, Exit};

const EXAMPLES: &str = "\
Examples:
  bkc init                                  write a commented starter bkc.kdl
  bkc check                                 check ./bkc.kdl, report every mistake
  bkc build -o out                          write out/<host>/... for every host
  bkc fmt --check                           fail (for CI) when bkc.kdl is not formatted
  bkc plan                                  show what `bkc apply` would change on every host
  bkc apply                                 put the topology on every host (asks first)
  bkc status                                every job of the fleet: last run, result, next run
  bkc report -o status.html                 the fleet at a glance, as one HTML page
  bkc snapshots a-to-b                      a job's snapshots, with sizes
  bkc restore pull-web1 --to /var/tmp/r     copy web1's files back from the latest snapshot
  bkc import rsyncdirector desktop=desktop.yaml backup_a=backup_a.yaml -o bkc.kdl
  bkc completions bash > /etc/bash_completion.d/bkc";

#[derive(Parser)]
#[command(
    name = "bkc",
    version,
    about = "Compile a KDL backup topology into systemd units and job specs for every host",
    after_help = EXAMPLES,
    after_long_help = format!("{EXAMPLES}\n\n{}", Exit::help())
)]
struct Cli {
    /// Print errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more detail, such as how long each stage took.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology and report every mistake at once.
    #[command(after_help = "Examples:\n  bkc check\n  bkc check site.kdl --deny-warnings")]
    Check(check::CheckArgs),
    /// Write each host's units, job specs, known_hosts and manifest under OUT/<host>/, or each
    /// host's NixOS module (--emit nixos).
    #[command(
        after_help = "Examples:\n  bkc build -o out\n  bkc build site.kdl -o out --host desktop"
    )]
    Build(check::BuildArgs),
    /// Draw the chain: hosts, the data each job moves, and which jobs wait on which.
    Graph(graph::GraphArgs),
    /// Play every job's schedule against the others' and report waits and timeouts; exit 1 if
    /// any run would time out.
    Simulate(simulate::SimulateArgs),
    /// Write a commented starter topology.
    #[command(after_help = "Examples:\n  bkc init\n  bkc init --example pull-server -o site.kdl")]
    Init(init::InitArgs),
    /// Rewrite a topology in the canonical layout, keeping every comment.
    #[command(after_help = "Examples:\n  bkc fmt\n  bkc fmt site.kdl --check")]
    Fmt(fmt::FmtArgs),
    /// Turn another tool's configuration into a topology.
    Import(import::ImportArgs),
    /// Show what `bkc apply` would change on each host, with diffs and drift.
    #[command(
        after_help = "Examples:\n  bkc plan\n  bkc plan site.kdl --host @offsite -o plan.json\n  bkc plan --detailed-exitcode   (0 no changes, 1 error, 2 changes)"
    )]
    Plan(plan::PlanArgs),
    /// Put the topology (or a saved plan) on the hosts: stage, then switch each host whole.
    #[command(
        after_help = "Examples:\n  bkc apply\n  bkc apply --yes --host desktop\n  bkc apply plan.json"
    )]
    Apply(apply::ApplyArgs),
    /// Put a host back on the files of a kept generation.
    #[command(after_help = "Examples:\n  bkc rollback desktop\n  bkc rollback desktop --to 3")]
    Rollback(apply::RollbackArgs),
    /// Every job of the fleet: its host, last run, result, age, freshness, next run, and whether
    /// its lock is held.
    #[command(
        after_help = "Examples:\n  bkc status\n  bkc status site.kdl --json\n  bkc status --check   (0 all fresh, 1 stale or failed, 2 a host out of reach)"
    )]
    Status(status::StatusArgs),
    /// The fleet at a glance: one self-contained HTML page with the chain coloured by each
    /// job's state, a table of every job and their last runs.
    #[command(
        after_help = "Examples:\n  bkc report -o status.html\n  bkc report site.kdl -o /var/www/html/bkc/index.html --runs 10"
    )]
    Report(report::ReportArgs),
    /// Start a job now on its host.
    #[command(after_help = "Examples:\n  bkc run desktop-to-a\n  bkc run a-to-b --wait")]
    Run(status::RunArgs),
    /// Each job's snapshots: time, complete or partial, files, size, what the next run prunes.
    #[command(
        after_help = "Examples:\n  bkc snapshots\n  bkc snapshots site.kdl a-to-b --json\n  bkc snapshots --host @offsite"
    )]
    Snapshots(restore::SnapshotsArgs),
    /// Copy a job's data back from a snapshot (or its mirror), holding the job's lock.
    #[command(
        after_help = "Examples:\n  bkc restore a-to-b desktop/music/song.flac --to /var/tmp/restore\n  bkc restore a-to-b site.kdl --at 2026-11-20 --to backup_a:/var/tmp/r\n  bkc restore pull-web1 --in-place --dry-run\n  bkc restore pull-web1 index.html --in-place"
    )]
    Restore(restore::RestoreArgs),
    /// Compare a job's sources with their copies and say what is corrupted or missing.
    #[command(
        after_help = "Examples:\n  bkc verify a-to-b\n  bkc verify pull-web1 site.kdl --checksum --json\n  (exit 0: nothing corrupted or missing, 1: found some, 2: could not run)"
    )]
    Verify(restore::VerifyArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  bkc completions bash > /etc/bash_completion.d/bkc\n  bkc completions zsh > ~/.zfunc/_bkc\n  bkc completions fish > ~/.config/fish/completions/bkc.fish"
    )]
    Completions(init::CompletionsArgs),
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  bkc man > /usr/local/share/man/man1/bkc.1")]
    Man,
}

/// How much to print, from the global flags.
#[derive(Clone, Copy)]
struct Verbosity {
    quiet: bool,
    verbose: bool,
}

/// Parse the arguments, run the command, and exit as it ended.
pub fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => {
            let codes = cli.codes();
            run(cli).exit_code(codes)
        }
        Err(e) => {
            let _ = e.print();
            // The arguments did not parse, so only their words can say whether a script expects
            // `--detailed-exitcode`'s numbering, where a usage error must not read as "changes".
            let codes = if std::env::args_os().any(|a| a == "--detailed-exitcode") {
                Codes::Detailed
            } else {
                Codes::Plain
            };
            Exit::CouldNotRun.when(e.use_stderr()).exit_code(codes)
        }
    }
}

impl Cli {
    /// The numbering this command line promised.
    fn codes(&self) -> Codes {
        match &self.command {
            Command::Plan(p) if p.detailed_exitcode => Codes::Detailed,
            Command::Status(s) if s.check => Codes::Check,
            _ => Codes::Plain,
        }
    }
}

fn run(cli: Cli) -> Exit {
    let v = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    // A command that stops early (`Err`) has said why; either way its value is how it ended.
    let ended = match &cli.command {
        Command::Check(a) => check::check(a, v),
        Command::Build(a) => check::build(a, v),
        Command::Graph(a) => graph::graph(a, v),
        Command::Simulate(a) => simulate::simulate(a, v),
        Command::Init(a) => init::init(a, v),
        Command::Fmt(a) => fmt::fmt(a, v),
        Command::Import(a) => import::import(a, v),
        Command::Plan(a) => plan::plan(a, v),
        Command::Apply(a) => apply::apply(a, v),
        Command::Rollback(a) => apply::rollback(a, v),
        Command::Status(a) => status::status(a, v),
        Command::Run(a) => status::run(a, v),
        Command::Report(a) => report::report(a, v),
        Command::Snapshots(a) => restore::snapshots(a, v),
        Command::Restore(a) => restore::restore(a, v),
        Command::Verify(a) => restore::verify(a, v),
        Command::Completions(a) => init::completions(a),
        Command::Man => init::man(),
    };
    ended.unwrap_or_else(|e| e)
}
