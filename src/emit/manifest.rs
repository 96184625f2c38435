//! The manifest of a host's files (its format is bkc-contract's), and the hash it is built on.

use sha2::{Digest, Sha256};

pub use bkc_contract::manifest::{MANIFEST_PATH, MANIFEST_VERSION, Manifest, ManifestEntry};

use super::HostFiles;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifest of `files`, every file bkc writes to `host` but the manifest itself.
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
                        mode: f.mode,
                    },
                )
            })
            .collect(),
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
