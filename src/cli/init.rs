//! `bkc init`, `bkc completions`, `bkc man`: getting started and installing bkc itself.

use std::path::PathBuf;

use clap::{CommandFactory, ValueEnum};

use super::exit::{Exit, OrExit};
use super::output;
use super::{Cli, Verbosity};

#[derive(clap::Args)]
pub struct InitArgs {
    /// Which example to start from.
    #[arg(long, value_enum, default_value_t = Example::SeedChain)]
    example: Example,
    /// Where to write it.
    #[arg(short, long, default_value = "bkc.kdl")]
    out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Example {
    /// A desktop backs up to a server, which copies everything offsite.
    SeedChain,
    /// A backup server pulls three machines into snapshots.
    PullServer,
}

#[derive(clap::Args)]
pub struct CompletionsArgs {
    shell: clap_complete::Shell,
}

pub fn init(args: &InitArgs, v: Verbosity) -> Result<Exit, Exit> {
    let (name, body) = match args.example {
        Example::SeedChain => ("seed-chain", include_str!("../../examples/seed-chain.kdl")),
        Example::PullServer => (
            "pull-server",
            include_str!("../../examples/pull-server.kdl"),
        ),
    };
    let text = format!(
        "// A starter topology from `bkc init` (the {name} example). Replace the hosts, addresses\n\
         // and host keys with your own (`ssh-keyscan -t ed25519 HOST` prints a host's key), then run\n\
         // `bkc check` and `bkc build -o out`. docs/SCHEMA.md describes every node.\n\n{body}"
    );
    let out = &args.out;
    output::new_file(out, &text, args.force)?;
    if !v.quiet {
        eprintln!(
            "wrote {} (the {name} example); next: `bkc check {}`",
            out.display(),
            out.display()
        );
    }
    Ok(Exit::Success)
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit, Exit> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "bkc", &mut script);
    output::stdout(&script)?;
    Ok(Exit::Success)
}

pub fn man() -> Result<Exit, Exit> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| format!("cannot render the manual page: {e}"))
        .or_exit(Exit::CouldNotRun)?;
    output::stdout(&page)?;
    Ok(Exit::Success)
}
