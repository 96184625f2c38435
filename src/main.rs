//! bkc: parse arguments, call the library, print diagnostics, map outcomes to exit codes.
//!
//! Exit codes: 0 success; 1 the topology has errors (or warnings with `--deny-warnings`);
//! 2 bkc could not do its work (unreadable file, unwritable output, bad arguments).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use jiff::tz::TimeZone;

mod deploy_cli;

use bkc::analyze::{Compiled, compile};
use bkc::deploy::fleet;
use bkc::diag::{Diagnostic, Diagnostics, render};
use bkc::emit;
use bkc::graph::{self, GraphError, Picture};
use bkc::simulate::{self, MAX_DAYS};
use bkc::syntax::MAX_BYTES;
use bkc::topology::Topology;
use deploy_cli::{apply, plan, rollback, run_job, status};

const EXAMPLES: &str = "\
Examples:
  bkc init                                  write a commented starter bkc.kdl
  bkc check                                 check ./bkc.kdl, report every mistake
  bkc build -o out                          write out/<host>/... for every host
  bkc fmt --check                           fail (for CI) when bkc.kdl is not formatted
  bkc plan                                  show what `bkc apply` would change on every host
  bkc apply                                 put the topology on every host (asks first)
  bkc status                                every job of the fleet: last run, result, next run
  bkc import rsyncdirector desktop=desktop.yaml backup_a=backup_a.yaml -o bkc.kdl
  bkc completions bash > /etc/bash_completion.d/bkc";

