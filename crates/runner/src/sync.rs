//! One sync of a run: the empty-source guard, the snapshot's partial directory, rsync with its
//! retries, and the snapshot's completion; and, once the whole run has succeeded, retention.

use std::process::Command;
use std::time::{Duration, Instant};

use bkc_contract::event::{Event, SyncClass};
use bkc_contract::serve::{Reply, Request, SourceState};
use bkc_contract::spec::{Location, Sync};
use bkc_contract::state::SyncReport;

use super::child::{self, Stop};
use super::snapshot::{self, Dest};
use super::{Ctx, Fail, Outcome, Run, dry, freeze, loc, rsync, volume};

/// Why a sync failed, and what that makes of the run.
type Failed = (Outcome, String);

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn dest_of<'a>(ctx: &'a Ctx, sync: &'a Sync) -> Dest<'a> {
    if ctx.spec.is_local(&sync.dest.host) {
        Dest::Local(&sync.dest.path)
    } else {
        Dest::Remote {
            spec: &ctx.spec,
            host: &sync.dest.host,
            path: &sync.dest.path,
        }
    }
}

/// The state of a path (a sync's source, or a restore's target, which must be new or empty),
/// wherever it is; a remote one as `bkc-run serve` sees it.
pub(crate) fn path_state(ctx: &Ctx, at: &Location) -> Result<SourceState, Fail> {
    if ctx.spec.is_local(&at.host) {
        let p = match at.path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        Ok(match std::fs::metadata(p) {
            Err(_) => SourceState::Missing,
            Ok(m) if m.is_dir() => match std::fs::read_dir(p).map(|mut rd| rd.next().is_some()) {
                Ok(true) => SourceState::NonEmpty,
                _ => SourceState::Empty,
            },
            Ok(_) => SourceState::NonEmpty,
        })
    } else {
        let req = Request::SourceState {
            path: at.path.clone(),
        };
        match ctx.request(&at.host, &req)? {
            Reply::Source { state } => Ok(state),
            other => Err(Fail::Lock(format!(
                "unexpected answer about {}: {other:?}",
                loc(at)
            ))),
        }
    }
}

/// Run sync `i` of the spec, recording its figures and any failure in `run`.
pub(super) fn run_sync(ctx: &Ctx, run: &mut Run, i: usize, sync: &Sync) {
    let mut rep = SyncReport {
        source: loc(&sync.source),
        dest: loc(&sync.dest),
        ..Default::default()
    };
    let result = sync_inner(ctx, run, i, sync, &mut rep);
    run.syncs.push(rep);
    if let Err((o, msg)) = result {
        run.fail(ctx, o, msg);
    }
}

/// The outcome of a failure inside a sync. Unlike [`Run::fail_with`], a `Fail::Lock` here is no
/// lock at all but a remote step of this sync (an unreachable source host, a failed listing):
/// the sync fails (exit 1) and the remaining syncs still run, where a lock failure would stop the
/// run with exit 3.
fn outcome_of(f: Fail) -> (Outcome, String) {
    let o = match &f {
        Fail::Spec(_) => Outcome::Spec,
        Fail::Timeout(_) | Fail::Stopped(Stop::Deadline) => Outcome::Timeout,
        Fail::Stopped(Stop::Signal(s)) => Outcome::Interrupted(*s),
        Fail::Lock(_) | Fail::LockTimeout(_) => Outcome::Failed,
    };
    (o, f.message())
}

/// A snapshot being made by a sync: it writes into `.partial-<name>` next to the complete
/// snapshots and hardlinks unchanged files to the newest complete one.
struct Snap<'a> {
    dest: Dest<'a>,
    /// This run's snapshot name, and the partial one it is written under until complete.
    name: String,
    partial: String,
    /// The names under dest once it is complete.
    after: Vec<String>,
    /// The newest complete snapshot before this run, by name.
    newest: Option<String>,
    /// The complete snapshot unchanged files are hardlinked to (`--link-dest`).
    link_dest: Option<String>,
    /// The partial directory is an interrupted run's, renamed to this run's name.
    resumed: bool,
}

fn sync_inner(
    ctx: &Ctx,
    run: &mut Run,
    i: usize,
    sync: &Sync,
    rep: &mut SyncReport,
) -> Result<(), Failed> {
    guard_source(ctx, sync, rep)?;
    // A frozen source: the rest of the sync copies from the snapshot (a dry run from the live
    // source, which it does not change).
    let frozen = match sync.source_snapshot {
        Some(_) if ctx.dry_run => None,
        Some(_) if volume::kind(sync).is_some() => {
            Some(volume::mounted(&ctx.spec, i, sync).map_err(|m| (Outcome::Failed, m))?)
        }
        Some(_) => Some(freeze::take(&ctx.spec, i, sync).map_err(|m| (Outcome::Failed, m))?),
        None => None,
    };
    let thawed;
    let sync = match &frozen {
        Some(f) => {
            thawed = Sync {
                source: Location {
                    host: sync.source.host.clone(),
                    path: f.source(),
                },
                ..sync.clone()
            };
            &thawed
        }
        None => sync,
    };
    let copied = copy_into(ctx, run, i, sync, rep);
    if let Some(f) = frozen {
        f.drop_now();
    }
    copied
}

