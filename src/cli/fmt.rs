//! `bkc fmt`: rewrite a topology in the canonical layout.

use std::path::PathBuf;
use std::sync::Arc;

use bkc::diag::{Diagnostics, Source};

use super::Verbosity;
use super::exit::Exit;
use super::load::{print_counts, print_diagnostics, read_text};
use super::output::replace;

#[derive(clap::Args)]
pub struct FmtArgs {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Change nothing; exit 1 if the file is not formatted.
    #[arg(long)]
    check: bool,
}

pub fn fmt(args: &FmtArgs, v: Verbosity) -> Result<Exit, Exit> {
    let path = &args.file;
    let text = read_text(path)?;
    let name = path.display().to_string();
    let mut d = Diagnostics::default();
    let Some(doc) = bkc::syntax::document(&text, &mut d) else {
        let diags = d.finish(&Source::new(&name, Arc::<str>::from(text.as_str())));
        print_diagnostics(&diags, v);
        print_counts(&name, &diags, v);
        eprintln!("{name}: not formatted: fix the syntax errors first");
        return Err(Exit::Invalid);
    };
    let formatted = bkc::fmt::format(&doc, &text);
    // Never write a file whose meaning changed: formatting must only move whitespace and comments.
    let same = formatted
        .parse::<kdl::KdlDocument>()
        .is_ok_and(|f| bkc::fmt::same_meaning(&doc, &f));
    if !same {
        eprintln!(
            "error: bkc fmt could not format {name} without changing it; the file is left as it is"
        );
        return Err(Exit::CouldNotRun);
    }
    if formatted == text {
        if v.verbose {
            eprintln!("{name}: already formatted");
        }
        return Ok(Exit::Success);
    }
    if args.check {
        let diff = similar::TextDiff::from_lines(&text, &formatted);
        eprint!(
            "{}",
            diff.unified_diff()
                .context_radius(1)
                .header(&name, &format!("{name} (formatted)"))
        );
        eprintln!("{name}: not formatted; run `bkc fmt {name}`");
        return Ok(Exit::NotFormatted);
    }
    replace(path, &formatted)?;
    if !v.quiet {
        eprintln!("{name}: formatted");
    }
    Ok(Exit::Success)
}
