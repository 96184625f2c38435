//! `bkc snapshots`, `bkc restore` and `bkc verify`: getting data back, and knowing it can be.
//! Each runs `bkc-run` on the job's host (one SSH session per host), which does the work there
//! with the job's key and under the job's locks; docs/RESTORE.md tells every case.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use bkc::deploy::bounded;
use bkc::deploy::restore::{self, Answer, Ended};
use bkc::deploy::transport::Transport;
use bkc::diag::did_you_mean;
use bkc::printable::printable_line;
use bkc::topology::{Job, Topology};
use bkc_contract::event::Event;
use bkc_contract::snapshots::{JobSnapshots, LISTING_VERSION, SnapshotReport, SyncKind};
use bkc_contract::state::RunResult;
use bkc_contract::verify::{Class, VerifyReport};

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::output::{self, json};
use super::remote::{Fleet, Remote, confirm};

#[derive(clap::Args)]
pub struct SnapshotsArgs {
    /// The topology file (default bkc.kdl; a first word ending in `.kdl`), then the jobs to
    /// list (default: every job).
    #[arg(value_name = "FILE|JOB")]
    words: Vec<String>,
    /// Only the jobs on these hosts: a name, or @tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    /// Print JSON (docs/schemas/snapshots.json).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The job whose data to restore.
    job: String,
    /// The topology file (default bkc.kdl; a word ending in `.kdl`), then paths relative to the
    /// sync's source (default: all of it).
    #[arg(value_name = "FILE|PATH")]
    words: Vec<String>,
    /// The job's sync to restore, from 1 (as `bkc snapshots` numbers them).
    #[arg(long, value_name = "N")]
    sync: Option<usize>,
    /// The newest snapshot at or before TIME (UTC): `2026-11-20` (that day, to its end),
    /// `2026-11-20T14:00`, `3d` (ago), or `latest` (the default).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// A new or empty directory to restore into: on the sync's source host, or HOST:DIR.
    #[arg(long, value_name = "[HOST:]DIR", required_unless_present = "in_place")]
    to: Option<String>,
    /// Restore over the sync's source itself; shows the changes and asks first.
    #[arg(long, conflicts_with = "to")]
    in_place: bool,
    /// With --in-place: do not ask (needed without a terminal).
    #[arg(long, requires = "in_place")]
    yes: bool,
    /// Write into a --to directory that is not empty.
    #[arg(long)]
    force: bool,
    /// Also delete what the target has and the snapshot has not.
    #[arg(long)]
    delete: bool,
    /// Show what would change; change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The job whose copies to check.
    job: String,
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Read and compare every byte, not only sizes and modification times.
    #[arg(long)]
    checksum: bool,
    /// Only this sync of the job, from 1.
    #[arg(long, value_name = "N")]
    sync: Option<usize>,
    /// Print the report as JSON (docs/schemas/verify-report.json).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// The topology file and the words after it: the first word is the file when it ends in
/// `.kdl`, since job names and paths never need to.
fn file_and_rest(words: &[String]) -> (PathBuf, &[String]) {
    match words.split_first() {
        Some((f, rest)) if f.ends_with(".kdl") => (PathBuf::from(f), rest),
        _ => (PathBuf::from("bkc.kdl"), words),
    }
}

/// The job named `name`, or an error naming the jobs there are.
fn job_of<'t>(t: &'t Topology, file: &std::path::Path, name: &str) -> Result<&'t Job, Exit> {
    t.jobs.get(name).ok_or_else(|| {
        let hint = did_you_mean(name, t.jobs.keys().map(String::as_str))
            .map_or(String::new(), |k| format!("; did you mean `{k}`?"));
        let known: Vec<&str> = t.jobs.keys().map(String::as_str).collect();
        eprintln!(
            "error: {} has no job `{name}`{hint} (its jobs: {})",
            file.display(),
            known.join(", ")
        );
        Exit::CouldNotRun
    })
}

