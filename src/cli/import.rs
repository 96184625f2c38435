//! `bkc import`: another tool's configuration as a topology.

use bkc_contract::names::{address_problem, is_valid_name as valid_name};
use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use bkc::analyze::compile;
use bkc::import::Config;

use super::Verbosity;
use super::exit::Exit;
use super::load::{print_counts, print_diagnostics, read_text};
use super::output::{self, print_timings};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    from: ImportFrom,
}

#[derive(Subcommand)]
enum ImportFrom {
    /// Per-host rsync-director (backupmanager) YAML configs: one HOST=FILE per host.
    #[command(
        after_help = "Examples:\n  bkc import rsyncdirector desktop=desktop.yaml backup_a=backup_a.yaml -o bkc.kdl\n  bkc import rsyncdirector nas=nas.yaml --address backup_a=10.0.0.5"
    )]
    Rsyncdirector(RsyncdirectorArgs),
}

#[derive(clap::Args)]
struct RsyncdirectorArgs {
    /// HOST=FILE: the config of the daemon that runs on HOST.
    #[arg(required = true, value_name = "HOST=FILE", value_parser = host_file)]
    configs: Vec<(String, PathBuf)>,
    /// NAME=ADDRESS: the configs reach host NAME at ADDRESS (repeatable). Without it, an
    /// address whose first label is a HOST (`backup_a.example.com`) is that host.
    #[arg(long = "address", value_name = "NAME=ADDRESS", value_parser = name_address)]
    addresses: Vec<(String, String)>,
    /// Write the topology here instead of to standard output.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

fn host_file(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((h, f)) if valid_name(h) && !f.is_empty() => Ok((h.to_string(), f.into())),
        Some((h, _)) if !valid_name(h) => Err(format!(
            "`{h}` is not a valid host name (letters, digits, `_`, `.`, `-`)"
        )),
        _ => Err("write HOST=FILE, such as desktop=desktop.yaml".into()),
    }
}

fn name_address(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, a)) if valid_name(n) && address_problem(a).is_none() => {
            Ok((n.to_string(), a.to_string()))
        }
        _ => Err("write NAME=ADDRESS, such as backup_a=backup-a.example.com".into()),
    }
}

pub fn import(args: &ImportArgs, v: Verbosity) -> Result<Exit, Exit> {
    match &args.from {
        ImportFrom::Rsyncdirector(a) => rsyncdirector(a, v),
    }
}

fn rsyncdirector(args: &RsyncdirectorArgs, v: Verbosity) -> Result<Exit, Exit> {
    let inputs = read_configs(&args.configs)?;
    let start = Instant::now();
    let imported = bkc::import::rsyncdirector(&inputs, &args.addresses);
    print_diagnostics(&imported.diagnostics, v);
    let files: Vec<&str> = inputs.iter().map(|c| c.file.as_str()).collect();
    print_counts(&files.join(", "), &imported.diagnostics, v);
    let Some(kdl) = imported.kdl else {
        return Err(Exit::Invalid);
    };
    // The promise is a topology that passes `bkc check`; hold the import to it.
    let out = args.out.as_deref();
    let target = out.map_or_else(|| "<stdout>".to_string(), |p| p.display().to_string());
    let c = compile(&target, &kdl);
    let Some(t) = c.topology.as_ref().filter(|_| c.errors() == 0) else {
        print_diagnostics(&c.diagnostics, v);
        eprintln!("error: the imported topology does not pass `bkc check`; nothing was written");
        return Err(Exit::Invalid);
    };
    if v.verbose {
        print_timings(&[("import", start.elapsed())]);
    }
    let Some(path) = out else {
        output::stdout(kdl.as_bytes())?;
        return Ok(Exit::Success);
    };
    output::new_file(path, &kdl, args.force)?;
    if !v.quiet {
        eprintln!(
            "wrote {}: {} hosts, {} jobs; next: `bkc check {}`",
            path.display(),
            t.hosts.len(),
            t.jobs.len(),
            path.display()
        );
    }
    Ok(Exit::Success)
}

/// Every HOST=FILE read, one config per host.
fn read_configs(configs: &[(String, PathBuf)]) -> Result<Vec<Config>, Exit> {
    let mut inputs: Vec<Config> = Vec::new();
    for (host, file) in configs {
        if inputs.iter().any(|c| &c.host == host) {
            eprintln!("error: host `{host}` is given twice; import one config per host");
            return Err(Exit::CouldNotRun);
        }
        inputs.push(Config {
            host: host.clone(),
            file: file.display().to_string(),
            text: read_text(file)?,
        });
    }
    Ok(inputs)
}
