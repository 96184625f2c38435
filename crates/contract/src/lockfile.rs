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
