//! `bkc-run /etc/bkc/jobs/<job>.json [--dry-run]`: run one backup job; `bkc-run serve <job>`:
//! the far end of a job's remote steps. See docs/RUNNER.md and docs/SERVE.md.

use std::path::PathBuf;

use clap::Parser;

/// Run one bkc job from its job spec: locks, waits, hooks, rsync, snapshots, report.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "bkc-run serve <job> is the far end of a job's remote steps, started by sshd (docs/SERVE.md)."
)]
struct Args {
    /// The job spec written by `bkc build`, e.g. /etc/bkc/jobs/<job>.json.
    spec: PathBuf,
    /// Say what would be done; rsync runs with --dry-run; no locks, hooks, snapshots or state.
    #[arg(long, short = 'n')]
    dry_run: bool,
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // serve takes its words as they come: they are a request to check, not options for clap
    // (rsync's `--server ...` among them), and they may come from sshd rather than argv.
    if argv.get(1).is_some_and(|a| a == "serve") {
        std::process::exit(bkc_runner::serve(&argv[2..]));
    }
    if argv.get(1).is_some_and(|a| a == "prune") {
        std::process::exit(bkc_runner::prune(&argv[2..]));
    }
    let args = Args::parse();
    let code = bkc_runner::run(&bkc_runner::Options {
        spec: args.spec,
        dry_run: args.dry_run,
    });
    std::process::exit(code);
}
