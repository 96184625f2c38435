//! Diagnostics: every mistake in a topology file, with the file name, the line, a label on the
//! exact span and a help line that says how to fix it.
//!
//! One struct serves every kind of diagnostic, rather than an enum variant per kind, because most
//! of them carry text computed from the file (a "did you mean", the members of a cycle) and some
//! carry several labels. Each kind is still named by its own stable code (`bkc::unknown_host`),
//! which is what tests and users match on.

use std::fmt;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity, SourceSpan,
};

/// The topology source a diagnostic points into: its file name and text.
pub type Source = NamedSource<Arc<str>>;

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<LabeledSpan>,
    pub help: Option<String>,
    source: Option<Source>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            source: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// The primary label: the span the message is about.
    pub fn label(mut self, span: SourceSpan, text: impl Into<String>) -> Diagnostic {
        self.labels
            .push(LabeledSpan::new_primary_with_span(Some(text.into()), span));
        self
    }

    /// A secondary label, such as "first defined here".
    pub fn also(mut self, span: SourceSpan, text: impl Into<String>) -> Diagnostic {
        self.labels
            .push(LabeledSpan::new_with_span(Some(text.into()), span));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_source(mut self, source: Source) -> Diagnostic {
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
    pub fn all_errors_are(&self, code: &str) -> bool {
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
