//! `bkc simulate`: play every job's schedule against the others' before deploying, and see who
//! waits on whom, for how long, and which runs would time out.
//!
//! The model, kept as close to what systemd and `bkc-run` do as a plan can be:
//!
//! - **Timers**: every `OnCalendar=` line is expanded over the period with bkc's own calendar
//!   engine (the one checked against `systemd-analyze calendar`); elapses of several lines at
//!   the same instant are one elapse. `RandomizedDelaySec=` is taken at its worst: every run
//!   starts the whole delay late. `AccuracySec=` (systemd may fire up to a minute late to
//!   coalesce wake-ups) and `Persistent=` (catch-up after downtime) are left out: the machines
//!   are assumed up.
//! - **`every` jobs**: their daily (or hourly) timer starts the runner, which runs only when the
//!   last successful run *began* at least `secs - slack_secs` before the run starts, as `bkc-run`
//!   records it. Before the period, no job has succeeded.
//! - **A timer elapse while the previous run of the job still runs or waits** starts nothing:
//!   the service is a oneshot still activating, and systemd does not start a second instance.
//!   It is reported, since it usually means the job takes longer than its period.
//! - **Locks** (docs/LOCKS.md): a job cannot start while a job it blocks on runs, nor while a
//!   job that blocks on it runs; jobs blocking on the same third job may overlap. A job that
//!   `blocks-on-file` a seed-style lock file waits while a job creating that file runs. A
//!   waiting job waits up to the timeout of the lock it is blocked at (the first of its locks,
//!   in the global order, that the running job holds against it) and then gives up: a timeout.
//!   A waiting job is taken to hold none of its locks yet (the runner takes them one by one, so
//!   it may hold some; leaving that out can only make waits shorter for others). Waiters start
//!   first come, first served when the jobs they wait on end.
//! - **Slots** (`max-parallel`): a run whose locks are free takes one of its host's slots, or
//!   queues for one holding its locks, as `bkc-run` does. A freed slot goes to the queued run
//!   with the highest `priority`, then the one queued longest. A queued run gives up at its
//!   `queue-timeout` (or its job's `timeout`), reported like a lock timeout.
//! - **Runs** take the job's `expected-duration`, or an hour when it has none (reported). A
//!   job's `timeout` counts from the start of the run, waiting included, as `bkc-run`'s does: a
//!   run still waiting then has timed out; a run still working is stopped.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::Serialize;

use crate::schedule::{Calendar, format_duration};
use crate::spec::LockMode;
use crate::topology::{Job, Timer, Topology};

/// What a run takes when the topology gives no `expected-duration`.
pub const DEFAULT_DURATION_SECS: u64 = 3600;

/// The longest period `simulate` plays, in days (ten years).
pub const MAX_DAYS: u32 = 3660;

const USEC: i64 = 1_000_000;

/// Everything that happened to each job over the period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first instant of the period.
    pub start: String,
    /// The end of the period: elapses before it are played, and runs they start are followed
    /// to their end even past it.
    pub end: String,
    /// The time zone calendars without their own zone are read in.
    pub time_zone: String,
    pub days: u32,
    pub jobs: Vec<JobReport>,
    #[serde(skip)]
    zone: TimeZone,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job: String,
    pub host: String,
    pub schedule: String,
    pub duration_secs: u64,
    /// True when the topology gives no `expected-duration` and an hour is assumed.
    pub duration_assumed: bool,
    /// The job's own `timeout`, counted from the start of a run, waiting included.
    pub timeout_secs: Option<u64>,
    /// Timer elapses in the period (after the random delay).
    pub elapses: usize,
    /// Elapses at which an `every` job was not due yet, so the runner did nothing.
    pub not_due: usize,
    /// Runs started: elapses that were due and found no previous run still going.
    pub runs: usize,
    pub completed: usize,
    /// Runs that had to wait for another job.
    pub waited: usize,
    /// Runs that queued for one of their host's `max-parallel` slots.
    pub queued: usize,
    pub queue_total_secs: u64,
    pub queue_longest_secs: u64,
    pub wait_total_secs: u64,
    pub wait_longest_secs: u64,
    /// Seconds waited, by the job waited on (the one running when the wait began).
    pub waited_on: BTreeMap<String, u64>,
    /// Runs that gave up waiting.
    pub timeouts: Vec<Timeout>,
    /// Runs stopped by the job's own `timeout` while working.
    pub stopped: Vec<Stopped>,
    /// Elapses that came while the previous run still ran or waited; systemd skips them.
    pub while_previous_runs: Vec<String>,
    /// The job's `watch` in words: it also starts on changes, which no simulation can foresee,
    /// so no such run is played.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unscheduled: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeout {
    /// When the run started (its timer elapse, delay included).
    pub started: String,
    /// When it gave up.
    pub gave_up: String,
    /// The job it was waiting on, or `a slot of HOST` for a run that queued for a slot.
    pub on: String,
    /// The limit it hit: the lock's timeout or, when shorter, the job's own.
    pub limit_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    pub started: String,
    pub stopped: String,
}

