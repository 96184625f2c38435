//! The runner's two parts of the dead man's switch (bkc_contract::fresh): leaving a marker in
//! each destination on another host after a successful run, and `bkc-run --fresh`, the check
//! that `bkc-fresh-<job>.timer` runs on such a destination.

use bkc_contract::fresh::{FreshSpec, FreshState, Marker, fresh_state_file};
use bkc_contract::serve::{Reply, Request};
use bkc_contract::spec::NotifyEvent;
use jiff::Timestamp;

use crate::report::{self, say};
use crate::{Ctx, notify};

/// Leave this run's marker in every destination on another host. A marker that cannot be
/// written is a warning: the data did arrive, only the watch on it will not know.
pub fn write_markers(ctx: &Ctx, end: Timestamp) {
    let marker = Marker {
        job: ctx.spec.job.clone(),
        run: ctx.report.run().to_string(),
        end: end.to_string(),
    };
    let line = serde_json::to_string(&marker).expect("a marker always serialises");
    let mut hosts: Vec<&str> = ctx
        .spec
        .fresh_markers
        .iter()
        .map(|m| m.host.as_str())
        .collect();
    hosts.dedup();
    for host in hosts {
        let req = Request::WriteMarkers {
            paths: ctx
                .spec
                .fresh_markers
                .iter()
                .filter(|m| m.host == host)
                .map(|m| m.path.clone())
                .collect(),
            content: line.clone(),
        };
        let why = match ctx.request(host, &req) {
            Ok(Reply::Done) => continue,
            Ok(other) => format!("unexpected answer {other:?}"),
            Err(f) => f.message(),
        };
        ctx.report.warning(&format!(
            "cannot leave the freshness marker on {host}: {why}"
        ));
    }
}

/// `bkc-run --fresh FILE`: is the job whose data arrives here stale? Notifies `stale` when it
/// becomes so and `recovery` when data arrives again; exits 1 while it is stale.
pub fn check(spec: &FreshSpec, now: Timestamp) -> i32 {
    let path = std::path::PathBuf::from(fresh_state_file(&spec.state_dir, &spec.job));
    let mut state: FreshState = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let first = *state
        .first_check
        .get_or_insert_with(|| now.to_string())
        .parse::<Timestamp>()
        .as_ref()
        .unwrap_or(&now);
    // Every destination must be fresh, so the oldest marker counts; one that is missing (not
    // written yet, or removed by a `--delete` run of another job) counts as what was last seen.
    let mut arrivals: Vec<Timestamp> = Vec::new();
    let mut missing = false;
    for m in &spec.markers {
        match read_marker(m) {
            Some(t) => arrivals.push(t),
            None => missing = true,
        }
    }
    let seen: Option<Timestamp> = state.last_arrival.as_deref().and_then(|t| t.parse().ok());
    let oldest = arrivals.iter().min().copied();
    let arrival = match (oldest, missing) {
        (Some(t), false) => Some(t),
        (Some(t), true) => Some(seen.map_or(t, |s| s.min(t))),
        (None, _) => seen,
    };
    if let Some(t) = arrival {
        state.last_arrival = Some(t.to_string());
    }
    let since = arrival.unwrap_or(first);
    let age = now.as_second().saturating_sub(since.as_second()).max(0);
    let limit = i64::try_from(spec.alert_after_secs).unwrap_or(i64::MAX);
    let stale = age > limit;
    let message = match arrival {
        Some(t) => format!(
            "no data from {} since {t} ({age}s ago); the job `{}` alerts after {}s",
            spec.source, spec.job, spec.alert_after_secs
        ),
        None => format!(
            "no data from {} since this host began watching at {first} ({age}s ago); the job `{}` alerts after {}s",
            spec.source, spec.job, spec.alert_after_secs
        ),
    };
    let mut ok = true;
    if stale && !state.stale {
        say!("bkc-run: {}: stale: {message}", spec.job);
        ok = notify::run_all(
            &spec.job,
            &spec.notify,
            NotifyEvent::Stale,
            "stale",
            &message,
        );
    } else if !stale && state.stale {
        let back = format!("data from {} arrived again ({age}s ago)", spec.source);
        say!("bkc-run: {}: recovery: {back}", spec.job);
        ok = notify::run_all(
            &spec.job,
            &spec.notify,
            NotifyEvent::Recovery,
            "success",
            &back,
        );
    } else if stale {
        say!("bkc-run: {}: still stale: {message}", spec.job);
    }
    // A notification that failed is tried again at the next check.
    state.stale = stale && ok;
    let text = serde_json::to_string_pretty(&state).expect("a state always serialises") + "\n";
    if let Err(e) = report::write_atomic(&path, text.as_bytes()) {
        say!(
            "bkc-run: {}: cannot write {}: {e}",
            spec.job,
            path.display()
        );
    }
    i32::from(stale || !ok)
}

fn read_marker(path: &str) -> Option<Timestamp> {
    let text = std::fs::read_to_string(path).ok()?;
    let m: Marker = serde_json::from_str(text.trim()).ok()?;
    m.end.parse().ok()
}
