//! `bkc simulate`: the seed chain with a slow offsite copy, the lock rules of docs/LOCKS.md
//! played out on small topologies, timer expansion against systemd-analyze, and the command
//! line (exit codes, JSON, warnings, `check --simulate`).

use crate::common;

use std::process::{Command, Output};

use bkc::analyze::compile;
use bkc::simulate::{Report, elapses, simulate, start_at};
use bkc::topology::Topology;
use jiff::Timestamp;
use jiff::tz::TimeZone;

fn seed_chain() -> String {
    std::fs::read_to_string("examples/seed-chain.kdl").unwrap()
}

/// The seed chain with the offsite copy taking 30 hours.
fn slow_offsite() -> String {
    let text = seed_chain();
    let slow = text.replace(
        "    every \"4d\"\n",
        "    every \"4d\"\n    expected-duration \"30h\"\n",
    );
    assert_ne!(slow, text, "the seed chain still has `every \"4d\"`");
    slow
}

fn topology(text: &str) -> Topology {
    let c = compile("test.kdl", text);
    match c.topology {
        Some(t) => t,
        None => panic!("{}", bkc::diag::render(&c.diagnostics, false, 100)),
    }
}

/// Simulate in UTC from midnight of `start`.
fn run(text: &str, start: &str, days: u32) -> Report {
    let start = start_at(Some(start), &TimeZone::UTC).unwrap();
    simulate(&topology(text), &start, days).unwrap()
}

fn job<'r>(r: &'r Report, name: &str) -> &'r bkc::simulate::JobReport {
    r.jobs.iter().find(|j| j.job == name).unwrap()
}

/// "2026-01-06T00:15:00Z" -> 6: the day of January a time falls on.
fn day(t: &str) -> u32 {
    assert!(t.starts_with("2026-01-"), "{t}");
    t[8..10].parse().unwrap()
}

/// The example of the issue, as the topology says it: the offsite copy takes 30 hours, but its
/// own `timeout "20h"` stops every run, so it never succeeds and its daily timer starts it
/// again every day. The desktop's run starts at 00:15 (its 15-minute random delay at its
/// worst), finds the offsite copy running, waits its 12-hour blocks-on timeout and fails: on
/// every day the offsite copy runs, which is every day.
#[test]
fn a_30_hour_offsite_copy_fails_the_desktop_on_the_days_it_runs() {
    let r = run(&slow_offsite(), "2026-01-01", 30);
    let copy = job(&r, "a-to-b");
    let desktop = job(&r, "desktop-to-a");

    // `every "4d"` counts from the start of the last successful run: the copy starts every
    // fourth day, and its timer's next elapse comes while each 30-hour run still goes.
    assert_eq!((copy.runs, copy.completed), (8, 8));
    assert!(copy.stopped.is_empty() && copy.timeouts.is_empty());
    let skipped: Vec<u32> = copy.while_previous_runs.iter().map(|t| day(t)).collect();
    assert_eq!(skipped, [2, 6, 10, 14, 18, 22, 26, 30]);

    let copy_days = [1, 5, 9, 13, 17, 21, 25, 29];
    let timeout_days: Vec<u32> = desktop.timeouts.iter().map(|t| day(&t.started)).collect();
    assert_eq!(
        timeout_days, copy_days,
        "it fails exactly on the copy's days"
    );
    for t in &desktop.timeouts {
        assert_eq!(t.on, "a-to-b");
        assert_eq!(t.limit_secs, 12 * 3600);
        assert!(t.started.ends_with("T00:15:00Z"), "{t:?}");
        assert!(t.gave_up.ends_with("T12:15:00Z"), "{t:?}");
    }
    assert_eq!(desktop.runs, 30);
    assert_eq!(desktop.completed, 22);
    // Eight runs gave up after 12h; the eight on the following days waited 00:15 -> 06:00.
    assert_eq!(desktop.waited, 16);
    assert_eq!(
        desktop.wait_total_secs,
        8 * 12 * 3600 + 8 * (5 * 3600 + 45 * 60)
    );
    assert_eq!(desktop.waited_on.keys().collect::<Vec<_>>(), ["a-to-b"]);
    assert_eq!(r.failures(), 8);
}

