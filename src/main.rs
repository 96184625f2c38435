//! bkc: parse arguments, call the library, print diagnostics, map outcomes to exit codes.
//!
//! Exit codes: 0 success; 1 the topology has errors (or warnings with `--deny-warnings`);
//! 2 bkc could not do its work (unreadable file, unwritable output, bad arguments).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use jiff::tz::TimeZone;

use bkc::analyze::{Compiled, compile};
use bkc::diag::render;
use bkc::emit;
use bkc::graph::{self, GraphError, Picture};
use bkc::simulate::{self, MAX_DAYS};
use bkc::syntax::MAX_BYTES;
use bkc::topology::Topology;

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
        /// Then simulate the next 30 days, print the report and fail if any run would time out.
        #[arg(long)]
        simulate: bool,
    },
    /// Write each host's units, job specs, known_hosts and manifest under OUT/<host>/.
    Build {
        #[command(flatten)]
        input: Input,
        /// Output directory.
        #[arg(short, long, default_value = "out")]
        out: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { input, simulate } => match load(&input) {
            Ok(c) => {
                let failed = report(&c, &input);
                if input.timings {
                    print_timings(&c.timings);
                }
                let Some(t) = c.topology.as_ref().filter(|_| !failed) else {
                    return exit(true);
                };
                eprintln!(
                    "{}: ok, {} hosts, {} jobs, {} derived exclusions",
                    input.file.display(),
                    t.hosts.len(),
                    t.jobs.len(),
                    t.derived.len()
                );
                if simulate {
                    run_simulation(t, None, 30, SimulateFormat::Text, None)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(code) => code,
        },
        Command::Build { input, out, hosts } => match load(&input) {
            Ok(c) => {
                if report(&c, &input) {
                    return ExitCode::from(1);
                }
                let t = c.topology.as_ref().expect("no errors means a topology");
                if let Err(code) = known_hosts(t, &hosts, &input.file) {
                    return code;
                }
                let start = Instant::now();
                let artifacts = match emit::emit(t, &hosts) {
                    Ok(a) => a,
                    Err(e) => return fail(e),
                };
                let emitted = Instant::now();
                let written = match emit::write_tree(&artifacts, &out, hosts.is_empty()) {
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
        Command::Graph {
            input,
            format,
            output,
            hosts,
            allow_errors,
        } => match load(&input) {
            Ok(c) => {
                let failed = report(&c, &input);
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
                if let Err(code) = known_hosts(t, &hosts, &input.file) {
                    return code;
                }
                let start = Instant::now();
                let picture = Picture::new(t, &c.cycles, &hosts);
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
                if input.timings {
                    let mut timings = c.timings.clone();
                    timings.push(("graph", start.elapsed()));
                    print_timings(&timings);
                }
                write_output(&text, output.as_deref())
            }
            Err(code) => code,
        },
        Command::Simulate {
            input,
            days,
            start,
            format,
        } => match load(&input) {
            Ok(c) => {
                if report(&c, &input) {
                    return ExitCode::from(1);
                }
                let t = c.topology.as_ref().expect("no errors means a topology");
                let timings = input.timings.then_some(c.timings.as_slice());
                run_simulation(t, start.as_deref(), days, format, timings)
            }
            Err(code) => code,
        },
    }
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

/// Write `text` to `path`, or to standard output when None. A reader that closes the pipe
/// early (`bkc graph | head`) is not an error.
fn write_output(text: &str, path: Option<&Path>) -> ExitCode {
    use std::io::Write;
    let result = match path {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(format!("cannot write to standard output: {e}"))
                }
                _ => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
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
fn load(input: &Input) -> Result<Compiled, ExitCode> {
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
    Ok(compile(&path.display().to_string(), &text))
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
