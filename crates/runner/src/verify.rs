//! `bkc-run verify SPEC [--checksum] [--sync N]`: compare each sync's source with its copy (the
//! mirror, or the latest complete snapshot) by the sync's own rsync in dry-run with itemized
//! changes, while holding the job's locks, and classify every difference (see [`Class`]).
//!
//! A difference is expected when the source changed after the copy was made: its modification
//! time is at or after the start of the run that made the copy (the snapshot's time, or for a
//! mirror the last successful run's start). Otherwise a file whose content or size differs is
//! corrupted, and one that is not in the copy at all is missing.
//!
//! stdout carries event lines; the report is the `verified` event. Exit 0: nothing corrupted
//! or missing; 1: something was; 2: a sync could not be compared.
//!
//! With `--record` (what the scheduled `bkc-verify@<job>` runs) the outcome and the counts go
//! into the job's state file (its `verify`, written while the locks are still held, the run's
//! own fields untouched) and metrics; a failure is then told by systemd's `OnFailure=` as a
//! failed run is, through `bkc-run --notify`, which finds this verify by its invocation.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bkc_contract::event::{Event, SyncClass};
use bkc_contract::spec::Sync;
use bkc_contract::state::{RunState, STATE_VERSION, VerifyState};
use bkc_contract::verify::{Class, Finding, SyncVerify, VERIFY_VERSION, VerifyReport};
use jiff::Timestamp;

use super::itemize::{self, Item};
use super::restore::{Failed, end, listing, lock_outcome, pick_sync};
use super::rsync::{self, Stats};
use super::{Ctx, Outcome, child, exit, hold, loc, report, report::say};

#[derive(clap::Args)]
pub struct Args {
    /// The job spec, e.g. /etc/bkc/jobs/<job>.json.
    spec: PathBuf,
    /// Read and compare every byte, not only sizes and modification times.
    #[arg(long)]
    checksum: bool,
    /// Only this sync, from 1.
    #[arg(long, value_name = "N", conflicts_with = "record")]
    sync: Option<usize>,
    /// Record the outcome in the job's state file and metrics (the scheduled verify).
    #[arg(long)]
    record: bool,
}

pub fn main(args: &Args) -> i32 {
    child::install_signal_handlers();
    let _shared = super::ssh::share_connections();
    let (spec, start) = match super::load_spec(&args.spec).and_then(|s| Ok((s, super::now()?))) {
        Ok(v) => v,
        Err(m) => {
            say!("bkc-run: {m}");
            return exit::USAGE;
        }
    };
    let id = format!("verify-{}", start.strftime("%Y%m%dT%H%M%SZ"));
    let mut ctx = super::new_ctx(spec, start, &id, false);
    // Reading every byte of a large backup may take longer than the job's own runs.
    ctx.deadline = None;
    let started = Instant::now();
    let only = match args.sync {
        Some(n) => match pick_sync(&ctx.spec, Some(n)) {
            Ok((i, _)) => Some(i),
            Err(m) => {
                return stop(&ctx, args, started, Outcome::Spec, m);
            }
        },
        None => None,
    };
    let (held, waited) = match hold::take(&ctx) {
        Ok(v) => v,
        Err(f) => return stop(&ctx, args, started, lock_outcome(&f), f.message()),
    };
    let report = compare_all(&ctx, args.checksum, only);
    let (outcome, message) = judge(&report);
    if args.record {
        // Under the locks: no run of the job writes its state meanwhile.
        record(
            &ctx,
            args.checksum,
            started,
            outcome,
            message.clone(),
            Some(&report),
        );
    }
    hold::release(&ctx, held);
    ctx.report.event(Event::Verified { report });
    end(&ctx, started, outcome, message, Stats::default(), waited)
}

/// End a verify that compared nothing.
fn stop(ctx: &Ctx, args: &Args, started: Instant, outcome: Outcome, message: String) -> i32 {
    if args.record {
        record(
            ctx,
            args.checksum,
            started,
            outcome,
            Some(message.clone()),
            None,
        );
    }
    end(
        ctx,
        started,
        outcome,
        Some(message),
        Stats::default(),
        Duration::ZERO,
    )
}