pub fn snapshots(args: &SnapshotsArgs, v: Verbosity) -> Result<Exit, Exit> {
    let (file, names) = file_and_rest(&args.words);
    let Fleet { t, hosts, .. } = Fleet::open(&file, &HostFilter::new(&args.hosts), v)?;
    for n in names {
        job_of(t, &file, n)?;
    }
    let wanted = |j: &&Job| names.is_empty() || names.contains(&j.name);
    let per_host: Vec<(String, Vec<&Job>)> = hosts
        .iter()
        .map(|(d, _)| {
            let jobs = t.jobs.values().filter(|j| j.host == d.host).filter(wanted);
            (d.host.clone(), jobs.collect::<Vec<_>>())
        })
        .collect();
    if per_host.iter().all(|(_, j)| j.is_empty()) {
        eprintln!(
            "error: no job of {} is on the hosts selected",
            file.display()
        );
        return Err(Exit::CouldNotRun);
    }
    let ssh = args.remote.session(&hosts, &[])?;
    let work: Vec<_> = hosts
        .iter()
        .zip(&per_host)
        .enumerate()
        .filter(|(_, (_, (_, jobs)))| !jobs.is_empty())
        .map(|(i, ((d, target), (_, jobs)))| (ssh.host(&d.host, target, i), jobs))
        .collect();
    let results = bounded(&work, args.remote.options().jobs, |(tr, jobs)| {
        restore::snapshots(tr as &dyn Transport, jobs)
    });
    let mut listed: BTreeMap<String, JobSnapshots> = BTreeMap::new();
    let mut failed = false;
    for r in results {
        match r {
            Ok(ls) => listed.extend(ls.into_iter().map(|l| (l.job.clone(), l))),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    for l in listed.values() {
        for s in l.syncs.iter().filter(|s| s.error.is_some()) {
            let e = s.error.as_deref().unwrap_or_default();
            eprintln!("error: {} sync {}: {}", l.job, s.sync, printable_line(e));
            failed = true;
        }
    }
    let report = SnapshotReport {
        version: LISTING_VERSION,
        jobs: listed.into_values().collect(),
    };
    let text = if args.json {
        json(&report)
    } else {
        snapshot_table(&report)
    };
    output::stdout(text.as_bytes())?;
    Ok(Exit::HostFailed.when(failed))
}

/// Bytes as a person reads them: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// `2026-11-22T02:15:00Z` as `2026-11-22 02:15:00`.
fn when(rfc3339: &str) -> String {
    let t = printable_line(rfc3339);
    let t = t.split('.').next().unwrap_or(&t).trim_end_matches('Z');
    t.replacen('T', " ", 1)
}

/// The listing as a person reads it: per sync a line, then its snapshots, newest first.
fn snapshot_table(r: &SnapshotReport) -> String {
    let mut out = String::new();
    for job in &r.jobs {
        for s in &job.syncs {
            let (src, dst) = (printable_line(&s.source), printable_line(&s.dest));
            let head = format!("{} sync {}: {src} -> {dst}", job.job, s.sync);
            if s.kind == SyncKind::Mirror {
                let last = job
                    .last_success
                    .as_deref()
                    .map_or("none yet".to_string(), |t| format!("{} UTC", when(t)));
                out.push_str(&format!("{head}\n  mirror, last successful run: {last}\n"));
                continue;
            }
            out.push_str(&format!("{head}\n"));
            if s.snapshots.is_empty() {
                out.push_str("  no snapshots yet\n");
                continue;
            }
            let rows: Vec<[String; 6]> = s
                .snapshots
                .iter()
                .map(|n| {
                    let mut marks = Vec::new();
                    if n.latest {
                        marks.push("latest");
                    }
                    if n.prune {
                        marks.push("pruned by the next run");
                    }
                    [
                        printable_line(&n.name).into_owned(),
                        if n.complete { "complete" } else { "partial" }.to_string(),
                        n.files.to_string(),
                        size(n.apparent_bytes),
                        size(n.unique_bytes),
                        marks.join(", "),
                    ]
                })
                .collect();
            out.push_str(&table(
                ["SNAPSHOT (UTC)", "STATE", "FILES", "SIZE", "UNIQUE", ""],
                &rows,
            ));
        }
    }
    out
}

/// Rows under a header, columns padded, each line indented by two spaces.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = head.map(str::len);
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (c, w) in cells.iter().zip(width) {
            l.push_str(&format!("  {c:<w$}"));
        }
        format!("{}\n", l.trim_end())
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `--at` as the runner takes it: `latest`, or an RFC 3339 time in UTC. A date alone means the
/// end of that day, so `--at 2026-11-20` takes that day's snapshot; a span such as `3d` means
/// that long ago.
fn at_time(at: &str, now: jiff::Timestamp) -> Result<String, String> {
    use jiff::civil::{Date, DateTime};
    let utc = |dt: DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().to_string())
            .map_err(|e| e.to_string())
    };
    if at == "latest" {
        return Ok(at.to_string());
    }
    if let Ok(d) = at.parse::<Date>()
        && !at.contains('T')
    {
        return utc(d.at(23, 59, 59, 0));
    }
    if let Ok(t) = at.parse::<jiff::Timestamp>() {
        return Ok(t.to_string());
    }
    if let Ok(dt) = at.trim_end_matches('Z').parse::<DateTime>() {
        return utc(dt);
    }
    if at.chars().any(|c| c.is_ascii_alphabetic())
        && let Ok(secs) = bkc::schedule::parse_duration(at, false)
    {
        let ago = jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
        return now
            .checked_sub(ago)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string());
    }
    Err(format!(
        "--at {at:?}: give `latest`, a date (2026-11-20), a time in UTC (2026-11-20T14:00) or a span ago (3d)"
    ))
}

