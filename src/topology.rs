//! The validated topology: what `analyze` produces and everything after it consumes.
//!
//! A [`Topology`] exists only when the file had no errors: every name resolves, every schedule
//! is translated, every lock is derived. Its fields are public to read; outside this crate it
//! cannot be built (`non_exhaustive`), and inside it only `analyze` builds one, so no later
//! stage can meet an unchecked value.

use std::collections::BTreeMap;

use crate::schedule::{Calendar, format_duration};
use crate::spec::JobSpec;

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Topology {
    pub hosts: BTreeMap<String, Host>,
    pub jobs: BTreeMap<String, Job>,
    /// Exclusions bkc added because two jobs touch the same data and the file did not relate them.
    pub derived: Vec<Derived>,
    /// How runners authenticate to the hosts they reach.
    pub ssh_keys: SshKeys,
}

/// `defaults { ssh-keys ... }`: how runners authenticate to the hosts they reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshKeys {
    /// Every job that reaches another host has a key of its own, and every host it reaches
    /// lets that key run only `bkc-run serve <job>` (docs/SECURITY.md).
    Restricted,
    /// Every runner uses the one `identity` of `defaults`, with whatever the far side allows
    /// it: the way before restricted keys, for moving in.
    Operator,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub host_keys: Vec<String>,
    pub tags: Vec<String>,
    pub lock_dir: String,
    /// `max-parallel`: at most this many of the host's jobs run at once; none for no limit.
    pub max_parallel: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub host: String,
    pub description: Option<String>,
    pub timer: Option<Timer>,
    pub service: Service,
    /// What `bkc-run` reads on the host.
    pub spec: JobSpec,
    /// Jobs this one waits on: written in the file, or derived.
    pub blocks_on: Vec<Relation>,
    /// For planning tools (`simulate`): how long a run is expected to take, in seconds.
    pub expected_duration: Option<u64>,
    /// How old the last success may get before the job is stale; None for a job started only
    /// by hand that gives no `alert-after`.
    pub freshness: Option<Freshness>,
    /// With restricted keys, the job's own SSH key; none when it reaches no other host.
    pub key: Option<JobKey>,
}

/// A job's `alert-after`, as written or derived from its schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub alert_after_secs: u64,
    /// How the value was derived; None when the file gives `alert-after`.
    pub rule: Option<FreshnessRule>,
}

/// The parts of a derived `alert-after`: twice the period, plus the random delay, plus the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshnessRule {
    /// The longest time between two runs the schedule starts.
    pub period_secs: u64,
    pub delay_secs: u64,
    /// The job's `timeout`, or an hour when it has none (`run_is_timeout` false).
    pub run_secs: u64,
    pub run_is_timeout: bool,
}

impl Freshness {
    /// "30h", or "2d 1h (2 × 1d between runs + 1h for a run)" when derived.
    pub fn describe(&self) -> String {
        let total = format_duration(self.alert_after_secs);
        let Some(r) = &self.rule else {
            return format!("{total} (alert-after)");
        };
        let mut s = format!(
            "{total} (derived: 2 × {} between runs",
            format_duration(r.period_secs)
        );
        if r.delay_secs > 0 {
            s.push_str(&format!(
                " + {} random delay",
                format_duration(r.delay_secs)
            ));
        }
        let run = if r.run_is_timeout {
            "its timeout"
        } else {
            "a run, as it has no timeout"
        };
        s.push_str(&format!(" + {} for {run})", format_duration(r.run_secs)));
        s
    }
}

/// A job's own SSH key: the private half stays on the job's host, at `path`; the public half
/// goes into the authorized keys of every host the job reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    pub path: String,
    /// The public half as the topology pins it (`TYPE BASE64`); without a pin, `bkc apply`
    /// makes the key on the host and reads the public half back.
    pub pinned: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub job: String,
    pub derived: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// `OnCalendar=` lines; systemd fires when any of them elapses.
    pub on_calendar: Vec<String>,
    /// How a person would say it: "daily", "cron 0 3 */4 * *", "every 4d".
    pub describe: String,
    pub persistent: bool,
    pub random_delay_secs: Option<u64>,
    pub accuracy_secs: Option<u64>,
}

/// What the service unit needs beyond the spec: its sandbox and its runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub runner: String,
    /// Local paths the job writes; everything else is read-only under `ProtectSystem=strict`.
    pub read_write_paths: Vec<String>,
    /// True when a writable path lies under /home, /root or /run/user.
    pub writes_home: bool,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// The job that now waits.
    pub job: String,
    /// The job it waits on.
    pub blocks_on: String,
    /// Where the two meet, as `host:/path`.
    pub overlap: String,
}

impl Job {
    /// The job's schedule as a person says it: "daily 02:15", "every 4 days", "Mon..Fri 02:15,
    /// up to 15min late", "started by hand", and its watch, "daily 02:15; on changes to
    /// /srv/data (quiet 5min)". Cron lines are described by the calendars they became, and an
    /// `every` interval by the interval, not by the daily timer that asks for it.
    pub fn schedule_words(&self) -> String {
        let watch = self.watch_words();
        match (self.timer_words(), watch) {
            (Some(t), Some(w)) => format!("{t}; {w}"),
            (Some(t), None) => t,
            (None, Some(w)) => w,
            (None, None) => "started by hand".to_string(),
        }
    }

    /// "on changes to /srv/data, /srv/mail (quiet 5min)", for a job with `watch`.
    pub fn watch_words(&self) -> Option<String> {
        let w = self.spec.watch.as_ref()?;
        Some(format!(
            "on changes to {} (quiet {})",
            w.paths.join(", "),
            format_duration(w.quiet_secs)
        ))
    }

    fn timer_words(&self) -> Option<String> {
        let timer = self.timer.as_ref()?;
        let mut words = match &self.spec.every {
            Some(every) => every_words(every.secs),
            None => {
                let mut parts: Vec<String> = Vec::new();
                for line in &timer.on_calendar {
                    // Every line was checked by analyze; the raw line is only a fallback.
                    let part =
                        Calendar::parse(line).map_or_else(|_| line.clone(), |c| c.describe());
                    if !parts.contains(&part) {
                        parts.push(part);
                    }
                }
                parts.join(", ")
            }
        };
        if let Some(delay) = timer.random_delay_secs {
            words.push_str(&format!(", up to {} late", format_duration(delay)));
        }
        Some(words)
    }
}

/// "every 4 days", "every 6 hours", "every 2 weeks", "every 1d 12h" for what has no one unit.
fn every_words(secs: u64) -> String {
    for (unit, per) in [
        ("week", 604_800),
        ("day", 86_400),
        ("hour", 3600),
        ("minute", 60),
    ] {
        if secs.is_multiple_of(per) && (unit != "week" || secs >= 2 * per) {
            return match secs / per {
                1 => format!("every {unit}"),
                n => format!("every {n} {unit}s"),
            };
        }
    }
    format!("every {}", format_duration(secs))
}

#[cfg(test)]
mod tests {
    use super::every_words;

    #[test]
    fn intervals_in_words() {
        assert_eq!(every_words(4 * 86_400), "every 4 days");
        assert_eq!(every_words(86_400), "every day");
        assert_eq!(every_words(7 * 86_400), "every 7 days");
        assert_eq!(every_words(14 * 86_400), "every 2 weeks");
        assert_eq!(every_words(6 * 3600), "every 6 hours");
        assert_eq!(every_words(36 * 3600), "every 36 hours");
        assert_eq!(every_words(3600), "every hour");
        assert_eq!(every_words(5400), "every 90 minutes");
        assert_eq!(every_words(3601), "every 1h 1s");
    }
}
