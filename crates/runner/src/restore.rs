//! `bkc-run restore SPEC [--sync N] [--at TIME] (--to [HOST:]DIR | --in-place) [PATH...]`: copy
//! a snapshot (or a mirror) back with rsync, in the reverse direction of the job, while holding
//! the job's locks. A push job restores by pulling on its host, a pull job by pushing from it.
//!
//! Safety, in the order it is checked: a `--to` directory must be new or empty unless `--force`;
//! an in-place restore first shows its changes and goes ahead only on `--yes` or a confirmed
//! `--confirm`; nothing is deleted unless `--delete`; `--dry-run` changes nothing.
//!
//! stdout carries event lines as a run's does (`locked`, `restore`, `change`, `confirm`, `end`);
//! docs/RESTORE.md describes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bkc_contract::event::Event;
use bkc_contract::spec::{JobSpec, Location, Sync};
use jiff::Timestamp;
use jiff::civil::DateTime;

use super::child::{self, Stop};
use super::rsync::{self, Stats};
use super::snapshot::{Dest, Listing};
use super::sync::path_state;
use super::{Ctx, Fail, Outcome, exit, hold, itemize, loc, report::say, ssh};
use bkc_contract::serve::{Reply, Request as ServeRequest, SourceState};

#[derive(clap::Args)]
pub struct Args {
    /// The job spec, e.g. /etc/bkc/jobs/<job>.json.
    spec: PathBuf,
    /// The sync to restore, from 1; needed when the job has several.
    #[arg(long, value_name = "N")]
    sync: Option<usize>,
    /// `latest` (the default) or an RFC 3339 time: the newest complete snapshot at or before it.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The directory to copy into: on the sync's source host, or on HOST. It must be new or
    /// empty unless --force.
    #[arg(long, value_name = "[HOST:]DIR", required_unless_present = "in_place")]
    to: Option<String>,
    /// Copy back over the sync's source itself.
    #[arg(long, conflicts_with = "to")]
    in_place: bool,
    /// Write into a --to directory that is not empty.
    #[arg(long)]
    force: bool,
    /// Delete files in the target that the snapshot does not have.
    #[arg(long)]
    delete: bool,
    /// Show what would change; change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Restore in place without asking.
    #[arg(long, conflicts_with = "confirm")]
    yes: bool,
    /// Restore in place after showing the changes, if the next line on stdin is `yes`.
    #[arg(long)]
    confirm: bool,
    /// Paths relative to the sync's source; none: all of it.
    paths: Vec<String>,
}

/// Why a restore stopped, and what that makes of it.
pub(crate) type Failed = (Outcome, String);

/// Where a restore copies from and to, worked out from the spec and the arguments before
/// anything is touched.
struct Request<'a> {
    spec: &'a JobSpec,
    sync: &'a Sync,
    index: usize,
    at: Option<DateTime>,
    /// Where the files go: the directory rsync copies into.
    to: Location,
    /// The paths rsync copies, relative to the snapshot's (or mirror's) root; none: the root's
    /// content.
    paths: Vec<String>,
    /// The paths as the operator gave them, each checked to be in the snapshot.
    asked: Vec<String>,
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
    let id = format!("restore-{}", start.strftime("%Y%m%dT%H%M%SZ"));
    let mut ctx = super::new_ctx(spec, start, &id, args.dry_run);
    // A restore is not a run: the job's own timeout is for its backups.
    ctx.deadline = None;
    let started = Instant::now();
    let (outcome, message, stats, waited) = match request(&ctx.spec, args) {
        Ok(req) => restore(&ctx, args, &req),
        Err(m) => (Outcome::Spec, Some(m), Stats::default(), Duration::ZERO),
    };
    end(&ctx, started, outcome, message, stats, waited)
}