/// Put the verify's outcome into the job's state file and metrics.
fn record(
    ctx: &Ctx,
    checksum: bool,
    started: Instant,
    outcome: Outcome,
    message: Option<String>,
    report: Option<&VerifyReport>,
) {
    let elapsed = started.elapsed();
    let end = jiff::SignedDuration::try_from(elapsed)
        .ok()
        .and_then(|d| ctx.start.checked_add(d).ok())
        .unwrap_or(ctx.start);
    let count = |c: Class| report.map_or(0, |r| r.count(c) as u64);
    let result = outcome.result();
    let mut v = VerifyState {
        run: ctx.report.run().to_string(),
        start: Some(ctx.start.to_string()),
        end: Some(end.to_string()),
        duration_secs: elapsed.as_secs_f64(),
        result: Some(result),
        exit_code: outcome.exit_code(),
        checksum,
        corrupted: count(Class::Corrupted),
        missing: count(Class::Missing),
        changed: count(Class::Changed),
        reason: message,
        last_success: None,
        invocation: std::env::var("INVOCATION_ID").ok(),
    };
    super::write_report(ctx, |now| {
        let mut s = now.unwrap_or_else(|| RunState {
            version: STATE_VERSION,
            job: ctx.spec.job.clone(),
            ..RunState::default()
        });
        let before = s.verify.take().and_then(|v| v.last_success);
        v.last_success = if result.is_failure() {
            before
        } else {
            v.end.clone()
        };
        s.verify = Some(v);
        s
    });
}

/// What the report makes of the verify: a sync that could not be compared is an error (exit 2),
/// a fault a failure (exit 1).
fn judge(r: &VerifyReport) -> (Outcome, Option<String>) {
    let counts = format!(
        "{} corrupted, {} missing, {} changed since the copy was made",
        r.count(Class::Corrupted),
        r.count(Class::Missing),
        r.count(Class::Changed)
    );
    if r.has_errors() {
        let errs: Vec<String> = r
            .syncs
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("sync {}: {e}", s.sync)))
            .collect();
        (
            Outcome::Spec,
            Some(format!("{}; {counts}", errs.join("; "))),
        )
    } else if r.has_faults() {
        (Outcome::Failed, Some(counts))
    } else {
        (Outcome::Success, Some(counts))
    }
}

fn compare_all(ctx: &Ctx, checksum: bool, only: Option<usize>) -> VerifyReport {
    let state = report::read_state(&report::state_path(&ctx.spec.state_dir, &ctx.spec.job));
    let last = state.ok().flatten().and_then(|s| s.last_success_start);
    let since: Option<Timestamp> = last.as_deref().and_then(|t| t.parse().ok());
    let syncs = ctx
        .spec
        .syncs
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
        .map(|(i, s)| compare(ctx, i, s, checksum, since))
        .collect();
    VerifyReport {
        version: VERIFY_VERSION,
        job: ctx.spec.job.clone(),
        host: ctx.spec.host.clone(),
        checksum,
        last_success_start: last,
        syncs,
    }
}

fn compare(
    ctx: &Ctx,
    i: usize,
    sync: &Sync,
    checksum: bool,
    last_success: Option<Timestamp>,
) -> SyncVerify {
    let mut out = SyncVerify {
        sync: i + 1,
        source: loc(&sync.source),
        compared: loc(&sync.dest),
        snapshot: None,
        since: None,
        findings: Vec::new(),
        error: None,
    };
    let copy = match copy_of(ctx, sync, last_success) {
        Ok(c) => c,
        Err((_, m)) => {
            out.error = Some(m);
            return out;
        }
    };
    out.compared = format!("{}:{}", sync.dest.host, copy.path);
    out.snapshot = copy.snapshot;
    out.since = Some(copy.since.to_string());
    match differences(ctx, sync, &copy.path, checksum) {
        Ok(items) => {
            out.findings = items
                .into_iter()
                .map(|item| Finding {
                    class: classify(&item, copy.since),
                    source_mtime: item.mtime.map(|t| t.to_string()),
                    itemized: item.itemized,
                    path: item.path,
                })
                .collect();
        }
        Err(m) => out.error = Some(m),
    }
    out
}

