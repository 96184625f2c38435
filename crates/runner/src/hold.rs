//! The locks a restore or a verify holds: exactly the kernel locks a run of the job takes, in the
//! spec's order (so no deadlock with runners), through the same functions. While they are held
//! the job cannot run, and neither can a job that waits on it: nobody reads or writes the data a
//! restore copies or a verify compares. Seed-style lock files are for other tools to see a run
//! and are not created.

use std::time::Duration;

use bkc_contract::event::Event;
use bkc_contract::spec::Lock;

use super::lock::{self, Held};
use super::{Ctx, Fail, loc};

/// Every lock of the spec, held until the returned locks are released with [`release`]; also
/// the time spent waiting.
pub(crate) fn take(ctx: &Ctx) -> Result<(Vec<Held>, Duration), Fail> {
    let spec = &ctx.spec;
    let mut held = Vec::new();
    let mut waited = Duration::ZERO;
    let mut i = 0;
    while i < spec.locks.len() {
        let first = &spec.locks[i];
        // Consecutive locks on one remote host share one SSH session, as in a run.
        let group: Vec<&Lock> = if spec.is_local(&first.at.host) {
            vec![first]
        } else {
            spec.locks[i..]
                .iter()
                .take_while(|m| m.at.host == first.at.host)
                .collect()
        };
        let res = if spec.is_local(&first.at.host) {
            lock::acquire_local(ctx, first).map(|(h, w)| (h, vec![w]))
        } else {
            lock::acquire_remote(ctx, &group)
        };
        let (h, waits) = match res {
            Ok(v) => v,
            Err(f) => {
                release(ctx, held);
                return Err(f);
            }
        };
        held.push(h);
        for (l, w) in group.iter().zip(waits) {
            waited += w;
            ctx.report.event(Event::Locked {
                lock: loc(&l.at),
                mode: l.mode,
                waited_secs: w.as_secs_f64(),
            });
        }
        i += group.len();
    }
    Ok((held, waited))
}

/// Release in the reverse order of taking.
pub(crate) fn release(ctx: &Ctx, mut held: Vec<Held>) {
    while let Some(h) = held.pop() {
        lock::release(ctx, h);
    }
}
