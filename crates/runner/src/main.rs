//! `bkc-run /etc/bkc/jobs/<job>.json [--dry-run]`: run one backup job. See docs/RUNNER.md.

use std::path::PathBuf;

use clap::Parser;

/// Run one bkc job from its job spec: locks, waits, hooks, rsync, snapshots, report.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The job spec written by `bkc build`, e.g. /etc/bkc/jobs/<job>.json.
    spec: PathBuf,
    /// Say what would be done; rsync runs with --dry-run; no locks, hooks, snapshots or state.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

fn main() {
    let args = Args::parse();
    let code = bkc_runner::run(&bkc_runner::Options {
        spec: args.spec,
        dry_run: args.dry_run,
    });
    std::process::exit(code);
}
