//! Writing artifacts to `out/<host>/...`, one host at a time and never half.
//!
//! Each host's tree is written beside the old one and swapped in with renames, so an
//! interrupted build leaves every host directory either as it was or complete. Host directories
//! of hosts no longer in the topology are removed, but only when they hold a bkc manifest: bkc
//! never deletes a directory it did not write.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Artifacts, MANIFEST_PATH};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot write {path}: {source}")]
#[diagnostic(
    code(bkc::write),
    help("check that the output directory is writable and the disk is not full")
)]
pub struct WriteError {
    path: PathBuf,
    source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError {
        path: path.to_path_buf(),
        source,
    }
}

/// Write every host of `artifacts` under `out`. With `prune`, also remove bkc-written host
/// directories of hosts that are not in `artifacts` (a full build; not with `--host`).
pub fn write_tree(artifacts: &Artifacts, out: &Path, prune: bool) -> Result<(), WriteError> {
    fs::create_dir_all(out).map_err(at(out))?;
    for (host, files) in &artifacts.hosts {
        let fresh = out.join(format!(".{host}.new"));
        let old = out.join(format!(".{host}.old"));
        let dest = out.join(host);
        for leftover in [&fresh, &old] {
            if leftover.exists() {
                fs::remove_dir_all(leftover).map_err(at(leftover))?;
            }
        }
        for (path, file) in &files.files {
            let target = fresh.join(path.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(at(parent))?;
            }
            fs::write(&target, &file.bytes).map_err(at(&target))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))
                .map_err(at(&target))?;
        }
        if dest.exists() {
            fs::rename(&dest, &old).map_err(at(&dest))?;
        }
        fs::rename(&fresh, &dest).map_err(at(&dest))?;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(at(&old))?;
        }
    }
    if prune {
        for entry in fs::read_dir(out).map_err(at(out))? {
            let entry = entry.map_err(at(out))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !artifacts.hosts.contains_key(&name)
                && !name.starts_with('.')
                && path.join(MANIFEST_PATH.trim_start_matches('/')).is_file()
            {
                fs::remove_dir_all(&path).map_err(at(&path))?;
            }
        }
    }
    Ok(())
}
