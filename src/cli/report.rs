//! The pipeline's notices on a terminal: warnings on stderr, above the progress line that
//! `popsel rank` shows while it fetches, resolves and probes (when stderr is a terminal).

use super::progress::ProgressLine;
use crate::atmos::Observer;
use crate::pipeline::{Notice, Report};
use crate::progress::Progress;

/// Warnings as `popsel: warning: …` lines on stderr; news is left to the command's output.
pub struct StderrReport {
    line: ProgressLine,
}

impl StderrReport {
    /// `progress`: show a progress line (only when stderr is a terminal). Within the async
    /// runtime.
    pub fn new(progress: bool) -> Self {
        Self {
            line: ProgressLine::on_stderr(Progress::default(), progress),
        }
    }

    /// An observer for the API client, which shows its retries on the progress line.
    pub fn api_observer(&self) -> Observer {
        self.line.api_observer()
    }

    /// Clears the progress line for good, if one was shown: before the result is printed.
    pub fn clear_progress(&self) {
        self.line.finish();
    }
}

impl Report for StderrReport {
    fn notice(&self, notice: Notice) {
        if notice.is_warning() {
            self.line.eprintln(&format!("popsel: warning: {notice}"));
        }
    }

    fn progress(&self) -> Option<&Progress> {
        Some(self.line.progress())
    }
}