/// The end event, and the exit code.
pub(crate) fn end(
    ctx: &Ctx,
    started: Instant,
    outcome: Outcome,
    message: Option<String>,
    stats: Stats,
    waited: Duration,
) -> i32 {
    if let Some(m) = &message {
        ctx.say(&format!("{}: {m}", outcome.result()));
    }
    ctx.report.event(Event::End {
        bytes_received: stats.received,
        bytes_sent: stats.sent,
        dry_run: ctx.dry_run,
        exit_code: outcome.exit_code(),
        lock_wait_secs: waited.as_secs_f64(),
        message,
        result: outcome.result(),
        secs: started.elapsed().as_secs_f64(),
    });
    outcome.exit_code()
}

/// The sync a tool works on: `--sync N`, or the job's only one.
pub(crate) fn pick_sync(spec: &JobSpec, n: Option<usize>) -> Result<(usize, &Sync), String> {
    let list = || {
        spec.syncs
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{} = {} -> {}", i + 1, loc(&s.source), loc(&s.dest)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match n {
        None if spec.syncs.len() == 1 => Ok((0, &spec.syncs[0])),
        None => Err(format!(
            "job {} has {} syncs; say which with --sync N ({})",
            spec.job,
            spec.syncs.len(),
            list()
        )),
        Some(n) => match n.checked_sub(1).and_then(|i| spec.syncs.get(i)) {
            Some(s) => Ok((n - 1, s)),
            None => Err(format!("job {} has no sync {n} ({})", spec.job, list())),
        },
    }
}

/// A path the operator named, relative to the sync's source: no `..`, nothing empty.
fn relative(p: &str) -> Result<String, String> {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") || p.contains('\0') {
        return Err(format!(
            "{p:?} is not a path inside the sync's source (paths are relative to it, without `..`)"
        ));
    }
    Ok(parts.join("/"))
}

/// The name rsync gives a source without a trailing slash inside its destination: `Music` for
/// `/home/alice/Music` (such a sync copies the directory itself, not its content).
fn own_name(source: &str) -> Option<&str> {
    if source.ends_with('/') {
        return None;
    }
    source.rsplit('/').next().filter(|n| !n.is_empty())
}

fn request<'a>(spec: &'a JobSpec, args: &Args) -> Result<Request<'a>, String> {
    let (index, sync) = pick_sync(spec, args.sync)?;
    let at = match args.at.as_deref() {
        None | Some("latest") => None,
        Some(t) => Some(
            t.parse::<Timestamp>()
                .map_err(|e| format!("--at {t:?} is neither `latest` nor an RFC 3339 time: {e}"))?
                .to_zoned(jiff::tz::TimeZone::UTC)
                .datetime(),
        ),
    };
    if at.is_some() && sync.snapshot.is_none() {
        return Err(format!(
            "sync {} of job {} is a mirror: it has no snapshots to choose with --at",
            index + 1,
            spec.job
        ));
    }
    let asked = args
        .paths
        .iter()
        .map(|p| relative(p))
        .collect::<Result<Vec<_>, _>>()?;
    let own = own_name(&sync.source.path);
    let mut paths: Vec<String> = asked
        .iter()
        .map(|p| own.map_or_else(|| p.clone(), |o| format!("{o}/{p}")))
        .collect();
    if let (Some(o), true) = (own, paths.is_empty()) {
        paths.push(o.to_string());
    }
    let to = target(spec, sync, args, own.is_some())?;
    if !spec.is_local(&sync.dest.host) && !spec.is_local(&to.host) {
        return Err(format!(
            "the copies are on {} and the target on {}: rsync runs on {}, and one side of it must be {} itself; restore to a directory on {} and copy it on from there",
            sync.dest.host, to.host, spec.host, spec.host, spec.host
        ));
    }
    if args.in_place && !args.yes && !args.confirm && !args.dry_run {
        return Err("an in-place restore overwrites the source: pass --yes, or --confirm to be asked after seeing the changes".into());
    }
    Ok(Request {
        spec,
        sync,
        index,
        at,
        to,
        paths,
        asked,
    })
}