/// What a sync's source is compared with, and since when its changes are expected.
struct Copy {
    /// The directory to compare, with a trailing slash as the sync's dest has it.
    path: String,
    snapshot: Option<String>,
    since: Timestamp,
}

fn copy_of(ctx: &Ctx, sync: &Sync, last_success: Option<Timestamp>) -> Result<Copy, Failed> {
    if sync.snapshot.is_none() {
        let since = last_success.ok_or_else(|| {
            (
                Outcome::Spec,
                format!(
                    "the job has no successful run yet, so {} is no copy to compare with",
                    loc(&sync.dest)
                ),
            )
        })?;
        return Ok(Copy {
            path: sync.dest.path.clone(),
            snapshot: None,
            since,
        });
    }
    let listing = listing(ctx, sync)?;
    let (name, time) = listing.complete.first().ok_or_else(|| {
        (
            Outcome::Spec,
            format!(
                "{} has no complete snapshot to compare with",
                loc(&sync.dest)
            ),
        )
    })?;
    let since = time
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| (Outcome::Spec, format!("snapshot {name}: {e}")))?
        .timestamp();
    Ok(Copy {
        path: format!("{}/{name}/", sync.dest.path.trim_end_matches('/')),
        snapshot: Some(name.clone()),
        since,
    })
}

/// The sync's own rsync, in dry-run, into `copy`: every item it would change.
fn differences(ctx: &Ctx, sync: &Sync, copy: &str, checksum: bool) -> Result<Vec<Item>, String> {
    let target = rsync::Target {
        dest_path: copy,
        link_dest: None,
        resumed: false,
    };
    let mut argv = rsync::argv(&ctx.spec, sync, &target, true)?;
    let ends = argv.split_off(argv.len().saturating_sub(2));
    argv.push(itemize::out_format());
    if checksum {
        argv.push("--checksum".into());
    }
    argv.extend(ends);
    let mut items = Vec::new();
    let (code, _, stop) =
        itemize::run(&argv, |i| items.push(i)).map_err(|e| format!("cannot run rsync: {e}"))?;
    if let Some(s) = stop {
        return Err(super::Fail::Stopped(s).message());
    }
    match rsync::classify(code) {
        SyncClass::Ok | SyncClass::Warning => Ok(items),
        _ => Err(format!("rsync failed with exit code {code}")),
    }
}

/// What one difference means; `since` is the start of the run that made the copy.
fn classify(item: &Item, since: Timestamp) -> Class {
    let changed_since = item.mtime.is_some_and(|m| m >= since);
    if item.is_deletion() || changed_since {
        Class::Changed
    } else if item.is_new() {
        Class::Missing
    } else if item.content_differs() {
        Class::Corrupted
    } else {
        // Only attributes differ (a mode, an owner, a directory's time): not content.
        Class::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_classified_by_the_source_time() {
        let since: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let item = |i: &str, t: &str| itemize::parse(&format!("bkc-item {i} {t} p")).unwrap();
        let old = "2026/01/01-00:00:00";
        let new = "2026/01/02-00:00:00";
        assert_eq!(classify(&item(">fc........", old), since), Class::Corrupted);
        assert_eq!(classify(&item(">f.st......", old), since), Class::Corrupted);
        assert_eq!(classify(&item(">fc........", new), since), Class::Changed);
        assert_eq!(classify(&item(">f+++++++++", old), since), Class::Missing);
        assert_eq!(classify(&item(">f+++++++++", new), since), Class::Changed);
        assert_eq!(classify(&item("cd+++++++++", old), since), Class::Missing);
        assert_eq!(classify(&item("*deleting  ", old), since), Class::Changed);
        assert_eq!(classify(&item(".f...p.....", old), since), Class::Changed);
        assert_eq!(classify(&item(".d..t......", old), since), Class::Changed);
    }
}
