//! `bkc simulate`, and the simulation `bkc check --simulate` runs.

use std::time::{Duration, Instant};

use clap::ValueEnum;
use jiff::tz::TimeZone;

use bkc::simulate::{self, MAX_DAYS};
use bkc::topology::Topology;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::load::{Input, valid};
use super::output::{self, print_timings};

const DEFAULT_DAYS: u32 = 30;

#[derive(clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    input: Input,
    #[command(flatten)]
    play: Play,
}

/// What to play and how to show it.
#[derive(clap::Args)]
pub struct Play {
    /// How many days to play.
    #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    days: u32,
    /// The first day, in the local time zone [default: today, from 00:00].
    #[arg(long, value_name = "DATE")]
    start: Option<String>,
    #[arg(long, value_enum, default_value_t = SimulateFormat::Text)]
    format: SimulateFormat,
}

impl Default for Play {
    /// The next 30 days from today, as text.
    fn default() -> Play {
        Play {
            days: DEFAULT_DAYS,
            start: None,
            format: SimulateFormat::Text,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SimulateFormat {
    Text,
    Json,
}

pub fn simulate(args: &SimulateArgs, v: Verbosity) -> Result<Exit, Exit> {
    let (c, t) = valid(&args.input, v)?;
    let timings = args.input.timed(v).then_some(c.timings.as_slice());
    run(t, &args.play, timings)
}

/// Simulate, print the report to standard output and warnings to standard error; a run that
/// would time out fails. With `timings` (the earlier stages'), print them and the simulation's.
pub fn run(
    t: &Topology,
    play: &Play,
    timings: Option<&[(&'static str, Duration)]>,
) -> Result<Exit, Exit> {
    let began = Instant::now();
    let tz = TimeZone::system();
    let report = simulate::start_at(play.start.as_deref(), &tz)
        .and_then(|s| simulate::simulate(t, &s, play.days))
        .or_exit(Exit::CouldNotRun)?;
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
    let text = match play.format {
        SimulateFormat::Text => report.text(),
        SimulateFormat::Json => report.json(),
    };
    output::stdout(text.as_bytes())?;
    Ok(Exit::WouldTimeOut.when(report.failures() > 0))
}
