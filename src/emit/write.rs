//! Writing artifacts to `out/<host>/...`, one host at a time and never half.
//!
//! Each host's tree is written beside the old one and swapped in with renames, so an
//! interrupted build leaves every host directory either as it was or complete. Host directories
//! of hosts no longer in the topology are removed, but only when they hold a bkc manifest: bkc
//! never deletes a directory it did not write. A host whose directory already matches is not
//! rewritten at all.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Artifacts, HostFiles, MANIFEST_PATH};

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
/// Returns how many hosts were (re)written; the others were already up to date.
pub fn write_tree(artifacts: &Artifacts, out: &Path, prune: bool) -> Result<usize, WriteError> {
    fs::create_dir_all(out).map_err(at(out))?;
    let hosts: Vec<(&String, &HostFiles)> = artifacts.hosts.iter().collect();
    let mut written = 0;
    for result in crate::parallel::map(&hosts, |(host, files)| write_host(out, host, files)) {
        written += usize::from(result?);
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
    Ok(written)
}

/// Write one host's tree; false when it was already up to date.
fn write_host(out: &Path, host: &str, files: &HostFiles) -> Result<bool, WriteError> {
    let dest = out.join(host);
    if unchanged(&dest, files) {
        return Ok(false);
    }
    let fresh = out.join(format!(".{host}.new"));
    let old = out.join(format!(".{host}.old"));
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
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode.bits()))
            .map_err(at(&target))?;
    }
    if dest.exists() {
        fs::rename(&dest, &old).map_err(at(&dest))?;
    }
    fs::rename(&fresh, &dest).map_err(at(&dest))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(at(&old))?;
    }
    Ok(true)
}

/// True when `dest` already holds exactly these files: its manifest is byte-identical to the
/// new one, and the files present are exactly those listed, with their sizes and modes. Then
/// the host is left alone, which makes a rebuild with few changes cheap on a large fleet. (A
/// hand edit that keeps a file's size is not noticed here; `bkc plan` compares hashes.)
fn unchanged(dest: &Path, files: &HostFiles) -> bool {
    let Ok(manifest) = fs::read(dest.join(MANIFEST_PATH.trim_start_matches('/'))) else {
        return false;
    };
    if files
        .files
        .get(MANIFEST_PATH)
        .is_none_or(|m| m.bytes != manifest)
    {
        return false;
    }
    let mut present = 0;
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            return false;
        };
        for entry in entries {
            let Ok(entry) = entry else { return false };
            let Ok(meta) = entry.metadata() else {
                return false;
            };
            let path = entry.path();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = format!("/{}", path.strip_prefix(dest).unwrap_or(&path).display());
            match files.files.get(&rel) {
                Some(f)
                    if meta.len() == f.bytes.len() as u64
                        && meta.permissions().mode() & 0o7777 == f.mode.bits() =>
                {
                    present += 1
                }
                _ => return false,
            }
        }
    }
    present == files.files.len()
}