/// The same copy under a 20-hour job timeout never finishes: it is stopped at 20:00 every day,
/// never records a success, so it is due again the next day, and the desktop fails every day.
#[test]
fn an_offsite_copy_longer_than_its_timeout_runs_and_fails_every_day() {
    let text = slow_offsite().replace("timeout \"36h\"", "timeout \"20h\"");
    let r = run(&text, "2026-01-01", 30);
    let copy = job(&r, "a-to-b");
    let desktop = job(&r, "desktop-to-a");

    assert_eq!(copy.runs, 30);
    assert_eq!(copy.completed, 0);
    let copy_days: Vec<u32> = copy.stopped.iter().map(|s| day(&s.started)).collect();
    assert_eq!(copy_days, (1..=30).collect::<Vec<_>>());
    assert!(
        copy.stopped
            .iter()
            .all(|s| s.stopped.ends_with("T20:00:00Z"))
    );

    assert_eq!(desktop.timeouts.len(), 30);
    assert_eq!(desktop.completed, 0);
    assert_eq!(r.failures(), 60);
    let text = r.text();
    assert!(
        text.contains("a run takes longer than the job's timeout (20h)"),
        "{text}"
    );
}

#[test]
fn the_seed_chain_as_it_is_never_times_out() {
    let r = run(&seed_chain(), "2026-01-01", 30);
    assert_eq!(r.failures(), 0);
    let copy = job(&r, "a-to-b");
    let desktop = job(&r, "desktop-to-a");
    // Both assumed to take an hour: the copy runs 00:00-01:00 every fourth day, and the
    // desktop, starting at 00:15 on those days, waits 45 minutes.
    assert!(copy.duration_assumed && desktop.duration_assumed);
    assert_eq!(copy.runs, 8);
    assert_eq!(desktop.waited, 8);
    assert_eq!(desktop.wait_longest_secs, 45 * 60);
    assert_eq!(
        r.assumed_durations().collect::<Vec<_>>(),
        ["a-to-b", "desktop-to-a"]
    );
    assert!(r.text().ends_with("No run would time out.\n"));
}

const HOSTS: &str = "host \"h\" address=\"h.lan\"\nhost \"b\" address=\"b.lan\"\n";

/// A job running `schedule` for `duration`, syncing its own directory, with extra lines.
fn job_kdl(name: &str, schedule: &str, duration: &str, extra: &str) -> String {
    format!(
        "job \"{name}\" on=\"h\" {{\n    schedule \"{schedule}\"\n    expected-duration \"{duration}\"\n{extra}    sync \"/{name}/\" \"b:/{name}/\"\n}}\n"
    )
}

/// docs/LOCKS.md: two jobs that block on a third may run side by side; the third waits for
/// both (and its lock timeout is its own lock's).
#[test]
fn jobs_blocking_on_the_same_job_overlap() {
    let text = format!(
        "{HOSTS}{}{}{}",
        job_kdl("x", "*-*-* 01:00", "2h", "    blocks-on \"z\"\n"),
        job_kdl("y", "*-*-* 01:30", "2h", "    blocks-on \"z\"\n"),
        job_kdl("z", "*-*-* 02:00", "1h", ""),
    );
    let r = run(&text, "2026-01-01", 1);
    assert_eq!(job(&r, "x").waited, 0);
    assert_eq!(job(&r, "y").waited, 0, "y overlaps x");
    let z = job(&r, "z");
    assert_eq!(z.waited, 1);
    // x ends 03:00, y 03:30: z waits from 02:00 to 03:30.
    assert_eq!(z.wait_longest_secs, 90 * 60);
    assert_eq!(z.waited_on.keys().collect::<Vec<_>>(), ["x"]);
    assert_eq!(r.failures(), 0);
}

/// A waiting run gives up after its blocks-on timeout; the job it blocks on is kept out
/// meanwhile by nothing (a waiting job holds no lock in the model), and the run timeout of a
/// job counts its wait.
#[test]
fn waits_give_up_at_the_lock_timeout_or_the_jobs_own() {
    let text = format!(
        "{HOSTS}{}{}{}",
        job_kdl("long", "*-*-* 00:00", "5h", ""),
        job_kdl(
            "patient",
            "*-*-* 01:00",
            "1h",
            "    blocks-on \"long\" timeout=\"2h\"\n"
        ),
        job_kdl(
            "hurried",
            "*-*-* 01:00",
            "1h",
            "    blocks-on \"long\" timeout=\"6h\"\n    timeout \"90min\"\n"
        ),
    );
    let r = run(&text, "2026-01-01", 1);
    let patient = &job(&r, "patient").timeouts;
    assert_eq!(patient.len(), 1);
    assert_eq!(patient[0].gave_up, "2026-01-01T03:00:00Z");
    assert_eq!(patient[0].limit_secs, 2 * 3600);
    let hurried = &job(&r, "hurried").timeouts;
    assert_eq!(hurried.len(), 1);
    assert_eq!(hurried[0].gave_up, "2026-01-01T02:30:00Z");
    assert_eq!(hurried[0].limit_secs, 90 * 60);
}