/// Where the files go: `--in-place` is the source itself (its parent for a source copied as a
/// directory of its own); `--to DIR` a directory on the source's host, `--to HOST:DIR` one on
/// HOST (the job's host or one it reaches).
fn target(spec: &JobSpec, sync: &Sync, args: &Args, own: bool) -> Result<Location, String> {
    if args.in_place {
        let p = sync.source.path.trim_end_matches('/');
        let path = match (own, p.rsplit_once('/')) {
            (true, Some(("", _))) => "/".to_string(),
            (true, Some((parent, _))) => parent.to_string(),
            _ => sync.source.path.clone(),
        };
        return allowed(
            spec,
            Location {
                host: sync.source.host.clone(),
                path,
            },
        );
    }
    let to = args.to.as_deref().unwrap_or_default();
    let (host, path) = match to.split_once(':') {
        Some((h, p)) if !h.contains('/') => (h.to_string(), p.to_string()),
        _ => (sync.source.host.clone(), to.to_string()),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "--to {to:?}: give an absolute directory, such as /var/tmp/restore"
        ));
    }
    if !spec.is_local(&host) && !spec.hosts.contains_key(&host) {
        let mut known: Vec<&str> = spec.hosts.keys().map(String::as_str).collect();
        known.push(&spec.host);
        known.sort();
        return Err(format!(
            "--to {to:?}: job {} does not reach host {host:?} (it reaches {})",
            spec.job,
            known.join(", ")
        ));
    }
    allowed(spec, Location { host, path })
}

/// `to` if the job may write there: anywhere on its own host; on another host only at or below
/// the job's `restore-to` there (its serve file), said here with the fix before any lock is taken.
fn allowed(spec: &JobSpec, to: Location) -> Result<Location, String> {
    let Location { host, path } = &to;
    if spec.is_local(host)
        || spec
            .restore_to
            .iter()
            .any(|r| r.host == *host && bkc_contract::serve::at_or_below(&r.path, path))
    {
        return Ok(to);
    }
    Err(format!(
        "job {} may not write on host {host:?}: its key only reads there. Add `restore-to \"{path}\" host=\"{host}\"` (or a directory above it) to the job, apply, and restore again; or restore onto the job's host with --to {}:DIR and copy on from there",
        spec.job, spec.host
    ))
}

/// The restore proper, once the request is sound: locks, snapshot, checks, rsync.
fn restore(ctx: &Ctx, args: &Args, req: &Request) -> (Outcome, Option<String>, Stats, Duration) {
    let (held, waited) = match hold::take(ctx) {
        Ok(v) => v,
        Err(f) => {
            let o = lock_outcome(&f);
            return (o, Some(f.message()), Stats::default(), Duration::ZERO);
        }
    };
    let res = locked(ctx, args, req);
    hold::release(ctx, held);
    match res {
        Ok((stats, note)) => (Outcome::Success, note, stats, waited),
        Err((o, m)) => (o, Some(m), Stats::default(), waited),
    }
}

/// What a failure to take the locks makes of a restore, as of a run.
pub(crate) fn lock_outcome(f: &Fail) -> Outcome {
    match f {
        Fail::Spec(_) => Outcome::Spec,
        Fail::Lock(_) | Fail::LockTimeout(_) => Outcome::Lock,
        Fail::Timeout(_) | Fail::Stopped(Stop::Deadline) => Outcome::Timeout,
        Fail::Stopped(Stop::Signal(s)) => Outcome::Interrupted(*s),
    }
}

/// A remote step after the locks: it failed, the restore did.
pub(crate) fn step(f: Fail) -> Failed {
    match f {
        Fail::Stopped(Stop::Signal(s)) => (Outcome::Interrupted(s), f.message()),
        f => (Outcome::Failed, f.message()),
    }
}