pub fn restore(args: &RestoreArgs, v: Verbosity) -> Result<Exit, Exit> {
    let (file, paths) = file_and_rest(&args.words);
    let t = super::load::for_deploy(&file, v)?;
    let job = job_of(t, &file, &args.job)?;
    let mut runner_args: Vec<String> = Vec::new();
    if let Some(n) = args.sync {
        runner_args.extend(["--sync".into(), n.to_string()]);
    }
    if let Some(at) = &args.at {
        let at = at_time(at, jiff::Timestamp::now()).or_exit(Exit::CouldNotRun)?;
        runner_args.extend(["--at".into(), at]);
    }
    if let Some(to) = &args.to {
        check_host(t, &file, to)?;
        runner_args.extend(["--to".into(), to.clone()]);
    }
    let asks = args.in_place && !args.yes && !args.dry_run;
    if args.in_place {
        runner_args.push("--in-place".into());
        if asks {
            // Asked after the changes are shown, on the operator's terminal; without one,
            // refused here before anything is touched.
            if !std::io::stdin().is_terminal() {
                eprintln!(
                    "error: an in-place restore asks first, and standard input is not a terminal; pass --yes to go ahead"
                );
                return Err(Exit::CouldNotRun);
            }
            runner_args.push("--confirm".into());
        } else if args.yes {
            runner_args.push("--yes".into());
        }
    }
    for (flag, on) in [
        ("--force", args.force),
        ("--delete", args.delete),
        ("--dry-run", args.dry_run),
    ] {
        if on {
            runner_args.push(flag.into());
        }
    }
    runner_args.push("--".into());
    runner_args.extend(paths.iter().cloned());
    let mut declined = false;
    let mut confirmed = false;
    let ended = follow(&args.remote, t, &file, job, "restore", &runner_args, |ev| {
        match ev {
            // Once confirmed, the same changes again would only repeat the list just read.
            // A closed stdout must not stop a restore halfway: the line is lost, the copy goes on.
            Event::Change { itemized, path } if !confirmed => {
                let line = format!("{} {}\n", printable_line(itemized), printable_line(path));
                let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes());
            }
            Event::Confirm { changes } => {
                let q = format!("Restore these {changes} changes in place?");
                if confirm(false, &q).is_ok() {
                    confirmed = true;
                    return Answer::Yes;
                }
                declined = true;
                return Answer::No;
            }
            _ => {}
        }
        Answer::Continue
    })?;
    Ok(match ended.result {
        RunResult::Success => Exit::Success,
        _ if declined => Exit::Declined,
        RunResult::Refused => Exit::Refused,
        RunResult::Error => Exit::CouldNotRun,
        _ => Exit::HostFailed,
    })
}

/// The host of a `--to HOST:DIR` must be one of the topology's.
fn check_host(t: &Topology, file: &std::path::Path, to: &str) -> Result<(), Exit> {
    let Some((host, _)) = to.split_once(':').filter(|(h, _)| !h.contains('/')) else {
        return Ok(());
    };
    if t.hosts.contains_key(host) {
        return Ok(());
    }
    let hint = did_you_mean(host, t.hosts.keys().map(String::as_str))
        .map_or(String::new(), |k| format!("; did you mean `{k}`?"));
    eprintln!(
        "error: --to {to}: {} has no host `{host}`{hint}",
        file.display()
    );
    Err(Exit::CouldNotRun)
}

