//! bkc: parse arguments, call the library, print diagnostics, map outcomes to exit codes.
//!
//! Exit codes: 0 success; 1 the topology has errors (or warnings with `--deny-warnings`);
//! 2 bkc could not do its work (unreadable file, unwritable output, bad arguments).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use bkc::analyze::{Compiled, compile};
use bkc::diag::render;
use bkc::emit;
use bkc::syntax::MAX_BYTES;

#[derive(Parser)]
#[command(
    name = "bkc",
    version,
    about = "Compile a KDL backup topology into systemd units and job specs for every host"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Input {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Fail on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Print how long each stage took.
    #[arg(long)]
    timings: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology and report every mistake at once.
    Check {
        #[command(flatten)]
        input: Input,
    },
    /// Write each host's units, job specs, known_hosts and manifest under OUT/<host>/, or each
    /// host's NixOS module (--emit nixos).
    Build {
        #[command(flatten)]
        input: Input,
        /// Output directory.
        #[arg(short, long, default_value = "out")]
        out: PathBuf,
        /// What to write for each host.
        #[arg(long, value_enum, default_value_t = Emit::Systemd)]
        emit: Emit,
        /// Only these hosts (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Emit {
    /// Unit files, job specs, known_hosts and manifest under OUT/<host>/etc/.
    Systemd,
    /// One NixOS module per host, OUT/<host>/bkc.nix, declaring the same.
    Nixos,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { input } => match load(&input) {
            Ok(c) => {
                let failed = report(c, &input);
                if input.timings {
                    print_timings(&c.timings);
                }
                if !failed {
                    let t = c.topology.as_ref().expect("no errors means a topology");
                    eprintln!(
                        "{}: ok, {} hosts, {} jobs, {} derived exclusions",
                        input.file.display(),
                        t.hosts.len(),
                        t.jobs.len(),
                        t.derived.len()
                    );
                }
                exit(failed)
            }
            Err(code) => code,
        },
        Command::Build {
            input,
            out,
            emit,
            hosts,
        } => match load(&input) {
            Ok(c) => {
                if report(c, &input) {
                    return ExitCode::from(1);
                }
                let t = c.topology.as_ref().expect("no errors means a topology");
                let unknown: Vec<&String> =
                    hosts.iter().filter(|h| !t.hosts.contains_key(*h)).collect();
                if !unknown.is_empty() {
                    let known: Vec<&str> = t.hosts.keys().map(String::as_str).collect();
                    let unknown: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
                    eprintln!(
                        "error: --host {} is not a host of {} (its hosts: {})",
                        unknown.join(", "),
                        input.file.display(),
                        known.join(", ")
                    );
                    return ExitCode::from(2);
                }
                let start = Instant::now();
                let emitted = match emit {
                    Emit::Systemd => emit::emit(t, &hosts),
                    Emit::Nixos => emit::emit_nixos(t, &hosts),
                };
                // Leaked like the topology (see `load`).
                let artifacts: &'static _ = match emitted {
                    Ok(a) => Box::leak(Box::new(a)),
                    Err(e) => return fail(e),
                };
                let emitted = Instant::now();
                let written = match emit::write_tree(artifacts, &out, hosts.is_empty()) {
                    Ok(n) => n,
                    Err(e) => return fail(e),
                };
                if input.timings {
                    let mut timings = c.timings.clone();
                    timings.push(("emit", emitted - start));
                    timings.push(("write", emitted.elapsed()));
                    print_timings(&timings);
                }
                let files: usize = artifacts.hosts.values().map(|h| h.files.len()).sum();
                let total = artifacts.hosts.len();
                eprintln!(
                    "{}: {files} files for {total} hosts ({written} written, {} already up to date)",
                    out.display(),
                    total - written
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

fn print_timings(timings: &[(&str, Duration)]) {
    let line: Vec<String> = timings
        .iter()
        .map(|(stage, d)| format!("{stage} {:.1} ms", d.as_secs_f64() * 1000.0))
        .collect();
    eprintln!("timings: {}", line.join(", "));
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn fail(e: impl miette::Diagnostic + Send + Sync + 'static) -> ExitCode {
    eprintln!("{:?}", miette::Report::new(e));
    ExitCode::from(2)
}

/// Read and compile the topology, or say why it cannot be read.
///
/// The result lives until the process exits and is leaked on purpose: freeing a large topology
/// one allocation at a time took a tenth of `check`'s time on a 10,000-job file, for nothing.
fn load(input: &Input) -> Result<&'static Compiled, ExitCode> {
    let path: &Path = &input.file;
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    if meta.len() > MAX_BYTES as u64 {
        return Err(cannot_read(
            path,
            &format!(
                "it is {} bytes; bkc reads topologies of at most {MAX_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        cannot_read(
            path,
            &format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(Box::leak(Box::new(compile(
        &path.display().to_string(),
        &text,
    ))))
}

fn cannot_read(path: &Path, why: &str) -> ExitCode {
    eprintln!("error: cannot read {}: {why}", path.display());
    ExitCode::from(2)
}

/// Print the diagnostics; true when they fail the command.
fn report(c: &Compiled, input: &Input) -> bool {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let width = if color { 100 } else { 80 };
    eprint!("{}", render(&c.diagnostics, color, width));
    let (errors, warnings) = (c.errors(), c.warnings());
    if errors + warnings > 0 {
        eprintln!(
            "{}: {errors} error{}, {warnings} warning{}",
            input.file.display(),
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    errors > 0 || (input.deny_warnings && warnings > 0)
}
