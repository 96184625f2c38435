//! What a runner writes into the lock files it creates (and into nothing else): one JSON line
//! naming the holder, read by every other runner that meets the file, whatever its version, and
//! by people looking at a lock file by hand.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Holder {
    pub job: String,
    /// The job's host, as the topology names it.
    pub host: String,
    pub pid: u32,
    /// The kernel's boot id when the holder started: a file from an earlier boot is stale.
    pub boot_id: String,
    /// RFC 3339.
    pub start: String,
}

impl Holder {
    /// The holder of a lock file, from its first line; `None` for another tool's file.
    pub fn read(content: &str) -> Option<Holder> {
        serde_json::from_str(content.lines().next()?.trim()).ok()
    }

    /// The line to write: one JSON object, no newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a Holder always serialises")
    }
}

/// What a run waiting for one of its host's `max-parallel` slots writes into its file in the
/// slots' `queue/` directory: enough for the other waiters, of whatever version, to rank it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Waiter {
    pub job: String,
    pub priority: i32,
    /// When it began to wait, in nanoseconds since the Unix epoch.
    pub since_ns: i128,
    pub pid: u32,
}

impl Waiter {
    /// The order of the queue: lower ranks go first. Higher priority first, then the one
    /// waiting longest, then the name, so that two waiters never tie.
    pub fn rank(&self) -> (std::cmp::Reverse<i32>, i128, &str) {
        (std::cmp::Reverse(self.priority), self.since_ns, &self.job)
    }

    /// The waiter a queue file names; `None` for anything else.
    pub fn read(content: &str) -> Option<Waiter> {
        serde_json::from_str(content.lines().next()?.trim()).ok()
    }

    /// The line to write: one JSON object, no newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a Waiter always serialises")
    }
}
