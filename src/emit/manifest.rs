//! The manifest: every file bkc owns on a host, with its hash and mode. `plan` compares it with
//! what a host has; `apply` writes it last, so a host's manifest always describes a whole
//! generation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::HostFiles;

pub const MANIFEST_PATH: &str = "/etc/bkc/manifest.json";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub host: String,
    /// Absolute path on the host -> its hash and mode. The manifest does not list itself.
    pub files: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub sha256: String,
    /// Octal, as `chmod` takes it: "0644".
    pub mode: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Manifest {
    pub fn of(host: &str, files: &HostFiles) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            host: host.to_string(),
            files: files
                .files
                .iter()
                .filter(|(p, _)| p.as_str() != MANIFEST_PATH)
                .map(|(p, f)| {
                    (
                        p.clone(),
                        ManifestEntry {
                            sha256: sha256_hex(&f.bytes),
                            mode: format!("{:04o}", f.mode),
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a Manifest always serialises");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
