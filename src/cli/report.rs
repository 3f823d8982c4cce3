//! The pipeline's notices on a terminal: warnings on stderr, and a progress line while probing
//! when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pipeline::{Notice, Report};

/// Warnings as `popsel: warning: …` lines on stderr; news is left to the command's output.
pub struct StderrReport {
    progress: bool,
    shown: AtomicBool,
}

impl StderrReport {
    /// `progress`: show a progress line while probing (only when stderr is a terminal).
    pub fn new(progress: bool) -> Self {
        Self {
            progress: progress && std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
        }
    }

    /// Clears the progress line, if one was shown.
    pub fn clear_progress(&self) {
        if self.shown.swap(false, Ordering::Relaxed) {
            eprint!("\r\x1b[K");
        }
    }
}

impl Report for StderrReport {
    fn notice(&self, notice: Notice) {
        if notice.is_warning() {
            self.clear_progress();
            eprintln!("popsel: warning: {notice}");
        }
    }

    fn progress(&self, done: usize, total: usize) {
        if self.progress {
            self.shown.store(true, Ordering::Relaxed);
            eprint!("\rprobing: {done}/{total} addresses");
            let _ = std::io::stderr().flush();
        }
    }
}