impl Report {
    /// Runs that would fail: timed out waiting, or stopped by their own timeout.
    pub fn failures(&self) -> usize {
        self.jobs
            .iter()
            .map(|j| j.timeouts.len() + j.stopped.len())
            .sum()
    }

    /// Jobs that have no `expected-duration`, for a warning each.
    pub fn assumed_durations(&self) -> impl Iterator<Item = &str> {
        self.jobs
            .iter()
            .filter(|j| j.duration_assumed)
            .map(|j| j.job.as_str())
    }

    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The report for people: a paragraph per job, then the verdict.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Simulated {} days, {} to {} ({}), every random delay at its longest.",
            self.days,
            self.short(&self.start),
            self.short(&self.end),
            self.time_zone
        );
        for j in &self.jobs {
            self.job_text(&mut s, j);
        }
        let failures = self.failures();
        let _ = writeln!(
            s,
            "\n{}",
            match failures {
                0 => "No run would time out.".to_string(),
                1 => "1 run would time out.".to_string(),
                n => format!("{n} runs would time out."),
            }
        );
        s
    }

    /// One job's paragraph: what a run takes, how its runs went, and what went wrong.
    fn job_text(&self, s: &mut String, j: &JobReport) {
        let _ = writeln!(
            s,
            "\n{} on {}, {}; a run takes {}{}",
            j.job,
            j.host,
            j.schedule,
            format_duration(j.duration_secs),
            if j.duration_assumed {
                " (assumed: no expected-duration)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "{}", runs_line(j));
        if j.unscheduled.is_some() {
            let _ = writeln!(
                s,
                "  its starts on changes to files are not played: when files change cannot be foreseen"
            );
        }
        if let Some(limit) = j.timeout_secs.filter(|t| *t < j.duration_secs) {
            let _ = writeln!(
                s,
                "  a run takes longer than the job's timeout ({}): every run is stopped before it ends",
                format_duration(limit)
            );
        }
        if j.not_due > 0 {
            let _ = writeln!(
                s,
                "  {} timer elapse{} found it not due yet",
                j.not_due,
                plural(j.not_due)
            );
        }
        if j.waited > 0 {
            let _ = writeln!(s, "{}", waited_line(j));
        }
        if j.queued > 0 {
            let _ = writeln!(
                s,
                "  queued for a slot of {} in {} run{}: {} in total, longest {}",
                j.host,
                j.queued,
                plural(j.queued),
                format_duration(j.queue_total_secs),
                format_duration(j.queue_longest_secs)
            );
        }
        let mut by_on: BTreeMap<(&str, u64), Vec<&str>> = BTreeMap::new();
        for t in &j.timeouts {
            by_on
                .entry((&t.on, t.limit_secs))
                .or_default()
                .push(&t.started);
        }
        for ((on, limit), starts) in by_on {
            let _ = writeln!(
                s,
                "  timed out after {} waiting on {on}, runs started {}",
                format_duration(limit),
                self.times(starts.into_iter())
            );
        }
        if !j.stopped.is_empty() {
            let _ = writeln!(
                s,
                "  stopped by its timeout, runs started {}",
                self.times(j.stopped.iter().map(|t| t.started.as_str()))
            );
        }
        if !j.while_previous_runs.is_empty() {
            let n = j.while_previous_runs.len();
            let _ = writeln!(
                s,
                "  {n} timer elapse{} came while the previous run still ran or waited (systemd skips them): {}",
                plural(n),
                self.times(j.while_previous_runs.iter().map(String::as_str))
            );
        }
    }

    /// A list of times for the text report; a long one is cut short (JSON has them all).
    fn times<'a>(&self, times: impl ExactSizeIterator<Item = &'a str>) -> String {
        const SHOWN: usize = 8;
        let n = times.len();
        let mut list: Vec<String> = times.take(SHOWN).map(|t| self.short(t)).collect();
        if n > SHOWN {
            list.push(format!("and {} more (--format json lists all)", n - SHOWN));
        }
        list.join(", ")
    }

    /// "Thu 2026-01-01 12:15" from a report time, in the report's zone.
    fn short(&self, rfc3339: &str) -> String {
        match rfc3339.parse::<Timestamp>() {
            Ok(t) => {
                let z = t.to_zoned(self.zone.clone());
                if z.second() == 0 {
                    z.strftime("%a %Y-%m-%d %H:%M").to_string()
                } else {
                    z.strftime("%a %Y-%m-%d %H:%M:%S").to_string()
                }
            }
            Err(_) => rfc3339.to_string(),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "  3 runs, 2 completed, 1 timed out waiting"
fn runs_line(j: &JobReport) -> String {
    let mut line = format!("  {} run{}", j.runs, plural(j.runs));
    if j.runs > 0 {
        let _ = write!(line, ", {} completed", j.completed);
    }
    if !j.timeouts.is_empty() {
        let _ = write!(line, ", {} timed out waiting", j.timeouts.len());
    }
    if !j.stopped.is_empty() {
        let _ = write!(line, ", {} stopped by the job's timeout", j.stopped.len());
    }
    line
}

fn waited_line(j: &JobReport) -> String {
    let on: Vec<String> = j
        .waited_on
        .iter()
        .map(|(k, secs)| format!("{k} ({})", format_duration(*secs)))
        .collect();
    format!(
        "  waited in {} run{}: {} in total, longest {}; on {}",
        j.waited,
        plural(j.waited),
        format_duration(j.wait_total_secs),
        format_duration(j.wait_longest_secs),
        on.join(", ")
    )
}

/// The exact elapses of `timer` in `[from, to)`: every `OnCalendar=` line expanded with bkc's
/// calendar engine, merged, without the random delay. Calendars without a zone of their own are
/// read in `tz`.
pub fn elapses(timer: &Timer, from: Timestamp, to: Timestamp, tz: &TimeZone) -> Vec<Timestamp> {
    let lines: Vec<Vec<Timestamp>> = timer
        .on_calendar
        .iter()
        .map(|line| expand(line, from, to, tz))
        .collect();
    merge(lines.iter())
}

/// The elapses of one `OnCalendar=` line in `[from, to)`.
fn expand(line: &str, from: Timestamp, to: Timestamp, tz: &TimeZone) -> Vec<Timestamp> {
    let mut out = Vec::new();
    // Every line was checked by analyze; one that does not parse never fires.
    let Ok(cal) = Calendar::parse(line) else {
        return out;
    };
    // next_after is strict; start a microsecond early so an elapse at `from` counts.
    let mut t = from
        .checked_sub(jiff::SignedDuration::from_micros(1))
        .unwrap_or(from);
    while let Some(next) = cal.next_after(t, tz) {
        if next >= to {
            break;
        }
        out.push(next);
        t = next;
    }
    out
}

/// Several lines' elapses as one timer's: systemd fires once when lines coincide.
fn merge<'a>(lines: impl Iterator<Item = &'a Vec<Timestamp>>) -> Vec<Timestamp> {
    let mut out: Vec<Timestamp> = lines.flatten().copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Play the topology's schedules over `days` days from `start`.
pub fn simulate(t: &Topology, start: &Zoned, days: u32) -> Result<Report, String> {
    if days == 0 || days > MAX_DAYS {
        return Err(format!(
            "--days must be between 1 and {MAX_DAYS}, not {days}"
        ));
    }
    let end = start.checked_add(i64::from(days).days()).map_err(|_| {
        format!("{days} days from {start} reach past the last day bkc can count to")
    })?;
    let tz = start.time_zone().clone();
    let jobs: Vec<&Job> = t.jobs.values().collect();
    let index: BTreeMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let blockers = blockers(&jobs, &index);
    let mut blocks = vec![Vec::new(); jobs.len()];
    for (w, list) in blockers.iter().enumerate() {
        for (k, _) in list {
            blocks[*k].push(w);
        }
    }
    let mut sim = Sim {
        blockers,
        blocks,
        jobs: &jobs,
        state: vec![State::Idle; jobs.len()],
        last_success: vec![None; jobs.len()],
        generation: vec![0; jobs.len()],
        timers: timers(&jobs, start.timestamp(), end.timestamp(), &tz),
        events: BinaryHeap::new(),
        reports: jobs.iter().map(|j| JobReport::new(j)).collect(),
    };
    for (i, elapses) in sim.timers.iter().enumerate() {
        sim.reports[i].elapses = elapses.len();
        if let Some(first) = elapses.first() {
            sim.events.push(Reverse((*first, Kind::Elapse, i, 0)));
        }
    }
    sim.run();
    Ok(Report {
        start: stamp(start.timestamp().as_microsecond()),
        end: stamp(end.timestamp().as_microsecond()),
        time_zone: tz.iana_name().unwrap_or("local time").to_string(),
        days,
        jobs: sim.reports,
        zone: tz,
    })
}

/// Each job's timer elapses in `[from, to)` (µs, random delay included), in order.
fn timers(jobs: &[&Job], from: Timestamp, to: Timestamp, tz: &TimeZone) -> Vec<Vec<i64>> {
    // Many jobs share a calendar ("daily", "*-*-* 03:00"): expand each line once.
    let mut expanded: HashMap<&str, Vec<Timestamp>> = HashMap::new();
    let mut out = vec![Vec::new(); jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        let Some(timer) = &j.timer else { continue };
        for line in &timer.on_calendar {
            if !expanded.contains_key(line.as_str()) {
                let e = expand(line, from, to, tz);
                expanded.insert(line, e);
            }
        }
        let delay = secs_to_usec(timer.random_delay_secs.unwrap_or(0));
        let lines = timer.on_calendar.iter().map(|l| &expanded[l.as_str()]);
        out[i] = merge(lines)
            .into_iter()
            .map(|e| e.as_microsecond().saturating_add(delay))
            .collect();
    }
    out
}

impl JobReport {
    /// The report of `j` before anything happened.
    fn new(j: &Job) -> JobReport {
        JobReport {
            job: j.name.clone(),
            host: j.host.clone(),
            schedule: j.schedule_words(),
            duration_secs: j.expected_duration.unwrap_or(DEFAULT_DURATION_SECS),
            duration_assumed: j.expected_duration.is_none(),
            timeout_secs: j.spec.timeout_secs,
            elapses: 0,
            not_due: 0,
            runs: 0,
            completed: 0,
            waited: 0,
            queued: 0,
            queue_total_secs: 0,
            queue_longest_secs: 0,
            wait_total_secs: 0,
            wait_longest_secs: 0,
            waited_on: BTreeMap::new(),
            timeouts: Vec::new(),
            stopped: Vec::new(),
            while_previous_runs: Vec::new(),
            unscheduled: j.watch_words(),
        }
    }
}

/// `start` as given on the command line ("2026-01-01", or with a time) at that time in `tz`;
/// today's midnight when None.
pub fn start_at(start: Option<&str>, tz: &TimeZone) -> Result<Zoned, String> {
    let dt = match start {
        None => Zoned::now()
            .with_time_zone(tz.clone())
            .date()
            .to_datetime(jiff::civil::Time::midnight()),
        Some(s) => {
            let s = s.trim();
            match s.parse::<jiff::civil::DateTime>() {
                Ok(dt) => dt,
                Err(_) => s
                    .parse::<jiff::civil::Date>()
                    .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                    .map_err(|_| {
                        format!(
                            "--start `{s}` is not a date: write it as 2026-01-01 or 2026-01-01T06:00"
                        )
                    })?,
            }
        }
    };
    dt.to_zoned(tz.clone())
        .map_err(|e| format!("--start {dt} has no time in this time zone: {e}"))
}

fn secs_to_usec(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(USEC)
}

fn stamp(usec: i64) -> String {
    Timestamp::from_microsecond(usec).map_or_else(|_| usec.to_string(), |t| t.to_string())
}

/// For each job, the jobs whose runs keep it from starting, each with how long it waits for
/// that one before giving up.
fn blockers(jobs: &[&Job], index: &BTreeMap<&str, usize>) -> Vec<Vec<(usize, u64)>> {
    let mut out: Vec<Vec<(usize, u64)>> = vec![Vec::new(); jobs.len()];
    let mut add = |me: usize, other: usize, timeout: u64| {
        if me != other && !out[me].iter().any(|(k, _)| *k == other) {
            out[me].push((other, timeout));
        }
    };
    for (i, j) in jobs.iter().enumerate() {
        for r in &j.blocks_on {
            if let Some(&k) = index.get(r.job.as_str()) {
                add(i, k, lock_timeout(j, jobs[k]));
                add(k, i, lock_timeout(jobs[k], j));
            }
        }
    }
    for (i, j) in jobs.iter().enumerate() {
        for w in &j.spec.wait_files {
            for (k, other) in jobs.iter().enumerate() {
                if other.spec.lock_files.contains(&w.at) {
                    add(i, k, w.timeout_secs);
                }
            }
        }
    }
    for list in &mut out {
        list.sort_unstable();
    }
    out
}

/// How long `me` waits while `other` runs: the timeout of the first of `me`'s locks (they are
/// taken in this order) that `other` holds against it, which is `other`'s own lock that `me`
/// holds shared, or `me`'s own lock where `other` holds it shared.
fn lock_timeout(me: &Job, other: &Job) -> u64 {
    let held_by_other: Vec<&str> = other
        .spec
        .locks
        .iter()
        .filter(|l| l.mode == LockMode::Shared && l.owner == me.name)
        .map(|l| l.at.host.as_str())
        .collect();
    let first = me.spec.locks.iter().find(|l| match l.mode {
        LockMode::Shared => l.owner == other.name,
        LockMode::Exclusive => held_by_other.contains(&l.at.host.as_str()),
    });
    first
        .or_else(|| me.spec.locks.first())
        .map_or(6 * 3600, |l| l.timeout_secs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    // At one instant: runs end first (freeing locks), then waits give up, then timers fire.
    Finish,
    GiveUp,
    Elapse,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Waiting {
        started: i64,
        /// The job it was blocked by when it began to wait.
        on: usize,
    },
    /// Its locks are held; it waits for one of its host's slots since `since`.
    Queued {
        started: i64,
        since: i64,
    },
    Running,
}

impl State {
    /// The runner holds its locks while it queues for a slot, as while it runs.
    fn holds_locks(self) -> bool {
        matches!(self, State::Running | State::Queued { .. })
    }
}

struct Sim<'a, 't> {
    jobs: &'a [&'t Job],
    blockers: Vec<Vec<(usize, u64)>>,
    /// The other way round: the jobs each job's runs keep from starting.
    blocks: Vec<Vec<usize>>,
    state: Vec<State>,
    /// When the last successful run began (µs), for `every` jobs.
    last_success: Vec<Option<i64>>,
    /// Bumped at each state change, so that a stale event for an earlier run is ignored.
    generation: Vec<u64>,
    /// Each job's timer elapses (µs, random delay included), in order.
    timers: Vec<Vec<i64>>,
    /// (time µs, kind, job, generation or, for an elapse, its index in `timers`), earliest
    /// first. Only the next elapse of each job is queued, which keeps the queue small.
    events: BinaryHeap<Reverse<(i64, Kind, usize, u64)>>,
    reports: Vec<JobReport>,
}

impl Sim<'_, '_> {
    fn run(&mut self) {
        while let Some(Reverse((now, kind, job, generation))) = self.events.pop() {
            match kind {
                Kind::Elapse => {
                    let next = usize::try_from(generation)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1);
                    if let Some(at) = self.timers[job].get(next) {
                        self.events
                            .push(Reverse((*at, Kind::Elapse, job, next as u64)));
                    }
                    self.elapse(job, now);
                }
                Kind::Finish if generation == self.generation[job] => {
                    self.state[job] = State::Idle;
                    self.generation[job] += 1;
                    // The slot goes first, then the locks, as the runner releases them; the
                    // queued runs are woken by the slot, ahead of those the locks admit.
                    self.next_in_queue(job, now);
                    self.wake(job, now);
                }
                Kind::GiveUp if generation == self.generation[job] => self.give_up(job, now),
                _ => {}
            }
        }
    }

    fn elapse(&mut self, job: usize, now: i64) {
        if !matches!(self.state[job], State::Idle) {
            self.reports[job].while_previous_runs.push(stamp(now));
            return;
        }
        if let Some(every) = &self.jobs[job].spec.every
            && let Some(last) = self.last_success[job]
            && now.saturating_sub(last) < secs_to_usec(every.secs.saturating_sub(every.slack_secs))
        {
            self.reports[job].not_due += 1;
            return;
        }
        self.reports[job].runs += 1;
        match self.running_blocker(job) {
            None => self.admit(job, now, now),
            Some(on) => {
                self.state[job] = State::Waiting { started: now, on };
                self.generation[job] += 1;
                self.schedule_give_up(job, now);
            }
        }
    }

    /// The first job (by name) that runs now and keeps `job` from starting.
    fn running_blocker(&self, job: usize) -> Option<usize> {
        self.blockers[job]
            .iter()
            .map(|(k, _)| *k)
            .find(|k| self.state[*k].holds_locks())
    }

    /// When the waiting `job` gives up, given who runs now: the earliest of its lock timeouts
    /// for the jobs running now, and its own timeout, all counted from the start of the run.
    fn deadline(&self, job: usize, started: i64) -> (i64, usize, u64) {
        let own = self.jobs[job].spec.timeout_secs;
        let mut best: Option<(i64, usize, u64)> = None;
        for (k, timeout) in &self.blockers[job] {
            if self.state[*k].holds_locks() {
                let limit = own.map_or(*timeout, |o| o.min(*timeout));
                let at = started.saturating_add(secs_to_usec(limit));
                if best.is_none_or(|b| at < b.0) {
                    best = Some((at, *k, limit));
                }
            }
        }
        best.unwrap_or((i64::MAX, job, 0))
    }

    fn schedule_give_up(&mut self, job: usize, now: i64) {
        let at = match self.state[job] {
            State::Waiting { started, .. } => Some(self.deadline(job, started).0),
            State::Queued { started, since } => Some(self.queue_deadline(job, started, since).0),
            _ => None,
        };
        if let Some(at) = at
            && at != i64::MAX
        {
            let at = at.max(now);
            self.events
                .push(Reverse((at, Kind::GiveUp, job, self.generation[job])));
        }
    }

    fn give_up(&mut self, job: usize, now: i64) {
        if let State::Queued { started, since } = self.state[job] {
            return self.give_up_queue(job, started, since, now);
        }
        let State::Waiting { started, on } = self.state[job] else {
            return;
        };
        let (at, blocker, limit) = self.deadline(job, started);
        if at > now {
            // Who blocks it changed since this was scheduled; wait for the new deadline.
            self.generation[job] += 1;
            self.schedule_give_up(job, now);
            return;
        }
        self.state[job] = State::Idle;
        self.generation[job] += 1;
        self.record_wait(job, on, now - started);
        self.reports[job].timeouts.push(Timeout {
            started: stamp(started),
            gave_up: stamp(now),
            on: self.jobs[blocker].name.clone(),
            limit_secs: limit,
        });
    }

    /// The waiting jobs that `job` keeps from starting, first come first served.
    fn waiting_on(&self, job: usize) -> Vec<(i64, usize)> {
        let mut out: Vec<(i64, usize)> = self.blocks[job]
            .iter()
            .filter_map(|w| match self.state[*w] {
                State::Waiting { started, .. } => Some((started, *w)),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// `finished` has ended: start every job that waited on it and that nothing else blocks
    /// now, first come first served. (Only its end can have freed them.)
    fn wake(&mut self, finished: usize, now: i64) {
        for (started, job) in self.waiting_on(finished) {
            if self.running_blocker(job).is_none() {
                if let State::Waiting { on, .. } = self.state[job] {
                    self.record_wait(job, on, now - started);
                }
                self.admit(job, started, now);
            }
        }
    }

    fn record_wait(&mut self, job: usize, on: usize, usec: i64) {
        let secs = u64::try_from(usec / USEC).unwrap_or(0);
        let r = &mut self.reports[job];
        r.waited += 1;
        r.wait_total_secs += secs;
        r.wait_longest_secs = r.wait_longest_secs.max(secs);
        *r.waited_on.entry(self.jobs[on].name.clone()).or_default() += secs;
    }

    /// The run that began at `started` has its locks at `now`: it takes a slot of its host and
    /// works, or queues for one.
    fn admit(&mut self, job: usize, started: i64, now: i64) {
        if self.slot_free(job) {
            return self.start(job, started, now);
        }
        self.state[job] = State::Queued {
            started,
            since: now,
        };
        self.generation[job] += 1;
        self.reports[job].queued += 1;
        self.schedule_give_up(job, now);
        // Queued, it holds its locks: a waiter it now blocks may give up sooner.
        for (_, w) in self.waiting_on(job) {
            self.generation[w] += 1;
            self.schedule_give_up(w, now);
        }
    }

    /// Whether `job`'s host has a slot free (or no limit).
    fn slot_free(&self, job: usize) -> bool {
        let Some(slot) = &self.jobs[job].spec.slot else {
            return true;
        };
        let host = &self.jobs[job].host;
        let busy = self
            .jobs
            .iter()
            .zip(&self.state)
            .filter(|(j, s)| j.host == *host && matches!(s, State::Running))
            .count();
        busy < usize::try_from(slot.count).unwrap_or(usize::MAX)
    }

    /// `finished` freed a slot of its host: the queued run of that host with the highest
    /// priority, then queued longest, then by name, starts.
    fn next_in_queue(&mut self, finished: usize, now: i64) {
        let host = &self.jobs[finished].host;
        let best = (0..self.jobs.len())
            .filter_map(|k| match self.state[k] {
                State::Queued { started, since } if self.jobs[k].host == *host => {
                    let priority = self.jobs[k].spec.slot.as_ref().map_or(0, |s| s.priority);
                    Some(((Reverse(priority), since, &self.jobs[k].name), k, started))
                }
                _ => None,
            })
            .min();
        if let Some(((_, since, _), k, started)) = best
            && self.slot_free(k)
        {
            self.record_queue(k, now - since);
            self.start(k, started, now);
        }
    }

    /// When the queued `job` gives up: its `queue-timeout` from when it queued, or its own
    /// timeout from the start of the run, whichever comes first; with the limit that hit.
    fn queue_deadline(&self, job: usize, started: i64, since: i64) -> (i64, u64) {
        let spec = &self.jobs[job].spec;
        let queue = spec
            .slot
            .as_ref()
            .and_then(|s| s.queue_timeout_secs)
            .map(|t| (since.saturating_add(secs_to_usec(t)), t));
        let own = spec
            .timeout_secs
            .map(|t| (started.saturating_add(secs_to_usec(t)), t));
        [queue, own]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or((i64::MAX, 0))
    }

    fn give_up_queue(&mut self, job: usize, started: i64, since: i64, now: i64) {
        let (at, limit) = self.queue_deadline(job, started, since);
        if at > now {
            return;
        }
        self.state[job] = State::Idle;
        self.generation[job] += 1;
        self.record_queue(job, now - since);
        self.reports[job].timeouts.push(Timeout {
            started: stamp(started),
            gave_up: stamp(now),
            on: format!("a slot of {}", self.jobs[job].host),
            limit_secs: limit,
        });
        // It held its locks while it queued: whoever waited for them may go now.
        self.wake(job, now);
    }

    fn record_queue(&mut self, job: usize, usec: i64) {
        let secs = u64::try_from(usec / USEC).unwrap_or(0);
        let r = &mut self.reports[job];
        r.queue_total_secs += secs;
        r.queue_longest_secs = r.queue_longest_secs.max(secs);
    }

    /// The run that began at `started` has its locks and a slot at `now`, and works.
    fn start(&mut self, job: usize, started: i64, now: i64) {
        let j = self.jobs[job];
        let work = secs_to_usec(j.expected_duration.unwrap_or(DEFAULT_DURATION_SECS));
        let done = now.saturating_add(work);
        let stop = j
            .spec
            .timeout_secs
            .map(|t| started.saturating_add(secs_to_usec(t)));
        self.state[job] = State::Running;
        self.generation[job] += 1;
        let generation = self.generation[job];
        let end = match stop {
            Some(stop) if stop < done => {
                self.reports[job].stopped.push(Stopped {
                    started: stamp(started),
                    stopped: stamp(stop),
                });
                stop
            }
            _ => {
                self.reports[job].completed += 1;
                // Like the runner: `every` counts from when the last successful run began.
                self.last_success[job] = Some(started);
                done
            }
        };
        self.events
            .push(Reverse((end, Kind::Finish, job, generation)));
        // A waiter this run now blocks may have to give up sooner than it was going to.
        for (_, w) in self.waiting_on(job) {
            self.generation[w] += 1;
            self.schedule_give_up(w, now);
        }
    }
}
