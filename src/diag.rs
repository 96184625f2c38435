//! Diagnostics: every mistake in a topology file, with the file name, the line, a label on the
//! exact span and a help line that says how to fix it.
//!
//! One struct serves every kind of diagnostic, rather than an enum variant per kind, because most
//! of them carry text computed from the file (a "did you mean", the members of a cycle) and some
//! carry several labels. Each kind is still named by its own stable code (`bkc::unknown_host`),
//! which is what tests and users match on; [`Code`] lists them all in one place.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity, SourceSpan,
};

use crate::printable::{masked, printable, printable_line};

fn shown(text: impl Into<String>) -> String {
    printable(&text.into()).into_owned()
}

/// The topology source a diagnostic points into: its file name and text.
pub type Source = NamedSource<Arc<str>>;

/// Declares [`Code`] and its texts from one list, so that a code cannot exist without its text
/// or be missing from [`Code::ALL`].
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// The stable code of each kind of diagnostic. Users and scripts match on its text (it is
        /// printed with every diagnostic), so a text never changes meaning; tests/diagnostics.rs
        /// holds a case for each one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            pub const ALL: &[Code] = &[$(Code::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // Reading the KDL file.
    /// The file is not KDL.
    Syntax = "bkc::syntax",
    /// The file is larger than bkc reads.
    FileTooLarge = "bkc::file_too_large",
    /// Blocks nested deeper than a topology needs.
    Nesting = "bkc::nesting",
    /// A node bkc does not know in its place.
    UnknownNode = "bkc::unknown_node",
    /// A property the node does not have.
    UnknownProperty = "bkc::unknown_property",
    /// More arguments than the node takes.
    UnexpectedArgument = "bkc::unexpected_argument",
    /// A `{ … }` block on a node that takes none.
    UnexpectedChildren = "bkc::unexpected_children",
    /// A required argument or property is absent.
    MissingValue = "bkc::missing_value",
    /// A value of the wrong type (a string for a number, …).
    WrongType = "bkc::wrong_type",
    /// A setting given twice in one node.
    DuplicateSetting = "bkc::duplicate_setting",

    // Names and hosts.
    InvalidName = "bkc::invalid_name",
    DuplicateHost = "bkc::duplicate_host",
    DuplicateJob = "bkc::duplicate_job",
    UnknownHost = "bkc::unknown_host",
    UnknownJob = "bkc::unknown_job",
    InvalidAddress = "bkc::invalid_address",
    InvalidUser = "bkc::invalid_user",
    InvalidPort = "bkc::invalid_port",
    /// A `max-parallel` that is not a number of jobs from 1 to 1024.
    InvalidMaxParallel = "bkc::invalid_max_parallel",
    InvalidHostKey = "bkc::invalid_host_key",
    /// A host runners reach over SSH without a pinned key (a warning).
    NoHostKey = "bkc::no_host_key",

    // Keys of jobs.
    /// An `ssh-keys` value other than `restricted` and `operator`.
    InvalidSshKeys = "bkc::invalid_ssh_keys",
    /// A job's pinned `key` that is not an SSH public key bkc can use, or that another job
    /// pins too.
    InvalidJobKey = "bkc::invalid_job_key",
    /// A setting that the topology's other settings make unused (a warning).
    UnusedSetting = "bkc::unused_setting",

    // Values inside a job.
    InvalidPath = "bkc::invalid_path",
    /// A path the job's sandbox would open for writing that covers a system directory or
    /// reaches bkc's own.
    UnsafeWritablePath = "bkc::unsafe_writable_path",
    InvalidDuration = "bkc::invalid_duration",
    InvalidSize = "bkc::invalid_size",
    InvalidDescription = "bkc::invalid_description",
    InvalidNice = "bkc::invalid_nice",
    /// A `priority` outside -1000..=1000.
    InvalidPriority = "bkc::invalid_priority",
    InvalidIoClass = "bkc::invalid_io_class",
    InvalidRetries = "bkc::invalid_retries",

    // Schedules.
    InvalidCalendar = "bkc::invalid_calendar",
    InvalidCron = "bkc::invalid_cron",
    /// A calendar expression that matches no future time.
    NeverFires = "bkc::never_fires",
    /// More than one kind of schedule on one job.
    ConflictingSchedule = "bkc::conflicting_schedule",
    /// A job without a timer (a warning).
    NoSchedule = "bkc::no_schedule",

    // Syncs, snapshots and hooks.
    /// Neither end of a sync on the job's host.
    BothRemote = "bkc::both_remote",
    SyncToItself = "bkc::sync_to_itself",
    /// Source and destination inside one another.
    SyncOverlap = "bkc::sync_overlap",
    /// An `opts` word that is not an rsync option.
    InvalidOption = "bkc::invalid_option",
    /// An rsync option bkc sets itself.
    ConflictingOption = "bkc::conflicting_option",
    /// An rsync option `bkc-run serve` refuses on the far side of a sync.
    RefusedOption = "bkc::refused_option",
    InvalidRetention = "bkc::invalid_retention",
    /// A `source-snapshot` of a kind bkc cannot take, or of a source it cannot take it of.
    InvalidSourceSnapshot = "bkc::invalid_source_snapshot",
    /// A snapshot without any keep-* setting (a warning).
    NoRetention = "bkc::no_retention",
    InvalidHook = "bkc::invalid_hook",
    /// A `notify` on an event bkc does not have, or with an unusable command.
    InvalidNotify = "bkc::invalid_notify",
    /// A `ping` that is not an http(s) URL.
    InvalidUrl = "bkc::invalid_url",
    /// Two units of one host would have the same name (a job `fresh-x` beside the freshness
    /// check of a job `x`).
    UnitClash = "bkc::unit_clash",
    /// A job with no sync and no hook (a warning).
    EmptyJob = "bkc::empty_job",
    /// A `watch` that cannot work: on another host, on what the job writes itself, or with a
    /// `quiet` out of range.
    InvalidWatch = "bkc::invalid_watch",
    /// A `watch` outside every source of the job's syncs (a warning).
    WatchOutsideSource = "bkc::watch_outside_source",

    // Between jobs.
    /// A job that blocks on itself.
    SelfWait = "bkc::self_wait",
    /// Jobs that wait on each other in a circle.
    WaitCycle = "bkc::wait_cycle",
    /// Jobs that touch the same data without a lock between them.
    DerivedExclusion = "bkc::derived_exclusion",

    // `bkc import rsyncdirector`: the YAML it reads.
    YamlSyntax = "bkc::yaml_syntax",
    YamlUnknownKey = "bkc::yaml_unknown_key",
    YamlWrongType = "bkc::yaml_wrong_type",
    YamlMissingKey = "bkc::yaml_missing_key",
    YamlOutOfRange = "bkc::yaml_out_of_range",

    // `bkc import rsyncdirector`: what cannot be carried over as it was.
    /// A value the old daemon's shell would have split or expanded.
    ImportShell = "bkc::import_shell",
    /// An rsync option the topology cannot express.
    ImportOption = "bkc::import_option",
    /// A user or address that ssh would misread.
    ImportValue = "bkc::import_value",
    /// Two addresses that would become one host.
    ImportAddress = "bkc::import_address",
    /// One address reached with two users or ports.
    ImportConflict = "bkc::import_conflict",
    /// A job id that had to change to be a job name (a warning).
    ImportRenamed = "bkc::import_renamed",
    /// A wait on a lock file that another imported job creates (a warning).
    ImportWaitsOnJob = "bkc::import_waits_on_job",
    /// A wait without a timeout (a warning).
    ImportNoTimeout = "bkc::import_no_timeout",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub labels: Vec<LabeledSpan>,
    pub help: Option<String>,
    source: Option<Source>,
}

