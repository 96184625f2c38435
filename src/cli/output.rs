//! Where results go: standard output, or a file. Every command writes through here, so a closed
//! pipe and an unwritable file end every command the same way.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::exit::Exit;

/// Write a result to standard output. A closed pipe (`bkc man | head`) is not an error worth a
/// message, but still not a success.
pub fn stdout(bytes: &[u8]) -> Result<(), Exit> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Exit::CouldNotRun),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            Err(Exit::CouldNotRun)
        }
    }
}

/// Write `text` to `path`, or to standard output when None.
pub fn to(path: Option<&Path>, text: &str) -> Result<(), Exit> {
    match path {
        Some(p) => file(p, text),
        None => stdout(text.as_bytes()),
    }
}

pub fn file(path: &Path, text: &str) -> Result<(), Exit> {
    std::fs::write(path, text).map_err(|e| cannot_write(path, &e))
}

/// Write `text` to `path` whole (a temporary file renamed over it), refusing to replace an
/// existing file unless `force`.
pub fn new_file(path: &Path, text: &str, force: bool) -> Result<(), Exit> {
    if !force && path.exists() {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            path.display()
        );
        return Err(Exit::CouldNotRun);
    }
    replace(path, text)
}

/// Put `text` in place of `path` in one step: a temporary file renamed over it. The temporary
/// file has an unpredictable name and is made with O_EXCL, so a symlink planted beside `path` by
/// another account that may write its directory is never written through; it gets the mode of
/// the file it replaces (a topology may hold host keys its owner keeps private).
pub fn replace(path: &Path, text: &str) -> Result<(), Exit> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "bkc".into(), |n| n.to_string_lossy().into_owned());
    let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let write = || {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".bkc-tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)?;
        // Set after creation: the creation mode is masked by the umask.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.write_all(text.as_bytes())?;
        tmp.persist(path).map(drop).map_err(|e| e.error)
    };
    write().map_err(|e| cannot_write(path, &e))
}

fn cannot_write(path: &Path, e: &std::io::Error) -> Exit {
    eprintln!("error: cannot write {}: {e}", path.display());
    Exit::CouldNotRun
}

/// Pretty JSON with a final newline.
pub fn json(value: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

pub fn print_timings(timings: &[(&str, Duration)]) {
    let line: Vec<String> = timings
        .iter()
        .map(|(stage, d)| format!("{stage} {:.1} ms", d.as_secs_f64() * 1000.0))
        .collect();
    eprintln!("timings: {}", line.join(", "));
}
