//! `bkc graph`: draw the chain.

use std::path::PathBuf;
use std::time::Instant;

use clap::ValueEnum;

use bkc::graph::{self, Picture};

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::load::{Input, load, report};
use super::output::{self, print_timings};

#[derive(clap::Args)]
pub struct GraphArgs {
    #[command(flatten)]
    input: Input,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Only what concerns these hosts: a name, or @tag for every host with the tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    /// Draw even when the only errors are circles of waits; the circles are drawn in red.
    #[arg(long)]
    allow_errors: bool,
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

pub fn graph(args: &GraphArgs, v: Verbosity) -> Result<Exit, Exit> {
    let input = &args.input;
    let c = load(&input.file)?;
    let failed = report(c, input, v);
    let t = match (&c.topology, &c.topology_despite_errors) {
        (Some(t), _) if !failed => t,
        (None, Some(t)) if args.allow_errors => {
            eprintln!(
                "drawing despite the errors: the circle{} of waits {} red",
                if c.cycles.len() == 1 { "" } else { "s" },
                if c.cycles.len() == 1 { "is" } else { "are" }
            );
            t
        }
        _ => {
            if args.allow_errors && c.errors() > 0 {
                eprintln!(
                    "error: --allow-errors draws past circles of waits only; fix the other errors first"
                );
            }
            return Err(Exit::Invalid);
        }
    };
    let selected = HostFilter::new(&args.hosts)
        .in_topology(t, &input.file.display().to_string())
        .or_exit(Exit::CouldNotRun)?;
    let start = Instant::now();
    let picture = Picture::new(t, &c.cycles, selected.only());
    let text = match args.format {
        GraphFormat::Text => picture.text(),
        GraphFormat::Dot => picture.dot(),
        GraphFormat::Mermaid => picture.mermaid(),
        GraphFormat::Svg => graph::svg(&picture.dot()).or_exit(Exit::CouldNotRun)?,
    };
    if input.timed(v) {
        let mut timings = c.timings.clone();
        timings.push(("graph", start.elapsed()));
        print_timings(&timings);
    }
    output::to(args.output.as_deref(), &text)?;
    Ok(Exit::Success)
}
