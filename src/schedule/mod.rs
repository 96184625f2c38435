//! The schedule language of bkc: cron expressions, systemd calendar expressions, time spans and
//! rsync bandwidth limits.
//!
//! Everything here is self-contained and pure (apart from reading time zone files, as systemd
//! does), so the analyzer can check a topology without a systemd at hand, and the emitter can
//! write `OnCalendar=` lines that systemd will read exactly the way we did.
//!
//! - [`cron_to_calendar`] turns a 5-field cron line into equivalent `OnCalendar=` expressions.
//! - [`Calendar`] parses, normalizes and evaluates `OnCalendar=` expressions like systemd 252.
//! - [`parse_duration`] / [`format_duration`] handle systemd time spans.
//! - [`parse_size`] checks an rsync `--bwlimit` value.

mod calendar;
mod cron;
mod duration;

pub use calendar::Calendar;
pub use cron::cron_to_calendar;
pub use duration::{format_duration, parse_duration, parse_size};

use std::fmt;
use std::ops::Range;

/// An error in a schedule/duration/size string, with the byte range inside the string that is
/// wrong (None = the whole string) and a help line that says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub message: String,
    pub range: Option<Range<usize>>,
    pub help: String,
}

impl ScheduleError {
    pub(crate) fn new(
        message: impl Into<String>,
        range: Option<Range<usize>>,
        help: impl Into<String>,
    ) -> ScheduleError {
        ScheduleError {
            message: message.into(),
            range,
            help: help.into(),
        }
    }

    /// An error about `range` of the input.
    pub(crate) fn at(
        range: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ScheduleError {
        ScheduleError::new(message, Some(range), help)
    }

    /// An error about the input as a whole.
    pub(crate) fn whole(message: impl Into<String>, help: impl Into<String>) -> ScheduleError {
        ScheduleError::new(message, None, help)
    }
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScheduleError {}