/// The transfer of a sync whose source is ready, and its snapshot if it makes one.
fn copy_into(
    ctx: &Ctx,
    run: &mut Run,
    i: usize,
    sync: &Sync,
    rep: &mut SyncReport,
) -> Result<(), Failed> {
    let snap = match sync.snapshot {
        Some(_) => Some(start_snapshot(ctx, sync, rep)?),
        None => None,
    };
    let partial_path = snap
        .as_ref()
        .map(|s| format!("{}/", join(s.dest.path(), &s.partial)));
    let target = rsync::Target {
        dest_path: partial_path.as_deref().unwrap_or(&sync.dest.path),
        link_dest: snap.as_ref().and_then(|s| s.link_dest.as_deref()),
        resumed: snap.as_ref().is_some_and(|s| s.resumed),
    };
    transfer(ctx, i, sync, &target, rep)?;
    match snap {
        Some(snap) => complete_snapshot(ctx, run, i, snap, rep),
        None => Ok(()),
    }
}

/// A deleting sync from a missing or empty source would wipe the destination (a mount that did
/// not come up looks just like that). A snapshot of an empty source is a missing mount too, and
/// retention would then prune good snapshots in favour of empty ones: guard it the same way.
fn guard_source(ctx: &Ctx, sync: &Sync, rep: &SyncReport) -> Result<(), Failed> {
    if !(sync.deletes || sync.snapshot.is_some()) || sync.allow_empty_source {
        return Ok(());
    }
    let state = path_state(ctx, &sync.source).map_err(outcome_of)?;
    if state == SourceState::NonEmpty {
        return Ok(());
    }
    Err((
        Outcome::Refused,
        format!(
            "refusing to sync {} to {} {}: the source is {state} (nothing was changed; set allow-empty-source if this is intended)",
            rep.source,
            rep.dest,
            if sync.deletes {
                "with deletion"
            } else {
                "as a snapshot"
            },
        ),
    ))
}

/// List the destination's snapshots, pick this run's name, and take over an interrupted run's
/// partial directory if there is one, so its files need not be sent again.
fn start_snapshot<'a>(ctx: &'a Ctx, sync: &'a Sync, rep: &SyncReport) -> Result<Snap<'a>, Failed> {
    let dest = dest_of(ctx, sync);
    let listing = dest
        .list(!ctx.dry_run, ctx.deadline)
        .map_err(|m| (Outcome::Failed, m))?;
    let name = snapshot::name_for(ctx.start);
    // An append-only destination on another host names the snapshot itself, by its own clock,
    // when it completes it: this name is only the partial's, and one of its snapshots may well
    // have it already (the last run's, completed there in the second this run started here).
    let named_there = sync.snapshot.as_ref().is_some_and(|s| s.append_only)
        && matches!(dest, Dest::Remote { .. });
    if !named_there && listing.complete.iter().any(|c| c.0 == name) {
        return Err((
            Outcome::Failed,
            format!("snapshot {name} already exists in {}", rep.dest),
        ));
    }
    let partial = format!("{}{name}", snapshot::PARTIAL);
    let mut reused = None;
    if !ctx.dry_run
        && let Some(r) = listing.resumable()
        && r != partial
    {
        match dest.rename(r, &partial, ctx.deadline) {
            Ok(()) => reused = Some(r.to_string()),
            Err(m) => ctx
                .report
                .warning(&format!("cannot reuse the interrupted snapshot {r}: {m}")),
        }
    }
    let mut after: Vec<String> = listing
        .complete
        .iter()
        .chain(&listing.partial)
        .map(|e| e.0.clone())
        .filter(|n| Some(n) != reused.as_ref() && *n != partial)
        .collect();
    after.push(name.clone());
    Ok(Snap {
        newest: listing.newest().map(String::from),
        // `check` made sure the dest is absolute, so the base is too.
        link_dest: listing.base(&name).map(|b| join(dest.path(), b)),
        resumed: reused.is_some(),
        dest,
        name,
        partial,
        after,
    })
}