impl Diagnostic {
    // Every text of a diagnostic is made printable where it is set: a message often quotes the
    // file (a name, a path), and the file may come from a stranger (an imported config).
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: printable_line(&message.into()).into_owned(),
            labels: Vec::new(),
            help: None,
            source: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// The primary label: the span the message is about.
    pub fn label(mut self, span: SourceSpan, text: impl Into<String>) -> Diagnostic {
        self.labels
            .push(LabeledSpan::new_primary_with_span(Some(shown(text)), span));
        self
    }

    /// A secondary label, such as "first defined here".
    pub fn also(mut self, span: SourceSpan, text: impl Into<String>) -> Diagnostic {
        self.labels
            .push(LabeledSpan::new_with_span(Some(shown(text)), span));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(shown(help));
        self
    }

    fn with_source(mut self, source: Source) -> Diagnostic {
        self.source = Some(source);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The 1-based line of the primary label, for sorting and for plain-text consumers.
    pub fn line(&self) -> Option<usize> {
        let src = self.source.as_ref()?.inner();
        let span = self.labels.first()?;
        Some(src[..span.offset().min(src.len())].matches('\n').count() + 1)
    }

    fn first_offset(&self) -> usize {
        self.labels.first().map_or(usize::MAX, |l| l.offset())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// All diagnostics of one file, collected so that every mistake is reported at once.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// True when there is at least one error and every error has this code.
    pub fn all_errors_are(&self, code: Code) -> bool {
        self.has_errors()
            && self
                .items
                .iter()
                .filter(|d| d.is_error())
                .all(|d| d.code == code)
    }

    pub fn retain(&mut self, keep: impl FnMut(&Diagnostic) -> bool) {
        self.items.retain(keep);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Attach the source and order the diagnostics as they appear in the file, so that the
    /// output reads top to bottom like the file does.
    pub fn finish(mut self, source: &Source) -> Vec<Diagnostic> {
        self.items.sort_by_key(Diagnostic::first_offset);
        // The snippet miette prints is the source text itself: a control character in it is
        // shown as `?` (one per byte, so every label still points at its place).
        let source = match masked(source.inner()) {
            Cow::Borrowed(_) => source.clone(),
            Cow::Owned(m) => NamedSource::new(source.name(), Arc::<str>::from(m)),
        };
        self.items
            .into_iter()
            .map(|d| d.with_source(source.clone()))
            .collect()
    }
}

/// Render diagnostics the way `bkc check` prints them. Without colour the output is plain
/// Unicode text, stable enough for the tests to compare whole.
pub fn render(diags: &[Diagnostic], color: bool, width: usize) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, d);
    }
    out
}

/// "did you mean `x`?" for a misspelt name, if one of `candidates` is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
