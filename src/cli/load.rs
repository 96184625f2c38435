//! Reading a topology and showing its diagnostics, as every command that takes one does.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bkc::analyze::{Compiled, compile};
use bkc::diag::{Diagnostic, render};
use bkc::syntax::MAX_BYTES;
use bkc::topology::Topology;

use super::Verbosity;
use super::exit::Exit;

/// The topology file and how strictly to judge it.
#[derive(clap::Args)]
pub struct Input {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    pub file: PathBuf,
    /// Fail on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print how long each stage took.
    #[arg(long)]
    pub timings: bool,
}

impl Input {
    /// Whether to print timings: asked for, or -v.
    pub fn timed(&self, v: Verbosity) -> bool {
        self.timings || v.verbose
    }
}

/// Read a text file of at most [`MAX_BYTES`], or say why it cannot be read.
pub fn read_text(path: &Path) -> Result<String, Exit> {
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    if meta.len() > MAX_BYTES as u64 {
        return Err(cannot_read(
            path,
            &format!(
                "it is {} bytes; bkc reads files of at most {MAX_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| cannot_read(path, &e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        cannot_read(
            path,
            &format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn cannot_read(path: &Path, why: &str) -> Exit {
    eprintln!("error: cannot read {}: {why}", path.display());
    Exit::CouldNotRun
}

/// Read and compile the topology, or say why it cannot be read.
///
/// The result lives until the process exits and is leaked on purpose: freeing a large topology
/// one allocation at a time took a tenth of `check`'s time on a 10,000-job file, for nothing.
pub fn load(file: &Path) -> Result<&'static Compiled, Exit> {
    let text = read_text(file)?;
    Ok(Box::leak(Box::new(compile(
        &file.display().to_string(),
        &text,
    ))))
}

/// Print the diagnostics; true when they fail the command.
pub fn report(c: &Compiled, input: &Input, v: Verbosity) -> bool {
    print_diagnostics(&c.diagnostics, v);
    print_counts(&input.file.display().to_string(), &c.diagnostics, v);
    c.errors() > 0 || (input.deny_warnings && c.warnings() > 0)
}

/// The topology of a file without errors, or [`Exit::Invalid`] after its diagnostics.
pub fn valid(input: &Input, v: Verbosity) -> Result<(&'static Compiled, &'static Topology), Exit> {
    let c = load(&input.file)?;
    if report(c, input, v) {
        return Err(Exit::Invalid);
    }
    let t = c.topology.as_ref().ok_or(Exit::Invalid)?;
    Ok((c, t))
}

/// The topology for a deploy command: only errors stop it, since its warnings are `bkc check`'s
/// to show.
pub fn for_deploy(file: &Path, v: Verbosity) -> Result<&'static Topology, Exit> {
    let input = Input {
        file: file.to_path_buf(),
        deny_warnings: false,
        timings: false,
    };
    let quiet = Verbosity {
        quiet: true,
        verbose: v.verbose,
    };
    valid(&input, quiet).map(|(_, t)| t)
}

/// Print diagnostics as bkc does everywhere: colour only on a terminal and never with NO_COLOR,
/// warnings left out with -q.
pub fn print_diagnostics(diags: &[Diagnostic], v: Verbosity) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let width = if color { 100 } else { 80 };
    let shown: Vec<Diagnostic> = diags
        .iter()
        .filter(|d| d.is_error() || !v.quiet)
        .cloned()
        .collect();
    eprint!("{}", render(&shown, color, width));
}

/// "FILE: 1 error, 2 warnings", when there is anything to count.
pub fn print_counts(file: &str, diags: &[Diagnostic], v: Verbosity) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    if errors > 0 || (warnings > 0 && !v.quiet) {
        eprintln!(
            "{file}: {errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
}
