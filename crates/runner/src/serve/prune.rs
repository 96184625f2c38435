//! `bkc-run prune <job>`: retention for a job's append-only snapshots, run on their own host by
//! `bkc-prune@<job>.timer`. The job may only add snapshots there; what goes is decided here, from
//! this host's serve file and this host's clock, the newest snapshot and the last one made (which
//! `latest` points at) always staying.

use std::ffi::OsString;
use std::os::fd::AsRawFd;

use bkc_contract::names::is_valid_name;
use bkc_contract::spec::LockMode;

use super::{load, locks, snap};
use crate::report::say;

/// Returns the exit code: 0, 1 when a root could not be pruned, 2 for bad usage or serve file.
pub fn main(args: &[OsString]) -> i32 {
    let Some(job) = args
        .first()
        .and_then(|a| a.to_str())
        .filter(|j| is_valid_name(j) && args.len() == 1)
    else {
        say!("usage: bkc-run prune <job>");
        return 2;
    };
    let file = match load(job) {
        Ok(f) => f,
        Err(e) => {
            say!("bkc-run prune {job}: {e}");
            return 2;
        }
    };
    // The job's own locks here, as its runner takes them: no run of the job writes a snapshot
    // while this prunes, and no prune pulls one from under a run.
    let mut held = Vec::new();
    for l in file.locks.iter().filter(|l| l.mode == LockMode::Exclusive) {
        let f = match locks::open_lock(&l.path) {
            Ok(f) => f,
            Err(e) => {
                say!("bkc-run prune {job}: cannot open lock file {}: {e}", l.path);
                return 1;
            }
        };
        // SAFETY: flock(2) on a descriptor we own; blocking until the job's run is over.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            say!(
                "bkc-run prune {job}: cannot lock {}: {}",
                l.path,
                std::io::Error::last_os_error()
            );
            return 1;
        }
        held.push(f);
    }
    let mut code = 0;
    for r in file.snapshots.iter().filter(|r| r.append_only) {
        match snap::prune_on_host(r) {
            Ok(removed) => {
                for n in removed {
                    say!(
                        "bkc-run prune {job}: removed {}/{n}",
                        r.path.trim_end_matches('/')
                    );
                }
            }
            Err(e) => {
                say!("bkc-run prune {job}: cannot prune {}: {e}", r.path);
                code = 1;
            }
        }
    }
    drop(held);
    code
}
