//! `bkc-run /etc/bkc/jobs/<job>.json [--dry-run]`: run one backup job; `bkc-run snapshots`,
//! `restore` and `verify`: get its data back, or check it; `bkc-run serve <job>`: the far end of
//! a job's remote steps; `bkc-run watch`: start a job when its watched files change. See
//! docs/RUNNER.md, docs/RESTORE.md and docs/SERVE.md.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Run one bkc job from its job spec: locks, waits, hooks, rsync, snapshots, report.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "bkc-run serve <job> is the far end of a job's remote steps, started by sshd (docs/SERVE.md).",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    /// The job spec written by `bkc build`, e.g. /etc/bkc/jobs/<job>.json.
    #[arg(required = true)]
    spec: Option<PathBuf>,
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
    #[command(subcommand)]
    tool: Option<Tool>,
}

#[derive(Subcommand)]
enum Tool {
    /// List each sync's snapshots with their sizes, one JSON line per job.
    Snapshots(bkc_runner::listing::Args),
    /// Copy a snapshot (or the mirror) back, holding the job's locks.
    Restore(bkc_runner::restore::Args),
    /// Compare each source with its copy and classify the differences.
    Verify(bkc_runner::verify::Args),
    /// Delete the job's source snapshots (`source-snapshot`), left by its run or a killed one;
    /// the job's unit runs it outside its sandbox before and after each run.
    DropSourceSnapshots {
        /// The job spec.
        spec: PathBuf,
    },
    /// Take and mount the job's ZFS and LVM source snapshots under its locks; the job's unit
    /// runs it outside its sandbox before each run.
    TakeSourceSnapshots {
        /// The job spec.
        spec: PathBuf,
    },
    /// Watch the job's `watch` paths and start the job when changes there have been quiet for
    /// its `quiet` time (run as bkc-watch@<job>.service).
    Watch {
        /// The job spec.
        spec: PathBuf,
    },
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
    let code = match (args.tool, args.spec) {
        (Some(Tool::Snapshots(a)), _) => bkc_runner::listing::main(&a),
        (Some(Tool::Restore(a)), _) => bkc_runner::restore::main(&a),
        (Some(Tool::Verify(a)), _) => bkc_runner::verify::main(&a),
        (Some(Tool::DropSourceSnapshots { spec }), _) => bkc_runner::drop_source_snapshots(&spec),
        (Some(Tool::TakeSourceSnapshots { spec }), _) => bkc_runner::take_source_snapshots(&spec),
        (Some(Tool::Watch { spec }), _) => bkc_runner::watch::main(&spec),
        (None, Some(spec)) => bkc_runner::run(&bkc_runner::Options {
            spec,
            dry_run: args.dry_run,
            mode: if args.notify {
                bkc_runner::Mode::Notify
            } else if args.fresh {
                bkc_runner::Mode::Fresh
            } else {
                bkc_runner::Mode::Run
            },
        }),
        // clap requires the spec when there is no subcommand.
        (None, None) => bkc_runner::exit::USAGE,
    };
    std::process::exit(code);
}