/// systemd starts no second instance of a oneshot service still running: the elapse is lost.
#[test]
fn an_elapse_while_the_previous_run_runs_is_skipped_and_reported() {
    let text = format!("{HOSTS}{}", job_kdl("slow", "hourly", "90min", ""));
    let r = run(&text, "2026-01-01", 1);
    let slow = job(&r, "slow");
    assert_eq!(slow.elapses, 24);
    assert_eq!(slow.runs, 12);
    assert_eq!(slow.while_previous_runs.len(), 12);
    assert_eq!(slow.while_previous_runs[0], "2026-01-01T01:00:00Z");
    assert_eq!(r.failures(), 0, "a skipped elapse is not a failure");
}

/// `every "4d"` with a short run: due 3.5 days after the last success ended, so the daily
/// timer starts it every fourth day.
#[test]
fn an_every_job_runs_when_due() {
    let text = format!(
        "{HOSTS}job \"e\" on=\"h\" {{\n    every \"4d\"\n    expected-duration \"1h\"\n    sync \"/e/\" \"b:/e/\"\n}}\n"
    );
    let r = run(&text, "2026-01-01", 20);
    let e = job(&r, "e");
    assert_eq!(e.runs, 5);
    assert_eq!(e.not_due, 15);
}

/// A job that also starts on changes to files keeps the runs of its schedule; one that starts
/// only on changes runs not at all: when files change cannot be foreseen, and the report says
/// so rather than inventing runs.
#[test]
fn runs_on_changes_to_files_are_named_and_not_played() {
    let text = std::fs::read_to_string("tests/data/watch.kdl").unwrap();
    let r = run(&text, "2026-01-01", 2);
    let docs = job(&r, "docs-to-vault");
    assert_eq!(docs.runs, 2, "its daily runs");
    assert_eq!(
        docs.unscheduled.as_deref(),
        Some("on changes to /srv/docs/contracts, /srv/docs/letters (quiet 5min)")
    );
    let scans = job(&r, "scans-to-vault");
    assert_eq!((scans.elapses, scans.runs), (0, 0));
    assert_snapshot!("watch", r.text());
    assert!(
        r.json()
            .contains("\"unscheduled\": \"on changes to /srv/scans (quiet 1min)\"")
    );
}

/// A job that waits for a seed-style lock file waits while the job creating it runs.
#[test]
fn a_wait_file_waits_for_the_job_holding_it() {
    let text = format!(
        "{HOSTS}{}{}",
        job_kdl(
            "holder",
            "*-*-* 00:00",
            "3h",
            "    lock-file \"/run/lock/x.lock\" host=\"b\"\n"
        ),
        job_kdl(
            "waiter",
            "*-*-* 01:00",
            "1h",
            "    blocks-on-file \"/run/lock/x.lock\" host=\"b\" timeout=\"1h\"\n"
        ),
    );
    let r = run(&text, "2026-01-01", 1);
    let w = job(&r, "waiter");
    assert_eq!(w.timeouts.len(), 1);
    assert_eq!(w.timeouts[0].on, "holder");
    assert_eq!(w.timeouts[0].gave_up, "2026-01-01T02:00:00Z");
}

/// What `systemd-analyze calendar` says about every `OnCalendar=` line of one timer, from
/// just before `from` to `to`, as UTC instants: enough iterations that the list passes `to`.
fn systemd_elapses(
    lines: &[String],
    from: Timestamp,
    to: Timestamp,
    zone: &str,
    n: usize,
) -> Vec<Timestamp> {
    let out = Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--iterations={n}"))
        .arg(format!("--base-time=@{}", from.as_second() - 1))
        .arg("--")
        .args(lines)
        .env("TZ", zone)
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Vec<Timestamp> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(in UTC): "))
        .map(|t| {
            // "Fri 2026-03-20 23:00:00 UTC"
            let p: Vec<&str> = t.split(' ').collect();
            format!("{}T{}Z", p[1], p[2]).parse().unwrap()
        })
        .filter(|t| *t < to)
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The timers of every example (and of the test topologies) expand in simulate exactly as
/// systemd computes their elapses, over a quiet month and over a month with a DST change.
/// Berlin time, so that systemd also prints each elapse in UTC.
#[test]
#[ignore = "needs systemd-analyze"]
fn timer_expansion_matches_systemd_analyze() {
    let mut files: Vec<String> = std::fs::read_dir("examples")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".kdl"))
        .collect();
    files.extend([
        "tests/data/edge-cases.kdl".into(),
        "tests/data/odd-labels.kdl".into(),
    ]);
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let mut timers = Vec::new();
    for f in &files {
        let t = topology(&std::fs::read_to_string(f).unwrap());
        timers.extend(
            t.jobs
                .into_values()
                .filter_map(|j| Some((j.name, j.timer?))),
        );
    }
    assert!(timers.len() >= 8, "a corpus of {} timers", timers.len());
    if !common::require_tool("systemd-analyze") {
        return;
    }
    for start in ["2026-01-01", "2026-03-20"] {
        let from = start_at(Some(start), &tz).unwrap();
        let to = from.checked_add(jiff::ToSpan::days(30)).unwrap();
        for (name, timer) in &timers {
            let ours = elapses(timer, from.timestamp(), to.timestamp(), &tz);
            assert!(!ours.is_empty(), "{name}");
            let theirs = systemd_elapses(
                &timer.on_calendar,
                from.timestamp(),
                to.timestamp(),
                "Europe/Berlin",
                ours.len() + 1,
            );
            assert_eq!(ours, theirs, "{name}: {:?} from {start}", timer.on_calendar);
        }
    }
}