fn locked(ctx: &Ctx, args: &Args, req: &Request) -> Result<(Stats, Option<String>), Failed> {
    let listing = match req.sync.snapshot {
        Some(_) => Some(listing(ctx, req.sync)?),
        None => None,
    };
    let (snapshot, root) = source_root(req, listing.as_ref())?;
    check_paths(ctx, req, snapshot.as_deref().zip(listing.as_ref()))?;
    if !args.in_place && !args.force {
        check_target(ctx, &req.to)?;
    }
    ctx.report.event(Event::Restore {
        delete: args.delete,
        dry_run: ctx.dry_run,
        from: format!("{}:{root}", req.sync.dest.host),
        paths: req.paths.clone(),
        snapshot: snapshot.clone(),
        sync: req.index + 1,
        to: loc(&req.to),
    });
    ctx.say(&format!(
        "restoring {} from {}:{root} to {}",
        if req.asked.is_empty() {
            "everything".to_string()
        } else {
            req.asked.join(", ")
        },
        req.sync.dest.host,
        loc(&req.to)
    ));
    if args.in_place && args.confirm && !ctx.dry_run {
        let changes = copy(ctx, req, &root, args.delete, true)?.1;
        if changes == 0 {
            return Ok((Stats::default(), Some("nothing to change".into())));
        }
        ctx.report.event(Event::Confirm { changes });
        if !confirmed() {
            return Err((
                Outcome::Refused,
                "not confirmed; nothing was changed".into(),
            ));
        }
    }
    let (stats, changes) = copy(ctx, req, &root, args.delete, ctx.dry_run)?;
    let verb = if ctx.dry_run {
        "would change"
    } else {
        "changed"
    };
    Ok((stats, Some(format!("{verb} {changes} items"))))
}

/// The answer to a `confirm` event: the next line on stdin.
fn confirmed() -> bool {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).is_ok() && line.trim() == "yes"
}

/// The snapshot `--at` picks from `listing` (none for a mirror, which has no listing) and the
/// directory rsync copies from.
fn source_root(
    req: &Request,
    listing: Option<&Listing>,
) -> Result<(Option<String>, String), Failed> {
    let dest = req.sync.dest.path.trim_end_matches('/');
    let Some(listing) = listing else {
        return Ok((None, if dest.is_empty() { "/" } else { dest }.to_string()));
    };
    let chosen = match req.at {
        None => listing.complete.first(),
        Some(at) => listing.complete.iter().find(|c| c.1 <= at),
    };
    let Some((name, _)) = chosen else {
        let why = match (req.at, listing.complete.last()) {
            (_, None) => "it has no complete snapshot".to_string(),
            (Some(at), Some(oldest)) => format!(
                "it has no complete snapshot at or before {}; the oldest is {}",
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                oldest.0
            ),
            (None, Some(_)) => "it has no complete snapshot".to_string(),
        };
        return Err((
            Outcome::Refused,
            format!("nothing to restore from {}: {why}", loc(&req.sync.dest)),
        ));
    };
    Ok((Some(name.clone()), format!("{dest}/{name}")))
}

/// The snapshots under a snapshotting sync's destination.
pub(crate) fn listing(ctx: &Ctx, sync: &Sync) -> Result<Listing, Failed> {
    let dest = if ctx.spec.is_local(&sync.dest.host) {
        Dest::Local(&sync.dest.path)
    } else {
        Dest::Remote {
            spec: &ctx.spec,
            host: &sync.dest.host,
            path: &sync.dest.path,
        }
    };
    dest.list(false, ctx.deadline)
        .map_err(|m| (Outcome::Failed, m))
}

/// For each of `dirs` (snapshot names, or `.` for a mirror) under `base`, which of `paths` it
/// has.
fn which_have(
    ctx: &Ctx,
    at: &Location,
    dirs: &[&str],
    paths: &[String],
) -> Result<BTreeMap<String, Vec<bool>>, Failed> {
    let mut have: BTreeMap<String, Vec<bool>> = dirs
        .iter()
        .map(|d| (d.to_string(), vec![false; paths.len()]))
        .collect();
    if ctx.spec.is_local(&at.host) {
        for (d, v) in have.iter_mut() {
            for (i, p) in paths.iter().enumerate() {
                v[i] = Path::new(&at.path)
                    .join(d)
                    .join(p)
                    .symlink_metadata()
                    .is_ok();
            }
        }
        return Ok(have);
    }
    // One round trip: `bkc-run serve` on the destination looks, never through a symlink.
    let req = ServeRequest::Have {
        root: at.path.clone(),
        dirs: dirs.iter().map(|d| d.to_string()).collect(),
        paths: paths.to_vec(),
    };
    let answer = match ctx.request(&at.host, &req).map_err(step)? {
        Reply::Have { have } if have.len() == dirs.len() => have,
        other => {
            return Err((
                Outcome::Failed,
                format!("unexpected answer from {}: {other:?}", at.host),
            ));
        }
    };
    for (d, row) in dirs.iter().zip(answer) {
        if row.len() != paths.len() {
            return Err((
                Outcome::Failed,
                format!(
                    "unexpected answer from {}: {d} has {} paths",
                    at.host,
                    row.len()
                ),
            ));
        }
        have.insert(d.to_string(), row);
    }
    Ok(have)
}

