//! Deploy: get a topology onto a fleet and keep it there (`bkc plan`, `apply`, `rollback`,
//! `status`, `run`). docs/DEPLOY.md describes the protocol.
//!
//! Every host is reached through a [`transport::Transport`]: one round trip reads what the host
//! has ([`plan::observe`]), pure code compares it with what the topology wants
//! ([`plan::compare`]), and one script per host stages and switches a new generation
//! ([`apply`]). The remote side is POSIX `sh` (the `*.sh` files next to this one), sent over
//! stdin; every value in it comes from bkc and is quoted all the same.

pub mod apply;
pub mod fleet;
pub mod keys;
pub mod plan;
pub mod restore;
pub mod status;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::emit::access::{self, HostAccess};
use crate::emit::{Artifacts, Facts, HostFiles};
use crate::topology::Topology;
use transport::Target;

/// Where bkc keeps its deploy state on every host: generations, staging, the deploy lock.
pub const DEPLOY_DIR: &str = "/var/lib/bkc";
/// What `bkc apply` stages and keeps, and later runs as root: never writable by a job (the
/// runner's own state lives apart, in `/var/lib/bkc/state` by default).
pub const STAGING_DIR: &str = "/var/lib/bkc/staging";
pub const GENERATIONS_DIR: &str = "/var/lib/bkc/generations";
/// How many generations a host keeps for `bkc rollback`.
pub const KEEP_GENERATIONS: usize = 5;

/// A failure on one host, with the host's name in its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host}: {message}")]
pub struct HostError {
    pub host: String,
    pub message: String,
}

impl HostError {
    /// The message often holds what the host sent (its stderr): it is made printable here,
    /// once, for every error of every command.
    pub fn new(host: &str, message: impl Into<String>) -> HostError {
        HostError {
            host: host.to_string(),
            message: crate::printable::printable(&message.into()).into_owned(),
        }
    }
}

/// The `ActiveState`s in which a unit's processes run. A `Type=oneshot` service, every bkc job,
/// is `activating` for its whole run (never `active`), so asking `systemctl is-active` alone
/// makes every running backup look idle.
pub const RUNNING_STATES: [&str; 4] = ["active", "activating", "deactivating", "reloading"];

/// Whether a unit in `state` (as `systemctl show -p ActiveState` or `is-active` prints it) runs.
pub fn is_running(state: &str) -> bool {
    RUNNING_STATES.contains(&state.trim())
}

/// The same question on a host, as a shell function: `running UNIT` succeeds while UNIT runs.
/// `running /etc/bkc/serve/<job>.json` succeeds while a `bkc-run serve` session of that job
/// (which holds its serve file locked, shared, for as long as it lives) uses the file: a run of
/// the job on another host is going on.
pub fn running_sh() -> String {
    format!(
        "running() {{\n    case $1 in\n    /*) [ -f \"$R$1\" ] && ! flock -n -x \"$R$1\" true 2>/dev/null; return ;;\n    esac\n    case $(systemctl is-active -- \"$1\" 2>/dev/null) in\n    {}) return 0 ;;\n    esac\n    return 1\n}}\n",
        RUNNING_STATES.join(" | ")
    )
}

/// Every value a deploy script gets from bkc is quoted with the one quoter the runner uses too.
pub use bkc_contract::names::shell_quote as quote;

/// What the topology wants on one host.
#[derive(Debug, Clone)]
pub struct Desired {
    pub host: String,
    /// The host's tags in the topology, for `--host @tag` on a saved plan.
    pub tags: Vec<String>,
    /// Every file, the manifest included.
    pub files: HostFiles,
    /// Where the jobs' units and the jobs that reach the host expect `bkc-run` (none for a host
    /// no job runs on or reaches, and for a rollback, which leaves the runner as it is).
    pub runner_paths: Vec<String>,
    /// With restricted keys: the keys its jobs need and the jobs that may log in to it, from
    /// which its authorized keys and sshd drop-in are completed once the hosts have said what
    /// they have ([`Desired::complete`]). Empty for a saved plan or a rollback, whose files are
    /// complete already.
    pub access: HostAccess,
}

