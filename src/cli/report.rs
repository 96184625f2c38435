//! `bkc report`: the fleet at a glance, as one self-contained HTML page (src/report.rs).

use std::path::PathBuf;

use super::Verbosity;
use super::exit::{Exit, OrExit};
use super::hosts::{HostFilter, Selector};
use super::remote::{Fleet, Remote};
use super::status::gather;

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The topology file.
    #[arg(default_value = "bkc.kdl")]
    file: PathBuf,
    /// Where to write the page.
    #[arg(short, long, default_value = "status.html")]
    out: PathBuf,
    /// Only these hosts: a name, or @tag (repeatable).
    #[arg(long = "host", value_name = "NAME|@TAG")]
    hosts: Vec<Selector>,
    /// How many of each job's last runs to show, from the journal.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    runs: u16,
    #[command(flatten)]
    remote: Remote,
}

pub fn report(args: &ReportArgs, v: Verbosity) -> Result<Exit, Exit> {
    let fleet = Fleet::open(&args.file, &HostFilter::new(&args.hosts), v)?;
    let ((rows, runs), unreachable) = gather(&fleet, &args.remote, Some(usize::from(args.runs)))?;
    let page = bkc::report::page(fleet.t, &rows, &runs, &unreachable, jiff::Timestamp::now())
        .map_err(|e| format!("cannot render the page: {e}"))
        .or_exit(Exit::CouldNotRun)?;
    // Written whole and renamed into place: a web server never serves half a page.
    let dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status.html".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, page)
        .and_then(|()| std::fs::rename(&tmp, &args.out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", args.out.display())
        })
        .or_exit(Exit::CouldNotRun)?;
    if !v.quiet {
        eprintln!("wrote {} ({} jobs)", args.out.display(), rows.len());
    }
    Ok(Exit::HostFailed.when(!unreachable.is_empty()))
}
