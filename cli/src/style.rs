//! Colors for human output. Text is written with ANSI styles through `anstream`, which strips
//! them unless standard output is a terminal (and `NO_COLOR` is unset, or `--color always`).

use anstyle::{AnsiColor, Style};

use crate::analysis::Severity;

/// A failure, an error, a denial.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// A warning, something not enforced.
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();
/// A success, a match.
pub const GOOD: Style = AnsiColor::Green.on_default().bold();
/// A note.
pub const NOTE: Style = AnsiColor::Cyan.on_default().bold();
/// A place or a name.
pub const EMPHASIS: Style = Style::new().bold();
/// What matters less.
pub const DIM: Style = Style::new().dimmed();

/// `text` in `style`.
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// The style of a severity.
pub fn severity(severity: Severity) -> Style {
    match severity {
        Severity::Error => BAD,
        Severity::Warning => WARN,
        Severity::Note => NOTE,
    }
}

/// Writes `text` to standard output, styled only where styles are wanted.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes `text` to standard error, styled only where styles are wanted.
pub fn eprint(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = anstream::stderr().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}