fn bkc(args: &[&str]) -> Output {
    Command::new(common::bin("bkc"))
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("bkc runs")
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bkc-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_command_fails_when_a_run_would_time_out() {
    let file = temp_file("slow.kdl", &slow_offsite());
    let f = file.to_str().unwrap();
    let out = bkc(&["simulate", f, "--start", "2026-01-01", "--days", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with(
        "Simulated 10 days, Thu 2026-01-01 00:00 to Sun 2026-01-11 00:00 (UTC), every random delay at its longest.\n"
    ), "{stdout}");
    assert!(stdout.contains("timed out after 12h waiting on a-to-b, runs started Thu 2026-01-01 00:15, Mon 2026-01-05 00:15, Fri 2026-01-09 00:15\n"), "{stdout}");
    assert!(stdout.ends_with("3 runs would time out.\n"), "{stdout}");
    // One warning for the one job without an expected duration.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "warning: job `desktop-to-a` has no expected-duration; the simulation assumes a run takes 1h\n"
    );

    // A deploy gate: check --simulate fails the same way, whatever today is (with no run
    // recorded yet the copy runs on the first day, and the desktop gives up waiting for it),
    // and passes on the seed chain as it is.
    let gate = bkc(&["check", f, "--simulate"]);
    assert_eq!(gate.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gate.stdout).contains("runs would time out."));
    let ok = bkc(&["check", "examples/seed-chain.kdl", "--simulate"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).ends_with("No run would time out.\n"));
}

#[test]
fn json_lists_every_run_that_times_out() {
    let file = temp_file("slow-json.kdl", &slow_offsite());
    let out = bkc(&[
        "simulate",
        file.to_str().unwrap(),
        "--start",
        "2026-01-01",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["start"], "2026-01-01T00:00:00Z");
    assert_eq!(v["days"], 30);
    assert_eq!(v["time_zone"], "UTC");
    let desktop = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "desktop-to-a")
        .unwrap();
    assert_eq!(desktop["timeouts"].as_array().unwrap().len(), 8);
    assert_eq!(desktop["timeouts"][1]["started"], "2026-01-05T00:15:00Z");
    assert_eq!(desktop["duration_assumed"], true);
}