/// Every path the operator named must be in the snapshot; one that is not is an error naming
/// the nearest snapshots that have it.
fn check_paths(ctx: &Ctx, req: &Request, snapshot: Option<(&str, &Listing)>) -> Result<(), Failed> {
    if req.asked.is_empty() {
        return Ok(());
    }
    let base = Location {
        host: req.sync.dest.host.clone(),
        path: req.sync.dest.path.clone(),
    };
    let Some((chosen, listing)) = snapshot else {
        let have = which_have(ctx, &base, &["."], &req.paths)?;
        let missing: Vec<&str> = req
            .asked
            .iter()
            .zip(&have["."])
            .filter(|(_, h)| !**h)
            .map(|(p, _)| p.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        return Err((
            Outcome::Refused,
            format!(
                "not in the mirror {}: {}",
                loc(&req.sync.dest),
                missing.join(", ")
            ),
        ));
    };
    // Oldest first, so "older" and "newer" read off the positions.
    let names: Vec<&str> = listing
        .complete
        .iter()
        .rev()
        .map(|c| c.0.as_str())
        .collect();
    let have = which_have(ctx, &base, &names, &req.paths)?;
    let pos = names.iter().position(|n| *n == chosen).unwrap_or(0);
    let mut errors = Vec::new();
    for (i, p) in req.asked.iter().enumerate() {
        if have.get(chosen).is_some_and(|v| v[i]) {
            continue;
        }
        let has = |n: &&&str| have.get(**n).is_some_and(|v| v[i]);
        let older = names[..pos].iter().rev().find(has);
        let newer = names[pos + 1..].iter().find(has);
        let nearest = match (older, newer) {
            (None, None) => "no snapshot has it".to_string(),
            (Some(o), None) => format!("the nearest that has it: {o} (older)"),
            (None, Some(n)) => format!("the nearest that has it: {n} (newer)"),
            (Some(o), Some(n)) => {
                format!("the nearest that have it: {o} (older) and {n} (newer)")
            }
        };
        errors.push(format!("{p} is not in snapshot {chosen}; {nearest}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err((Outcome::Refused, errors.join("; ")))
    }
}

/// A `--to` directory must be new or empty: a restore must not mix into other files unasked.
fn check_target(ctx: &Ctx, to: &Location) -> Result<(), Failed> {
    match path_state(ctx, to).map_err(step)? {
        SourceState::Missing | SourceState::Empty => Ok(()),
        SourceState::NonEmpty => Err((
            Outcome::Refused,
            format!(
                "{} is not empty: restore into a new or empty directory, or pass --force to write into it (files the snapshot has are overwritten there; nothing else is deleted without --delete)",
                loc(to)
            ),
        )),
    }
}

/// The preservation options of the sync worth keeping on the way back (hard links, ACLs,
/// extended attributes, numeric ids, sparse files). Only these: a sync's other options may
/// delete (`--delete`, `--remove-source-files`) or skip files, and a restore must do neither
/// unasked.
fn kept_options(opts: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    for o in opts {
        match o.as_str() {
            "--hard-links" | "--acls" | "--xattrs" | "--numeric-ids" | "--sparse"
            | "--fake-super" => kept.push(o.clone()),
            // A cluster of short flags such as `-aHAX`; `-f- *.tmp` is a filter, not flags.
            s if s.starts_with('-')
                && !s.starts_with("--")
                && s[1..].chars().all(|c| c.is_ascii_alphabetic()) =>
            {
                for c in s[1..].chars() {
                    if "HAXS".contains(c) {
                        kept.push(format!("-{c}"));
                    }
                }
            }
            _ => {}
        }
    }
    kept.sort();
    kept.dedup();
    kept
}

/// rsync's arguments for copying `root` (or `paths` inside it) to the request's target.
fn argv(req: &Request, root: &str, delete: bool, dry_run: bool) -> Result<Vec<String>, String> {
    let spec = req.spec;
    let mut a = vec!["-a".to_string()];
    a.extend(kept_options(&req.sync.opts));
    a.extend([
        "--stats".to_string(),
        "--mkpath".to_string(),
        itemize::out_format(),
    ]);
    if delete {
        a.push("--delete".into());
    }
    if dry_run {
        a.push("--dry-run".into());
    }
    let from_host = &req.sync.dest.host;
    let remote = [from_host.as_str(), req.to.host.as_str()]
        .into_iter()
        .find(|h| !spec.is_local(h));
    let place = |host: &str, path: String| -> Result<String, String> {
        if spec.is_local(host) {
            Ok(path)
        } else {
            Ok(ssh::rsync_remote(ssh::endpoint(spec, host)?, &path))
        }
    };
    if let Some(h) = remote {
        // The far side is `bkc-run serve`, as for a run (see rsync::argv): it lets a restore
        // read a complete snapshot or a mirror of the job's there.
        let ep = ssh::endpoint(spec, h)?;
        a.push(format!("--rsync-path={} rsync", ssh::serve_line(spec, ep)));
        a.push("-e".into());
        a.push(ssh::rsync_rsh(spec, ep));
    }
    if req.paths.is_empty() {
        a.push(place(from_host, format!("{root}/"))?);
    } else {
        // `--relative` recreates each path below the `/./` under the target.
        a.push("--relative".into());
        for p in &req.paths {
            a.push(place(from_host, format!("{root}/./{p}"))?);
        }
    }
    let to = format!("{}/", req.to.path.trim_end_matches('/'));
    a.push(place(&req.to.host, to)?);
    Ok(a)
}

/// One rsync of the restore, each item a `change` event; returns the figures and the number of
/// items.
fn copy(
    ctx: &Ctx,
    req: &Request,
    root: &str,
    delete: bool,
    dry_run: bool,
) -> Result<(Stats, u64), Failed> {
    let argv = argv(req, root, delete, dry_run).map_err(|m| (Outcome::Spec, m))?;
    let mut changes = 0u64;
    let (code, rest, stop) = itemize::run(&argv, |item| {
        changes += 1;
        ctx.report.event(Event::Change {
            itemized: item.itemized,
            path: item.path,
        });
    })
    .map_err(|e| (Outcome::Failed, format!("cannot run rsync: {e}")))?;
    if let Some(Stop::Signal(s)) = stop {
        return Err((
            Outcome::Interrupted(s),
            Fail::Stopped(Stop::Signal(s)).message(),
        ));
    }
    match rsync::classify(code) {
        bkc_contract::event::SyncClass::Ok | bkc_contract::event::SyncClass::Warning => {
            Ok((rsync::parse_stats(&rest), changes))
        }
        _ => Err((
            Outcome::Failed,
            format!("rsync failed with exit code {code}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// A push job on `a` into snapshots on `b`, plus a pull sync from `c` into `a`.
    fn spec() -> JobSpec {
        let mut s = crate::rsync::tests::spec();
        let at = |h: &str, p: &str| Location {
            host: h.into(),
            path: p.into(),
        };
        s.hosts.insert("c".into(), s.hosts["b"].clone());
        let sync = |src: Location, dst: Location| Sync {
            source: src,
            dest: dst,
            opts: vec!["-a".into()],
            exclude: vec![],
            bwlimit: None,
            deletes: false,
            allow_empty_source: false,
            snapshot: Some(Default::default()),
            source_snapshot: None,
        };
        s.syncs = vec![
            sync(at("a", "/home/alice/Music"), at("b", "/srv/snap/")),
            sync(at("c", "/var/www/"), at("a", "/srv/web/")),
        ];
        s.restore_to = vec![at("c", "/r"), at("b", "/r/")];
        s
    }

    fn req(words: &[&str]) -> Result<(usize, Location, Vec<String>), String> {
        use clap::Parser;
        let mut argv = vec!["restore", "/spec.json"];
        argv.extend(words);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let s = Box::leak(Box::new(spec()));
        let r = request(s, &cli.args)?;
        Ok((r.index, r.to, r.paths))
    }

    #[test]
    fn where_a_restore_goes() {
        let l = |h: &str, p: &str| Location {
            host: h.into(),
            path: p.into(),
        };
        // A source without its slash is a directory of its own, in place and elsewhere.
        assert_eq!(
            req(&["--sync", "1", "--in-place", "--yes", "x/y"]).unwrap(),
            (0, l("a", "/home/alice"), vec!["Music/x/y".to_string()])
        );
        assert_eq!(
            req(&["--sync", "1", "--to", "/r"]).unwrap(),
            (0, l("a", "/r"), vec!["Music".to_string()])
        );
        // A pull job pushes back to its source's host, or to the job's own host; on another
        // host only at or below its restore-to there.
        assert_eq!(req(&["--sync", "2", "--to", "/r"]).unwrap().1, l("c", "/r"));
        assert_eq!(
            req(&["--sync", "2", "--to", "/r/deep/er"]).unwrap().1,
            l("c", "/r/deep/er")
        );
        for outside in ["/var/www", "/rr", "/r/../etc"] {
            let e = req(&["--sync", "2", "--to", outside]).unwrap_err();
            assert!(e.contains("Add `restore-to"), "{outside}: {e}");
        }
        let e = req(&["--sync", "2", "--in-place", "--yes"]).unwrap_err();
        assert!(e.contains("restore-to \"/var/www/\" host=\"c\""), "{e}");
        assert_eq!(
            req(&["--sync", "2", "--to", "a:/r"]).unwrap().1,
            l("a", "/r")
        );
        assert_eq!(
            req(&["--sync", "2", "--to", "b:/r"]).unwrap().1,
            l("b", "/r")
        );
        let err = |w: &[&str]| req(w).unwrap_err();
        assert!(err(&["--to", "/r"]).contains("has 2 syncs"));
        assert!(err(&["--sync", "3", "--to", "/r"]).contains("no sync 3"));
        assert!(err(&["--sync", "1", "--to", "b:/r"]).contains("one side of it must be a"));
        assert!(err(&["--sync", "1", "--to", "z:/r"]).contains("does not reach host \"z\""));
        assert!(err(&["--sync", "1", "--to", "r"]).contains("absolute"));
        assert!(err(&["--sync", "1", "--in-place"]).contains("pass --yes"));
        assert!(err(&["--sync", "1", "--to", "/r", "../x"]).contains("without `..`"));
        assert!(err(&["--sync", "1", "--to", "/r", "--at", "yesterday"]).contains("RFC 3339"));
        assert!(err(&["--sync", "1", "--in-place", "--to", "/r"]).contains("cannot be used with"));
    }

    #[test]
    fn paths_stay_inside_the_source() {
        assert_eq!(relative("a/b").unwrap(), "a/b");
        assert_eq!(relative("/a//./b/").unwrap(), "a/b");
        for bad in ["", "/", ".", "a/../../b", "..", "a\0b"] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_source_without_its_slash_is_a_directory_of_its_own() {
        assert_eq!(own_name("/home/alice/Music"), Some("Music"));
        assert_eq!(own_name("/home/alice/Music/"), None);
        assert_eq!(own_name("/"), None);
    }

    #[test]
    fn only_preserving_options_come_back() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            kept_options(&o(&[
                "-aHAX",
                "--delete",
                "--numeric-ids",
                "--remove-source-files",
                "-z"
            ])),
            o(&["--numeric-ids", "-A", "-H", "-X"])
        );
        assert!(kept_options(&o(&["-a", "--delete-after", "--bwlimit=5M"])).is_empty());
    }
}