#[derive(Parser)]
#[command(
    name = "bkc",
    version,
    about = "Compile a KDL backup topology into systemd units and job specs for every host",
    after_help = EXAMPLES
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
    #[command(after_help = "Examples:\n  bkc check\n  bkc check site.kdl --deny-warnings")]
    Check {
        #[command(flatten)]
        input: Input,
        /// Then simulate the next 30 days, print the report and fail if any run would time out.
        #[arg(long)]
        simulate: bool,
    },
    /// Write each host's units, job specs, known_hosts and manifest under OUT/<host>/, or each
    /// host's NixOS module (--emit nixos).
    #[command(
        after_help = "Examples:\n  bkc build -o out\n  bkc build site.kdl -o out --host desktop"
    )]
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
    /// Draw the chain: hosts, the data each job moves, and which jobs wait on which.
    Graph {
        #[command(flatten)]
        input: Input,
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only what concerns these hosts (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Draw even when the only errors are circles of waits; the circles are drawn in red.
        #[arg(long)]
        allow_errors: bool,
    },
    /// Play every job's schedule against the others' and report waits and timeouts; exit 1 if
    /// any run would time out.
    Simulate {
        #[command(flatten)]
        input: Input,
        /// How many days to play.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
        days: u32,
        /// The first day, in the local time zone [default: today, from 00:00].
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        #[arg(long, value_enum, default_value_t = SimulateFormat::Text)]
        format: SimulateFormat,
    },
    /// Write a commented starter topology.
    #[command(after_help = "Examples:\n  bkc init\n  bkc init --example pull-server -o site.kdl")]
    Init {
        /// Which example to start from.
        #[arg(long, value_enum, default_value_t = Example::SeedChain)]
        example: Example,
        /// Where to write it.
        #[arg(short, long, default_value = "bkc.kdl")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Rewrite a topology in the canonical layout, keeping every comment.
    #[command(after_help = "Examples:\n  bkc fmt\n  bkc fmt site.kdl --check")]
    Fmt {
        /// The topology file.
        #[arg(default_value = "bkc.kdl")]
        file: PathBuf,
        /// Change nothing; exit 1 if the file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Turn another tool's configuration into a topology.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Show what `bkc apply` would change on each host, with diffs and drift.
    #[command(
        after_help = "Examples:\n  bkc plan\n  bkc plan site.kdl --host @offsite -o plan.json\n  bkc plan --detailed-exitcode   (0 no changes, 1 error, 2 changes)"
    )]
    Plan {
        /// The topology file.
        #[arg(default_value = "bkc.kdl")]
        file: PathBuf,
        /// Only these hosts: a name, or @tag for every host with the tag (repeatable).
        #[arg(long = "host", value_name = "NAME|@TAG")]
        hosts: Vec<String>,
        /// Save the plan, for `bkc apply FILE.json`.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 with no changes, 1 on an error, 2 with changes.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Put the topology (or a saved plan) on the hosts: stage, then switch each host whole.
    #[command(
        after_help = "Examples:\n  bkc apply\n  bkc apply --yes --host desktop\n  bkc apply plan.json"
    )]
    Apply {
        /// The topology file, or a plan saved by `bkc plan -o` (a .json file).
        #[arg(default_value = "bkc.kdl")]
        file: PathBuf,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Only these hosts: a name, or @tag (repeatable).
        #[arg(long = "host", value_name = "NAME|@TAG")]
        hosts: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Put a host back on the files of a kept generation.
    #[command(after_help = "Examples:\n  bkc rollback desktop\n  bkc rollback desktop --to 3")]
    Rollback {
        /// The host.
        host: String,
        /// The topology file (for how to reach the host).
        #[arg(default_value = "bkc.kdl")]
        file: PathBuf,
        /// The generation to go back to (default: the one before the current one).
        #[arg(long, value_name = "N")]
        to: Option<u64>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Every job of the fleet: its host, last run, result, next run, and whether its lock is held.
    #[command(after_help = "Examples:\n  bkc status\n  bkc status site.kdl --json")]
    Status {
        /// The topology file.
        #[arg(default_value = "bkc.kdl")]
        file: PathBuf,
        /// Only these hosts: a name, or @tag (repeatable).
        #[arg(long = "host", value_name = "NAME|@TAG")]
        hosts: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Start a job now on its host.
    #[command(after_help = "Examples:\n  bkc run desktop-to-a\n  bkc run a-to-b --wait")]
    Run {
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
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  bkc completions bash > /etc/bash_completion.d/bkc\n  bkc completions zsh > ~/.zfunc/_bkc\n  bkc completions fish > ~/.config/fish/completions/bkc.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  bkc man > /usr/local/share/man/man1/bkc.1")]
    Man,
}

/// How the deploy commands reach hosts.
#[derive(clap::Args)]
struct Remote {
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
    fn options(&self) -> fleet::Options {
        fleet::Options {
            jobs: usize::from(self.jobs),
            ssh_config: self
                .ssh_config
                .clone()
                .or_else(|| std::env::var_os("BKC_SSH_CONFIG").map(PathBuf::from)),
            ssh_options: self.ssh_options.clone(),
        }
    }
}

#[derive(Subcommand)]
enum ImportFrom {
    /// Per-host rsync-director (backupmanager) YAML configs: one HOST=FILE per host.
    #[command(
        after_help = "Examples:\n  bkc import rsyncdirector desktop=desktop.yaml backup_a=backup_a.yaml -o bkc.kdl\n  bkc import rsyncdirector nas=nas.yaml --address backup_a=10.0.0.5"
    )]
    Rsyncdirector {
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
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Example {
    /// A desktop backs up to a server, which copies everything offsite.
    SeedChain,
    /// A backup server pulls three machines into snapshots.
    PullServer,
}

fn valid_name(n: &str) -> bool {
    n.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
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
        Some((n, a)) if valid_name(n) && !a.is_empty() && !a.contains(['@', ' ']) => {
            Ok((n.to_string(), a.to_string()))
        }
        _ => Err("write NAME=ADDRESS, such as backup_a=backup-a.example.com".into()),
    }
}

/// How much to print, from the global flags.
#[derive(Clone, Copy)]
struct Verbosity {
    quiet: bool,
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// A tree for the terminal.
    Text,
    /// Graphviz source.
    Dot,
    /// A Mermaid flowchart, for Markdown viewers.
    Mermaid,
    /// SVG drawn by Graphviz's `dot` (which must be installed).
    Svg,
}

#[derive(Clone, Copy, ValueEnum)]
enum SimulateFormat {
    Text,
    Json,
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
    let v = Verbosity {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Check { input, simulate } => check(&input, simulate, v),
        Command::Graph {
            input,
            format,
            output,
            hosts,
            allow_errors,
        } => graph_cmd(&input, format, output.as_deref(), &hosts, allow_errors, v),
        Command::Simulate {
            input,
            days,
            start,
            format,
        } => simulate_cmd(&input, days, start.as_deref(), format, v),
        Command::Build {
            input,
            out,
            emit,
            hosts,
        } => build(&input, &out, emit, &hosts, v),
        Command::Init {
            example,
            out,
            force,
        } => init(example, &out, force, v),
        Command::Fmt { file, check } => fmt(&file, check, v),
        Command::Import {
            from:
                ImportFrom::Rsyncdirector {
                    configs,
                    addresses,
                    out,
                    force,
                },
        } => import(&configs, &addresses, out.as_deref(), force, v),
        Command::Plan {
            file,
            hosts,
            out,
            detailed_exitcode,
            json,
            remote,
        } => plan(
            &file,
            &hosts,
            out.as_deref(),
            detailed_exitcode,
            json,
            &remote,
            v,
        ),
        Command::Apply {
            file,
            yes,
            hosts,
            remote,
        } => apply(&file, yes, &hosts, &remote, v),
        Command::Rollback {
            host,
            file,
            to,
            yes,
            remote,
        } => rollback(&host, &file, to, yes, &remote, v),
        Command::Status {
            file,
            hosts,
            json,
            remote,
        } => status(&file, &hosts, json, &remote, v),
        Command::Run {
            job,
            file,
            wait,
            remote,
        } => run_job(&job, &file, wait, &remote, v),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bkc", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(Cli::command()).render(&mut page) {
                Ok(()) => emit_stdout(&page),
                Err(e) => {
                    eprintln!("error: cannot render the manual page: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Write a result to standard output; a closed pipe (`bkc man | head`) is not an error worth a
/// message, but still not a success.
fn emit_stdout(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(input: &Input, simulate: bool, v: Verbosity) -> ExitCode {
    let c = match load(input) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let failed = report(c, input, v);
    if input.timings || v.verbose {
        print_timings(&c.timings);
    }
    let Some(t) = c.topology.as_ref().filter(|_| !failed) else {
        return exit(true);
    };
    if !v.quiet {
        eprintln!(
            "{}: ok, {} hosts, {} jobs, {} derived exclusions",
            input.file.display(),
            t.hosts.len(),
            t.jobs.len(),
            t.derived.len()
        );
    }
    if simulate {
        run_simulation(t, None, 30, SimulateFormat::Text, None)
    } else {
        ExitCode::SUCCESS
    }
}

fn graph_cmd(
    input: &Input,
    format: GraphFormat,
    output: Option<&Path>,
    hosts: &[String],
    allow_errors: bool,
    v: Verbosity,
) -> ExitCode {
    let c = match load(input) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let failed = report(c, input, v);
    let t = match (&c.topology, &c.topology_despite_errors) {
        (Some(t), _) if !failed => t,
        (None, Some(t)) if allow_errors => {
            eprintln!(
                "drawing despite the errors: the circle{} of waits {} red",
                if c.cycles.len() == 1 { "" } else { "s" },
                if c.cycles.len() == 1 { "is" } else { "are" }
            );
            t
        }
        _ => {
            if allow_errors && c.errors() > 0 {
                eprintln!(
                    "error: --allow-errors draws past circles of waits only; fix the other errors first"
                );
            }
            return ExitCode::from(1);
        }
    };
    if let Err(code) = known_hosts(t, hosts, &input.file) {
        return code;
    }
    let start = Instant::now();
    let picture = Picture::new(t, &c.cycles, hosts);
    let text = match format {
        GraphFormat::Text => picture.text(),
        GraphFormat::Dot => picture.dot(),
        GraphFormat::Mermaid => picture.mermaid(),
        GraphFormat::Svg => match graph::svg(&picture.dot()) {
            Ok(svg) => svg,
            Err(e @ GraphError::NoGraphviz) | Err(e @ GraphError::Graphviz(_)) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if input.timings || v.verbose {
        let mut timings = c.timings.clone();
        timings.push(("graph", start.elapsed()));
        print_timings(&timings);
    }
    write_output(&text, output)
}

fn simulate_cmd(
    input: &Input,
    days: u32,
    start: Option<&str>,
    format: SimulateFormat,
    v: Verbosity,
) -> ExitCode {
    let c = match load(input) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if report(c, input, v) {
        return ExitCode::from(1);
    }
    let t = c.topology.as_ref().expect("no errors means a topology");
    let timings = (input.timings || v.verbose).then_some(c.timings.as_slice());
    run_simulation(t, start, days, format, timings)
}

/// Simulate, print the report to standard output and warnings to standard error; exit 1 when
/// a run would time out. With `timings` (the earlier stages'), print them and the simulation's.
fn run_simulation(
    t: &Topology,
    start: Option<&str>,
    days: u32,
    format: SimulateFormat,
    timings: Option<&[(&'static str, Duration)]>,
) -> ExitCode {
    let began = Instant::now();
    let tz = TimeZone::system();
    let report = match simulate::start_at(start, &tz).and_then(|s| simulate::simulate(t, &s, days))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for job in report.assumed_durations() {
        eprintln!(
            "warning: job `{job}` has no expected-duration; the simulation assumes a run takes {}",
            bkc::schedule::format_duration(simulate::DEFAULT_DURATION_SECS)
        );
    }
    if let Some(earlier) = timings {
        let mut all = earlier.to_vec();
        all.push(("simulate", began.elapsed()));
        print_timings(&all);
    }
    let text = match format {
        SimulateFormat::Text => report.text(),
        SimulateFormat::Json => report.json(),
    };
    let written = write_output(&text, None);
    if written != ExitCode::SUCCESS {
        return written;
    }
    exit(report.failures() > 0)
}

/// Refuse `--host` names that are not hosts of the topology.
fn known_hosts(t: &Topology, hosts: &[String], file: &Path) -> Result<(), ExitCode> {
    let unknown: Vec<&str> = hosts
        .iter()
        .filter(|h| !t.hosts.contains_key(*h))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let known: Vec<&str> = t.hosts.keys().map(String::as_str).collect();
    eprintln!(
        "error: --host {} is not a host of {} (its hosts: {})",
        unknown.join(", "),
        file.display(),
        known.join(", ")
    );
    Err(ExitCode::from(2))
}

/// Write `text` to `path`, or to standard output when None.
fn write_output(text: &str, path: Option<&Path>) -> ExitCode {
    match path {
        Some(p) => match std::fs::write(p, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", p.display());
                ExitCode::from(2)
            }
        },
        None => emit_stdout(text.as_bytes()),
    }
}

fn build(input: &Input, out: &Path, emit: Emit, hosts: &[String], v: Verbosity) -> ExitCode {
    let c = match load(input) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if report(c, input, v) {
        return ExitCode::from(1);
    }
    let t = c.topology.as_ref().expect("no errors means a topology");
    if let Err(code) = known_hosts(t, hosts, &input.file) {
        return code;
    }
    let start = Instant::now();
    let emitted = match emit {
        Emit::Systemd => emit::emit(t, hosts),
        Emit::Nixos => emit::emit_nixos(t, hosts),
    };
    // Leaked like the topology (see `load`).
    let artifacts: &'static _ = match emitted {
        Ok(a) => Box::leak(Box::new(a)),
        Err(e) => return fail(e),
    };
    let emitted = Instant::now();
    let written = match emit::write_tree(artifacts, out, hosts.is_empty()) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    if input.timings || v.verbose {
        let mut timings = c.timings.clone();
        timings.push(("emit", emitted - start));
        timings.push(("write", emitted.elapsed()));
        print_timings(&timings);
    }
    if !v.quiet {
        let files: usize = artifacts.hosts.values().map(|h| h.files.len()).sum();
        let total = artifacts.hosts.len();
        eprintln!(
            "{}: {files} files for {total} hosts ({written} written, {} already up to date)",
            out.display(),
            total - written
        );
    }
    ExitCode::SUCCESS
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

/// Read a text file of at most [`MAX_BYTES`], or say why it cannot be read (exit code 2).
fn read_text(path: &Path) -> Result<String, ExitCode> {
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    if meta.len() > MAX_BYTES as u64 {
        return Err(cannot_read(
            path,
            &format!(
                "it is {} bytes; bkc reads files of at most {MAX_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        cannot_read(
            path,
            &format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Read and compile the topology, or say why it cannot be read.
///
/// The result lives until the process exits and is leaked on purpose: freeing a large topology
/// one allocation at a time took a tenth of `check`'s time on a 10,000-job file, for nothing.
fn load(input: &Input) -> Result<&'static Compiled, ExitCode> {
    let text = read_text(&input.file)?;
    Ok(Box::leak(Box::new(compile(
        &input.file.display().to_string(),
        &text,
    ))))
}

fn cannot_read(path: &Path, why: &str) -> ExitCode {
    eprintln!("error: cannot read {}: {why}", path.display());
    ExitCode::from(2)
}

/// Print diagnostics as bkc does everywhere: colour only on a terminal and never with NO_COLOR,
/// warnings left out with -q.
fn print_diagnostics(diags: &[Diagnostic], v: Verbosity) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let width = if color { 100 } else { 80 };
    let shown: Vec<Diagnostic> = diags
        .iter()
        .filter(|d| d.is_error() || !v.quiet)
        .cloned()
        .collect();
    eprint!("{}", render(&shown, color, width));
}

/// "FILE: 1 error, 2 warnings", when there is anything to count.
fn print_counts(file: &str, diags: &[Diagnostic], v: Verbosity) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors > 0 || (warnings > 0 && !v.quiet) {
        eprintln!(
            "{file}: {errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
}

/// Print the diagnostics; true when they fail the command.
fn report(c: &Compiled, input: &Input, v: Verbosity) -> bool {
    print_diagnostics(&c.diagnostics, v);
    print_counts(&input.file.display().to_string(), &c.diagnostics, v);
    c.errors() > 0 || (input.deny_warnings && c.warnings() > 0)
}

/// Write `text` to `path` whole (a temporary file renamed over it), refusing to replace an
/// existing file unless `force`.
fn write_new(path: &Path, text: &str, force: bool) -> Result<(), ExitCode> {
    if !force && path.exists() {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            path.display()
        );
        return Err(ExitCode::from(2));
    }
    replace(path, text)
}

fn replace(path: &Path, text: &str) -> Result<(), ExitCode> {
    let name = path
        .file_name()
        .map_or_else(|| "bkc".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.bkc-tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::from(2)
        })
}

fn init(example: Example, out: &Path, force: bool, v: Verbosity) -> ExitCode {
    let (name, body) = match example {
        Example::SeedChain => ("seed-chain", include_str!("../examples/seed-chain.kdl")),
        Example::PullServer => ("pull-server", include_str!("../examples/pull-server.kdl")),
    };
    let text = format!(
        "// A starter topology from `bkc init` (the {name} example). Replace the hosts, addresses\n\
         // and host keys with your own (`ssh-keyscan -t ed25519 HOST` prints a host's key), then run\n\
         // `bkc check` and `bkc build -o out`. docs/SCHEMA.md describes every node.\n\n{body}"
    );
    if let Err(code) = write_new(out, &text, force) {
        return code;
    }
    if !v.quiet {
        eprintln!(
            "wrote {} (the {name} example); next: `bkc check {}`",
            out.display(),
            out.display()
        );
    }
    ExitCode::SUCCESS
}

fn fmt(path: &Path, check: bool, v: Verbosity) -> ExitCode {
    let text = match read_text(path) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let name = path.display().to_string();
    let mut d = Diagnostics::default();
    let Some(doc) = bkc::syntax::document(&text, &mut d) else {
        let source = bkc::diag::Source::new(&name, std::sync::Arc::<str>::from(text.as_str()));
        let diags = d.finish(&source);
        print_diagnostics(&diags, v);
        print_counts(&name, &diags, v);
        eprintln!("{name}: not formatted: fix the syntax errors first");
        return ExitCode::from(1);
    };
    let formatted = bkc::fmt::format(&doc);
    // Never write a file whose meaning changed: formatting must only move whitespace and comments.
    let same = formatted
        .parse::<kdl::KdlDocument>()
        .is_ok_and(|f| bkc::fmt::same_meaning(&doc, &f));
    if !same {
        eprintln!(
            "error: bkc fmt could not format {name} without changing it; the file is left as it is"
        );
        return ExitCode::from(2);
    }
    if formatted == text {
        if v.verbose {
            eprintln!("{name}: already formatted");
        }
        return ExitCode::SUCCESS;
    }
    if check {
        let diff = similar::TextDiff::from_lines(&text, &formatted);
        eprint!(
            "{}",
            diff.unified_diff()
                .context_radius(1)
                .header(&name, &format!("{name} (formatted)"))
        );
        eprintln!("{name}: not formatted; run `bkc fmt {name}`");
        return ExitCode::from(1);
    }
    if let Err(code) = replace(path, &formatted) {
        return code;
    }
    if !v.quiet {
        eprintln!("{name}: formatted");
    }
    ExitCode::SUCCESS
}

fn import(
    configs: &[(String, PathBuf)],
    addresses: &[(String, String)],
    out: Option<&Path>,
    force: bool,
    v: Verbosity,
) -> ExitCode {
    let mut hosts: Vec<&str> = Vec::new();
    let mut inputs = Vec::new();
    for (host, file) in configs {
        if hosts.contains(&host.as_str()) {
            eprintln!("error: host `{host}` is given twice; import one config per host");
            return ExitCode::from(2);
        }
        hosts.push(host);
        let text = match read_text(file) {
            Ok(t) => t,
            Err(code) => return code,
        };
        inputs.push(bkc::import::Config {
            host: host.clone(),
            file: file.display().to_string(),
            text,
        });
    }
    let start = Instant::now();
    let imported = bkc::import::rsyncdirector(&inputs, addresses);
    print_diagnostics(&imported.diagnostics, v);
    let files: Vec<&str> = inputs.iter().map(|c| c.file.as_str()).collect();
    print_counts(&files.join(", "), &imported.diagnostics, v);
    let Some(kdl) = imported.kdl else {
        return ExitCode::from(1);
    };
    // The promise is a topology that passes `bkc check`; hold the import to it.
    let target = out.map_or_else(|| "<stdout>".to_string(), |p| p.display().to_string());
    let c = compile(&target, &kdl);
    if c.errors() > 0 {
        print_diagnostics(&c.diagnostics, v);
        eprintln!("error: the imported topology does not pass `bkc check`; nothing was written");
        return ExitCode::from(1);
    }
    if v.verbose {
        print_timings(&[("import", start.elapsed())]);
    }
    match out {
        None => emit_stdout(kdl.as_bytes()),
        Some(path) => {
            if let Err(code) = write_new(path, &kdl, force) {
                return code;
            }
            if !v.quiet {
                let t = c.topology.as_ref().expect("no errors means a topology");
                eprintln!(
                    "wrote {}: {} hosts, {} jobs; next: `bkc check {}`",
                    path.display(),
                    t.hosts.len(),
                    t.jobs.len(),
                    path.display()
                );
            }
            ExitCode::SUCCESS
        }
    }
}
