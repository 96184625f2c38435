//! How old a job's last success may get before the job counts as stale: its `alert-after`, or
//! a limit derived from its schedule. `bkc status --check`, the freshness units on the
//! destinations and the Prometheus rules all use this one number.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Ctx;
use crate::schedule::Calendar;
use crate::spec::Interval;
use crate::syntax::ast;
use crate::topology::{Freshness, FreshnessRule, Timer};

/// What a run is given when the job has no `timeout`: a run in progress must not make the
/// job look stale the moment its period has passed twice.
pub(crate) const RUN_ALLOWANCE_SECS: u64 = 3600;

/// The schedule's gaps are measured from this fixed time, so the derived value (written into
/// files) never depends on the day bkc runs.
const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// Elapses looked at: enough for a year of daily runs, and bounded for minutely ones.
const MAX_ELAPSES: usize = 1000;

pub(crate) fn freshness(
    cx: &mut Ctx,
    j: &ast::Job,
    timer: Option<&Timer>,
    every: Option<&Interval>,
    timeout_secs: Option<u64>,
) -> Option<Freshness> {
    if let Some(v) = &j.alert_after {
        return cx.duration(v, false).map(|secs| Freshness {
            alert_after_secs: secs,
            rule: None,
        });
    }
    let timer = timer?;
    let period_secs = match every {
        // The runner starts an `every` job when the interval less the slack has passed, at the
        // next firing of a timer that fires every twice the slack.
        Some(iv) => iv.secs + 2 * iv.slack_secs,
        None => *cx
            .gaps
            .entry(timer.on_calendar.clone())
            .or_insert_with(|| longest_gap(&timer.on_calendar))
            .as_ref()?,
    };
    let delay_secs = timer.random_delay_secs.unwrap_or(0);
    let run_secs = timeout_secs.unwrap_or(RUN_ALLOWANCE_SECS);
    Some(Freshness {
        alert_after_secs: 2 * period_secs + delay_secs + run_secs,
        rule: Some(FreshnessRule {
            period_secs,
            delay_secs,
            run_secs,
            run_is_timeout: timeout_secs.is_some(),
        }),
    })
}

/// The longest time between two consecutive elapses of any of `lines` (systemd fires when
/// any of them elapses), in UTC, from [`BASE`] on.
pub(crate) fn longest_gap(lines: &[String]) -> Option<u64> {
    let cals: Vec<Calendar> = lines
        .iter()
        .filter_map(|l| Calendar::parse(l).ok())
        .collect();
    let utc = TimeZone::UTC;
    let base = Timestamp::from_second(BASE).ok()?;
    // Four years, so a yearly schedule (or 29 February) shows its real gap.
    let end = base.as_second() + 4 * 366 * 86_400;
    let mut t = base;
    let mut last: Option<i64> = None;
    let mut longest: i64 = 0;
    for _ in 0..MAX_ELAPSES {
        let Some(next) = cals.iter().filter_map(|c| c.next_after(t, &utc)).min() else {
            break;
        };
        let s = next.as_second();
        if let Some(prev) = last {
            longest = longest.max(s - prev);
        }
        if s > end {
            break;
        }
        last = Some(s);
        t = next;
    }
    u64::try_from(longest).ok().filter(|g| *g > 0)
}

#[cfg(test)]
mod tests {
    use super::longest_gap;

    fn gap(lines: &[&str]) -> Option<u64> {
        longest_gap(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn gaps_of_common_schedules() {
        assert_eq!(gap(&["daily"]), Some(86_400));
        assert_eq!(gap(&["hourly"]), Some(3600));
        assert_eq!(gap(&["weekly"]), Some(7 * 86_400));
        assert_eq!(gap(&["Mon..Fri 02:00"]), Some(3 * 86_400));
        // Twice a day, unevenly: the longer gap counts.
        assert_eq!(gap(&["*-*-* 02:00", "*-*-* 06:00"]), Some(20 * 3600));
        // The 1st, 5th, ... of each month; systemd 252 skips the 1st of January after the
        // 29th of December (checked with `systemd-analyze calendar`), a gap of a week.
        assert_eq!(gap(&["*-*-01/4 03:00"]), Some(7 * 86_400));
        assert_eq!(gap(&["yearly"]), Some(366 * 86_400));
        assert_eq!(gap(&[]), None);
    }
}