/// Run `bkc-run <tool>` for `job` on its host and follow its events.
fn follow(
    remote: &Remote,
    t: &'static Topology,
    file: &std::path::Path,
    job: &Job,
    tool: &str,
    args: &[String],
    each: impl FnMut(&Event) -> Answer,
) -> Result<Ended, Exit> {
    let only = HostFilter::new(&[Selector::Name(job.host.clone())]);
    let Fleet { hosts, .. } = Fleet::of(t, file, &only)?;
    let ssh = remote.session(&hosts, &[])?;
    let (_, target) = hosts.first().ok_or(Exit::CouldNotRun)?;
    let transport = ssh.host(&job.host, target, 0);
    restore::follow(&transport, job, tool, args, each).or_exit(Exit::HostFailed)
}

pub fn verify(args: &VerifyArgs, v: Verbosity) -> Result<Exit, Exit> {
    let t = super::load::for_deploy(&args.file, v)?;
    let job = job_of(t, &args.file, &args.job)?;
    let mut runner_args: Vec<String> = Vec::new();
    if args.checksum {
        runner_args.push("--checksum".into());
    }
    if let Some(n) = args.sync {
        runner_args.extend(["--sync".into(), n.to_string()]);
    }
    let mut report: Option<VerifyReport> = None;
    let ended = follow(
        &args.remote,
        t,
        &args.file,
        job,
        "verify",
        &runner_args,
        |ev| {
            if let Event::Verified { report: r } = ev {
                report = Some(r.clone());
            }
            Answer::Continue
        },
    )
    // Verify promises 2 for "could not run", an unreachable host included.
    .map_err(|_| Exit::CouldNotRun)?;
    let Some(report) = report else {
        return Err(Exit::CouldNotRun);
    };
    let text = if args.json {
        json(&report)
    } else {
        verify_text(&report)
    };
    output::stdout(text.as_bytes())?;
    Ok(match ended.result {
        RunResult::Success => Exit::Success,
        RunResult::Failed if !report.has_errors() && report.has_faults() => Exit::Found,
        _ => Exit::CouldNotRun,
    })
}

/// The findings, the faults first, then a count.
fn verify_text(r: &VerifyReport) -> String {
    let mut out = String::new();
    for s in &r.syncs {
        out.push_str(&format!(
            "{} sync {}: {} against {}\n",
            r.job,
            s.sync,
            printable_line(&s.source),
            printable_line(&s.compared)
        ));
        if let Some(e) = &s.error {
            out.push_str(&format!("  could not compare: {}\n", printable_line(e)));
            continue;
        }
        let mut findings: Vec<_> = s.findings.iter().collect();
        findings.sort_by_key(|f| (!f.class.is_fault(), f.class));
        for f in findings {
            out.push_str(&format!(
                "  {:<9}  {}  {}\n",
                f.class.as_str(),
                printable_line(&f.itemized),
                printable_line(&f.path)
            ));
        }
    }
    out.push_str(&format!(
        "{}: {} corrupted, {} missing, {} changed since the copy was made{}\n",
        r.job,
        r.count(Class::Corrupted),
        r.count(Class::Missing),
        r.count(Class::Changed),
        if r.checksum {
            " (every byte compared)"
        } else {
            " (sizes and times compared; --checksum reads every byte)"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_dates_times_and_spans() {
        let now: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: &str| at_time(s, now);
        assert_eq!(at("latest").unwrap(), "latest");
        assert_eq!(at("2026-11-20").unwrap(), "2026-11-20T23:59:59Z");
        assert_eq!(at("2026-11-20T14:00").unwrap(), "2026-11-20T14:00:00Z");
        assert_eq!(at("2026-11-20T14:00:30Z").unwrap(), "2026-11-20T14:00:30Z");
        assert_eq!(
            at("2026-11-20T14:00+01:00").unwrap(),
            "2026-11-20T13:00:00Z"
        );
        assert_eq!(at("3d").unwrap(), "2026-11-20T10:00:00Z");
        assert_eq!(at("1h 30m").unwrap(), "2026-11-23T08:30:00Z");
        for bad in ["2026", "yesterday", "", "2026-13-01"] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_file_is_the_word_ending_in_kdl() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let words = w(&["site.kdl", "a", "b"]);
        let (f, rest) = file_and_rest(&words);
        assert_eq!((f, rest), (PathBuf::from("site.kdl"), &words[1..]));
        let words = w(&["music/a.mp3"]);
        let (f, rest) = file_and_rest(&words);
        assert_eq!((f, rest), (PathBuf::from("bkc.kdl"), &words[..]));
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