#[test]
fn bad_arguments_say_what_is_wrong() {
    let out = bkc(&[
        "simulate",
        "examples/seed-chain.kdl",
        "--start",
        "next tuesday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--start `next tuesday` is not a date"));
    let out = bkc(&["simulate", "examples/seed-chain.kdl", "--days", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = bkc(&["simulate", "examples/seed-chain.kdl", "--days", "100000"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Random small topologies (odd calendars, random waits, durations and timeouts, circles of
/// waits): simulate and every graph format finish without panicking, and every elapse is
/// accounted for exactly once.
#[test]
fn random_topologies_play_out_consistently() {
    const SCHEDULES: &[&str] = &[
        "schedule \"minutely\"",
        "schedule \"hourly\"",
        "schedule \"*-02-29 00:00\"",
        "schedule \"Mon..Fri *-*-* 09:00:00/7\"",
        "schedule \"*-*~01 23:59:59\"",
        "schedule \"daily Europe/Berlin\"",
        "schedule \"*-*-* 02:30 America/New_York\"",
        "cron \"*/5 1-3 * * 1,3\"",
        "every \"1h\"",
        "every \"36h\"",
        "every \"2w\"",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..40 {
        let jobs = 1 + next(6);
        let mut text = String::from(HOSTS);
        for j in 0..jobs {
            let mut extra = String::new();
            for k in 0..jobs {
                if k != j && next(3) == 0 {
                    extra.push_str(&format!(
                        "    blocks-on \"j{k}\" timeout=\"{}min\"\n",
                        1 + next(300)
                    ));
                }
            }
            if next(2) == 0 {
                extra.push_str(&format!("    timeout \"{}min\"\n", 1 + next(600)));
            }
            if next(3) == 0 {
                extra.push_str(&format!("    random-delay \"{}s\"\n", next(4000)));
            }
            text.push_str(&format!(
                "job \"j{j}\" on=\"h\" {{\n    {}\n    expected-duration \"{}s\"\n{extra}    sync \"/j{j}/\" \"b:/j{j}/\"\n}}\n",
                SCHEDULES[next(SCHEDULES.len())],
                1 + next(20_000)
            ));
        }
        let c = compile("random.kdl", &text);
        let t = match (&c.topology, &c.topology_despite_errors) {
            (Some(t), _) => t,
            (None, Some(t)) => {
                assert!(!c.cycles.is_empty(), "round {round}");
                t
            }
            (None, None) => panic!(
                "round {round}: {}",
                bkc::diag::render(&c.diagnostics, false, 100)
            ),
        };
        let p = bkc::graph::Picture::new(t, &c.cycles, &[]);
        assert!(!p.text().is_empty() && !p.dot().is_empty() && !p.mermaid().is_empty());
        let start = start_at(Some("2026-02-25"), &TimeZone::UTC).unwrap();
        let r = simulate(t, &start, 3 + next(10) as u32).unwrap();
        for j in &r.jobs {
            assert_eq!(
                j.elapses,
                j.runs + j.not_due + j.while_previous_runs.len(),
                "round {round}, {}: {text}",
                j.job
            );
            assert_eq!(
                j.runs,
                j.completed + j.timeouts.len() + j.stopped.len(),
                "round {round}, {}: {text}",
                j.job
            );
        }
        let _ = r.text();
        let _ = r.json();
    }
}

/// `max-parallel 1`: a run whose locks are free queues for its host's slot; the freed slot goes
/// to the highest priority, and a `queue-timeout` gives up as a lock timeout does.
#[test]
fn slots_queue_runs_by_priority_and_give_up_at_their_queue_timeout() {
    let mut text = String::from("host \"box\" max-parallel=1\n");
    for (job, at, hours, extra) in [
        ("long", "02:00", "2h", ""),
        ("low", "03:00", "30m", ""),
        ("high", "03:00", "30m", "    priority 10\n"),
        ("impatient", "03:00", "30m", "    queue-timeout \"30m\"\n"),
    ] {
        text.push_str(&format!(
            "job \"{job}\" on=\"box\" {{\n    schedule \"*-*-* {at}\"\n    expected-duration \"{hours}\"\n{extra}    sync \"/srv/{job}/\" \"/backup/{job}/\"\n}}\n"
        ));
    }
    let r = run(&text, "2026-01-01", 1);
    let src = text;
    // long 02:00-04:00; high 04:00-04:30 (queued 1h); low 04:30-05:00 (queued 1h30).
    let (long, high, low) = (job(&r, "long"), job(&r, "high"), job(&r, "low"));
    assert_eq!((long.queued, long.completed), (0, 1));
    assert_eq!(
        (high.queued, high.queue_total_secs, high.completed),
        (1, 3600, 1)
    );
    assert_eq!(
        (low.queued, low.queue_total_secs, low.completed),
        (1, 5400, 1)
    );
    let impatient = job(&r, "impatient");
    assert_eq!(impatient.completed, 0);
    assert_eq!(
        impatient.timeouts,
        [bkc::simulate::Timeout {
            started: "2026-01-01T03:00:00Z".into(),
            gave_up: "2026-01-01T03:30:00Z".into(),
            on: "a slot of box".into(),
            limit_secs: 1800,
        }]
    );
    let text = r.text();
    assert!(
        text.contains("queued for a slot of box in 1 run: 1h 30min in total"),
        "{text}"
    );
    assert!(
        text.contains("timed out after 30min waiting on a slot of box"),
        "{text}"
    );
    // Without the limit, all four run at once.
    let unlimited = src
        .replace(" max-parallel=1", "")
        .replace("    priority 10\n", "");
    let unlimited = unlimited.replace("    queue-timeout \"30m\"\n", "");
    let free = run(&unlimited, "2026-01-01", 1);
    assert!(free.jobs.iter().all(|j| j.queued == 0 && j.completed == 1));
}