/// rsync until it succeeds, fails for good, or has used up the spec's retries; only network
/// failures are retried, each after twice the pause of the one before.
fn transfer(
    ctx: &Ctx,
    i: usize,
    sync: &Sync,
    target: &rsync::Target,
    rep: &mut SyncReport,
) -> Result<(), Failed> {
    let attempts = ctx.spec.retries.saturating_add(1);
    let mut delay = Duration::from_secs(ctx.spec.retry_delay_secs);
    for attempt in 1..=attempts {
        let (code, class) = attempt_rsync(ctx, i, sync, target, attempt, rep)?;
        let failed = |why: String| {
            Err((
                Outcome::Failed,
                format!("sync {} -> {} failed: {why}", rep.source, rep.dest),
            ))
        };
        match class {
            SyncClass::Ok | SyncClass::Warning => return Ok(()),
            SyncClass::Network if attempt < attempts => {
                ctx.report.event(Event::Retry {
                    attempt,
                    delay_secs: delay.as_secs(),
                    exit_code: code,
                    index: i,
                });
                ctx.say(&format!(
                    "rsync exit code {code} (network); retrying in {}s",
                    delay.as_secs()
                ));
                if let Some(s) = child::sleep(delay, ctx.deadline) {
                    return Err(outcome_of(Fail::Stopped(s)));
                }
                delay = delay.saturating_mul(2);
            }
            SyncClass::Network => {
                return failed(format!(
                    "network error (rsync exit code {code}) after {attempt} attempts"
                ));
            }
            SyncClass::Failed => return failed(format!("rsync exit code {code}")),
        }
    }
    Ok(())
}

/// One rsync, with its `sync-start` and `sync-end` events; its figures go into `rep`.
fn attempt_rsync(
    ctx: &Ctx,
    i: usize,
    sync: &Sync,
    target: &rsync::Target,
    attempt: u32,
    rep: &mut SyncReport,
) -> Result<(i32, SyncClass), Failed> {
    let argv = rsync::argv(&ctx.spec, sync, target, ctx.dry_run).map_err(|m| (Outcome::Spec, m))?;
    ctx.report.event(Event::SyncStart {
        argv: argv.clone(),
        attempt,
        dest: rep.dest.clone(),
        dry_run: ctx.dry_run,
        index: i,
        source: rep.source.clone(),
    });
    let t = Instant::now();
    let mut cmd = Command::new("rsync");
    cmd.args(&argv);
    let (code, out, stop) = child::capture_echo(cmd, ctx.deadline, true)
        .map_err(|e| (Outcome::Failed, format!("cannot run rsync: {e}")))?;
    let stats = rsync::parse_stats(&out);
    rep.exit_codes.push(code);
    rep.bytes_sent += stats.sent;
    rep.bytes_received += stats.received;
    let class = rsync::classify(code);
    ctx.report.event(Event::SyncEnd {
        attempt,
        bytes_received: stats.received,
        bytes_sent: stats.sent,
        class,
        exit_code: code,
        index: i,
        secs: t.elapsed().as_secs_f64(),
    });
    match stop {
        Some(s) => Err(outcome_of(Fail::Stopped(s))),
        None => Ok((code, class)),
    }
}

/// Give the partial directory its final name and point `latest` at it; retention waits for the
/// whole run to succeed (see [`prune`]).
fn complete_snapshot(
    ctx: &Ctx,
    run: &mut Run,
    i: usize,
    snap: Snap,
    rep: &mut SyncReport,
) -> Result<(), Failed> {
    let Snap {
        dest,
        name,
        partial,
        after,
        newest,
        link_dest,
        resumed: _,
    } = snap;
    let snap_name = name.clone();
    if ctx.dry_run {
        dry(
            ctx,
            &format!("would complete snapshot {name} in {}", rep.dest),
        );
        return Ok(());
    }
    let name = dest
        .complete(&partial, &name, ctx.deadline)
        .map_err(|m| (Outcome::Failed, m))?;
    // The destination may have named it (an append-only one does, by its own clock).
    let after: Vec<String> = after
        .into_iter()
        .map(|n| if n == snap_name { name.clone() } else { n })
        .collect();
    ctx.report.event(Event::Snapshot {
        base: link_dest,
        dest: rep.dest.clone(),
        index: i,
        name: name.clone(),
    });
    if let Some(n) = newest.filter(|n| *n > name) {
        // Names are UTC times of one fixed width, so they sort as the times do.
        ctx.report.warning(&format!(
            "snapshot {name} in {} is not the newest by name: {n} is dated after this run's start (a clock that was or is wrong?); both are kept and `latest` points to {name}",
            rep.dest
        ));
    }
    rep.snapshot = Some(name.clone());
    run.snapshotted.push((i, name, after));
    Ok(())
}

/// Apply retention, only after everything succeeded: a failed run must never cost an old
/// snapshot. Failures here are warnings; the new snapshot is already complete. Append-only
/// snapshots on another host are not the runner's to prune: their host does it
/// (`bkc-prune-<job>`).
pub(super) fn prune(ctx: &Ctx, run: &mut Run) {
    for (i, current, names) in &run.snapshotted {
        let sync = &ctx.spec.syncs[*i];
        let Some(snap) = &sync.snapshot else { continue };
        let dest = dest_of(ctx, sync);
        if snap.append_only && matches!(dest, Dest::Remote { .. }) {
            continue;
        }
        match dest.prune(&snap.retention, current, names, ctx.deadline) {
            Ok(removed) => ctx.report.event(Event::Prune {
                dest: loc(&sync.dest),
                index: *i,
                removed,
            }),
            Err(m) => ctx
                .report
                .warning(&format!("pruning {} failed: {m}", loc(&sync.dest))),
        }
    }
}
