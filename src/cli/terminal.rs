//! What popsel writes to a terminal: whether it may colour it (https://no-color.org), and the
//! log's set-up, colour and format included.
//!
//! Colour is used only on a terminal, and never when `NO_COLOR` is set to anything but the
//! empty string. The log follows this rule here; clap's help and errors follow the same rule
//! on their own (anstream reads `NO_COLOR` the same way); the progress display
//! (`cli::progress`) draws no colour at all.

use std::ffi::OsStr;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::LogFormat;

/// The variable of https://no-color.org.
pub const NO_COLOR: &str = "NO_COLOR";

/// Whether output to a stream may carry colour: only on a terminal, and not when `NO_COLOR`
/// (its value, if set) is present and not empty.
pub fn colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// [`colour`] for this process's stderr.
pub fn stderr_colour() -> bool {
    colour(
        std::io::stderr().is_terminal(),
        std::env::var_os(NO_COLOR).as_deref(),
    )
}

/// The process's log on stderr, filtered by `POPSEL_LOG` (default `info`).
///
/// JSON: one object per line, each event's fields at the top level beside `timestamp`,
/// `level`, `target` and `message` (`flatten_event`), and no span lists (popsel logs no
/// spans; a field of one would otherwise nest), so that a collector indexes `location`,
/// `tunnel` or `action` as it finds them.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_env("POPSEL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Human => logs.with_ansi(stderr_colour()).init(),
    }
}

#[cfg(test)]
#[path = "terminal_tests.rs"]
mod tests;
