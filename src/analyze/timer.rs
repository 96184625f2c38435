//! A job's schedule -> its systemd timer.

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::schedule::{Calendar, cron_to_calendar, format_duration, parse_duration};
use crate::spec::{Interval, ScheduledVerify};
use crate::syntax::ast;
use crate::topology::Timer;

use super::Ctx;

/// The words systemd accepts alone as a calendar (systemd.time(7)).
const SHORTHANDS: &[&str] = &[
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "quarterly",
    "semiannually",
    "yearly",
    "annually",
];

/// The timer (None for a job that only runs when started by hand) and, for `every`, the interval
/// the runner enforces.
pub(crate) fn timer(cx: &mut Ctx, j: &ast::Job) -> (Option<Timer>, Option<Interval>) {
    let mut on_calendar = Vec::new();
    let mut describe = Vec::new();
    for s in &j.schedules {
        if let Some(cal) = schedule(cx, s) {
            on_calendar.push(s.value.trim().to_string());
            describe.push(cal.describe());
        }
    }
    for c in &j.crons {
        match cron_to_calendar(&c.value) {
            Ok(lines) => {
                on_calendar.extend(lines);
                describe.push(format!("cron {}", c.value.trim()));
            }
            Err(e) => cx.schedule_error(Code::InvalidCron, c, e),
        }
    }
    let mut interval = None;
    if let Some(every) = &j.every
        && let Some((calendar, iv)) = every_interval(cx, j, every)
    {
        on_calendar.push(calendar.to_string());
        describe.push(format!("every {}", format_duration(iv.secs)));
        interval = Some(iv);
    }
    if on_calendar.is_empty() {
        return (None, interval);
    }
    let random_delay_secs = j
        .random_delay
        .as_ref()
        .and_then(|v| cx.duration(v, true))
        .filter(|v| *v > 0);
    let accuracy_secs = j.accuracy.as_ref().and_then(|v| cx.duration(v, false));
    let timer = Timer {
        on_calendar,
        describe: describe.join(", "),
        persistent: j.persistent.as_ref().is_none_or(|p| p.value),
        random_delay_secs,
        accuracy_secs,
    };
    (Some(timer), interval)
}

/// `verify "weekly" checksum=#true`: its calendar, checked as a `schedule` is.
pub(crate) fn verify(cx: &mut Ctx, v: &ast::Verify) -> Option<ScheduledVerify> {
    schedule(cx, &v.calendar)?;
    Some(ScheduledVerify {
        calendar: v.calendar.value.trim().to_string(),
        checksum: v.checksum.as_ref().is_some_and(|c| c.value),
    })
}

/// A `schedule` that parses and fires again.
fn schedule(cx: &mut Ctx, s: &ast::Str) -> Option<Calendar> {
    let word = s.value.trim();
    if !word.is_empty()
        && word.bytes().all(|c| c.is_ascii_alphabetic())
        && Calendar::parse(word).is_err()
    {
        // A lone word can only be a shorthand; say which one was meant rather than what
        // the full syntax expected at its first letter.
        let help = match did_you_mean(&word.to_ascii_lowercase(), SHORTHANDS.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("the shorthands are: {}", SHORTHANDS.join(", ")),
        };
        cx.push(
            Diagnostic::error(
                Code::InvalidCalendar,
                format!("`{word}` is not a calendar shorthand"),
            )
            .label(s.span, "unknown shorthand")
            .help(help),
        );
        return None;
    }
    match Calendar::parse(&s.value) {
        Ok(cal)
            if cal
                .next_after(jiff::Timestamp::now(), &jiff::tz::TimeZone::system())
                .is_none() =>
        {
            cx.push(
                Diagnostic::error(Code::NeverFires, format!("`{}` never elapses again", s.value.trim()))
                    .label(s.span, "no future time matches")
                    .help("a date that does not exist (such as *-02-30) or lies in the past never starts the job; check the day and month"),
            );
            None
        }
        Ok(cal) => Some(cal),
        Err(e) => {
            cx.schedule_error(Code::InvalidCalendar, s, e);
            None
        }
    }
}

/// `every`: the calendar that wakes the runner, and the interval the runner enforces.
fn every_interval(
    cx: &mut Ctx,
    j: &ast::Job,
    every: &ast::Str,
) -> Option<(&'static str, Interval)> {
    if let Some(first) = j.schedules.first().or(j.crons.first()) {
        cx.push(
            Diagnostic::error(
                Code::ConflictingSchedule,
                "`every` cannot be combined with `schedule` or `cron`",
            )
            .label(every.span, "an interval here")
            .also(first.span, "and a calendar here")
            .help("keep one: `every \"4d\"` for a true interval, or calendar times"),
        );
        return None;
    }
    match parse_duration(&every.value, false) {
        Ok(secs) if secs >= 3600 => {
            // A daily (or hourly) persistent timer asks the runner; the runner runs only
            // when the last success is old enough. This survives reboots and never
            // restarts each month the way `*/4` in a day field does.
            let period = if secs >= 86400 { 86400 } else { 3600 };
            let calendar = if period == 86400 { "daily" } else { "hourly" };
            Some((
                calendar,
                Interval {
                    secs,
                    slack_secs: period / 2,
                },
            ))
        }
        Ok(_) => {
            cx.push(
                Diagnostic::error(
                    Code::InvalidDuration,
                    "`every` needs an interval of at least 1h",
                )
                .label(every.span, "too short")
                .help("for runs more often than hourly use a calendar: schedule \"*:0/15\""),
            );
            None
        }
        Err(e) => {
            cx.schedule_error(Code::InvalidDuration, every, e);
            None
        }
    }
}