impl Desired {
    /// Whether sshd must be asked what it reads as `AuthorizedKeysFile`: the host gets the
    /// drop-in that keeps that list.
    pub fn asks_sshd(&self) -> bool {
        self.files
            .files
            .contains_key(bkc_contract::names::SSHD_DROPIN_PATH)
    }

    /// Render the files that depend on what hosts said (`facts`) again.
    pub fn complete(&mut self, facts: &Facts) {
        if !self.access.is_empty() {
            crate::emit::complete(&self.host, &mut self.files, &self.access, facts);
        }
    }
}

/// Every selected host of `topology` with the files it should have and how to reach it.
pub fn desired(topology: &Topology, artifacts: Artifacts) -> Vec<(Desired, Target)> {
    let mut access = access::all(topology);
    artifacts
        .hosts
        .into_iter()
        .filter_map(|(host, files)| {
            let h = topology.hosts.get(&host)?;
            // The runner runs the host's own jobs, serves (`bkc-run serve`) the jobs that reach
            // the host from elsewhere, and checks the freshness of data sent here.
            let mut runner_paths: Vec<String> = topology
                .jobs
                .values()
                .flat_map(|j| {
                    let own = (j.host == host
                        || (j.freshness.is_some()
                            && j.spec.fresh_markers.iter().any(|m| m.host == host)))
                    .then(|| j.service.runner.clone());
                    own.into_iter()
                        .chain(j.spec.hosts.get(&host).map(|ep| ep.runner.clone()))
                })
                .collect();
            runner_paths.sort();
            runner_paths.dedup();
            let target = Target {
                address: h.address.clone(),
                port: h.port,
                user: h.user.clone(),
                host_keys: h.host_keys.clone(),
            };
            Some((
                Desired {
                    access: access.remove(&host).unwrap_or_default(),
                    host,
                    tags: h.tags.clone(),
                    files,
                    runner_paths,
                },
                target,
            ))
        })
        .collect()
}

/// `f` on every item with at most `jobs` at a time (hosts wait on the network, not on the CPU,
/// so this is independent of the core count). Results come back in the items' order.
pub fn bounded<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// A script's output split into fact lines and framed file contents: a line `F <size> <path>`
/// is followed by exactly `<size>` bytes of that file.
#[derive(Debug, Default)]
pub struct Framed {
    pub lines: Vec<String>,
    pub files: BTreeMap<String, Vec<u8>>,
}

pub fn unframe(mut out: &[u8]) -> Result<Framed, String> {
    let mut f = Framed::default();
    while !out.is_empty() {
        let end = out.iter().position(|&b| b == b'\n').unwrap_or(out.len());
        let line = String::from_utf8_lossy(&out[..end]).into_owned();
        out = &out[(end + 1).min(out.len())..];
        if let Some(rest) = line.strip_prefix("F ") {
            let (size, path) = rest
                .split_once(' ')
                .ok_or_else(|| format!("malformed frame line `{line}`"))?;
            let size: usize = size
                .trim()
                .parse()
                .map_err(|_| format!("malformed frame size in `{line}`"))?;
            if out.len() < size {
                return Err(format!("{path}: the output ended inside the file"));
            }
            f.files.insert(path.to_string(), out[..size].to_vec());
            out = &out[size..];
        } else {
            f.lines.push(line);
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_oneshot_is_running() {
        for s in ["active", "activating", "deactivating", "reloading\n"] {
            assert!(is_running(s), "{s}");
        }
        for s in ["inactive", "failed", "", "unknown"] {
            assert!(!is_running(s), "{s}");
        }
    }

    #[test]
    fn frames_hold_any_bytes() {
        let f = unframe(b"a 1\nF 4 /x\nF 1\nb\nend\n").unwrap();
        assert_eq!(f.lines, vec!["a 1", "b", "end"]);
        assert_eq!(f.files["/x"], b"F 1\n");
        assert!(unframe(b"F 9 /x\nabc").is_err());
    }

    #[test]
    fn bounded_keeps_order() {
        let v: Vec<usize> = (0..50).collect();
        assert_eq!(
            bounded(&v, 4, |x| x * 2),
            v.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
