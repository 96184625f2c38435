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
    #[arg(long, short = 'n', conflicts_with_all = ["notify", "fresh"])]
    dry_run: bool,
    /// Tell the job's notify commands how its last run ended (started by systemd's
    /// OnFailure=/OnSuccess= as bkc-notify@<job>.service).
    #[arg(long, conflicts_with = "fresh")]
    notify: bool,
    /// The file is a freshness spec (/etc/bkc/fresh/<job>.json): check that the job's data
    /// arrived here recently enough; exit 1 while it has not.
    #[arg(long)]
    fresh: bool,
}

fn main() {
    let args = Args::parse();
    let code = bkc_runner::run(&bkc_runner::Options {
        spec: args.spec,
        dry_run: args.dry_run,
        mode: if args.notify {
            bkc_runner::Mode::Notify
        } else if args.fresh {
            bkc_runner::Mode::Fresh
        } else {
            bkc_runner::Mode::Run
        },
    });
    std::process::exit(code);
}
