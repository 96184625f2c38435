//! The manifest: every file bkc owns on a host, with its hash and mode. `bkc plan` compares it
//! with what a host has; `bkc apply` writes it last, so a host's manifest always describes a
//! whole generation; `bkc rollback` restores a generation by it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Mode;

pub const MANIFEST_PATH: &str = "/etc/bkc/manifest.json";
/// Bumped on any change a bkc of the previous version would misread.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub host: String,
    /// Absolute path on the host -> its hash and mode. The manifest does not list itself.
    pub files: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Lowercase hex.
    pub sha256: String,
    pub mode: Mode,
}

impl Manifest {
    /// The JSON bkc writes: pretty, with a trailing newline, byte-stable for a given manifest.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a Manifest always serialises");
        s.push('\n');
        s
    }
}
