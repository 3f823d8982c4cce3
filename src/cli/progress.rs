//! The live progress line on a terminal: a spinner, the elapsed time and what the counters of
//! a [`Progress`] say (`probing: 58/104 addresses answered, …`, `PoP catalogue: retrying in
//! 2s: HTTP 503`), redrawn ten times a second by a task of its own that reads the counters.
//! When stderr is not a terminal nothing is drawn, not a byte: a script or a log file gets
//! the warnings and errors only.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::atmos::{ApiError, ApiObserver, Observer};
use crate::progress::Progress;

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// A progress line on stderr, or nothing when stderr is not a terminal.
pub struct ProgressLine {
    progress: Progress,
    shown: Option<Shown>,
}

struct Shown {
    bar: ProgressBar,
    redraw: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ProgressLine {
    /// Shows `progress` on stderr when it is a terminal (and `wanted`), redrawn by a task of
    /// the async runtime this is called in (outside one, nothing is shown).
    pub fn on_stderr(progress: Progress, wanted: bool) -> ProgressLine {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let shown = runtime
            .filter(|_| wanted && std::io::stderr().is_terminal())
            .map(|runtime| Shown::start(&progress, &runtime));
        ProgressLine { progress, shown }
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// An observer of the API client that puts its retries on the line.
    pub fn api_observer(&self) -> Observer {
        Observer(Some(Arc::new(RetriesShown(self.progress.clone()))))
    }

    /// Prints `line` on stderr, above the progress line if one is shown.
    pub fn eprintln(&self, line: &str) {
        match &self.shown {
            Some(shown) => shown.bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Takes the line away for good (before the command prints its result).
    pub fn finish(&self) {
        if let Some(shown) = &self.shown {
            shown.stop();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Shown {
    fn start(progress: &Progress, runtime: &tokio::runtime::Handle) -> Shown {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        // No colour (NO_COLOR has nothing to turn off here): a spinner, the elapsed time, the
        // counters, cut to the terminal's width.
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>3} {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_message(progress.snapshot().line(Instant::now()));
        let (ticking, progress) = (bar.clone(), progress.clone());
        let redraw = runtime.spawn(async move {
            let mut every = tokio::time::interval(REDRAW);
            loop {
                every.tick().await;
                ticking.set_message(progress.snapshot().line(Instant::now()));
                ticking.tick();
            }
        });
        Shown {
            bar,
            redraw: Mutex::new(Some(redraw)),
        }
    }

    fn stop(&self) {
        let redraw = self.redraw.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(redraw) = redraw {
            redraw.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// The API client's retries onto a [`Progress`]: `retrying in 2s: HTTP 503` until the next
/// answer.
struct RetriesShown(Progress);

impl ApiObserver for RetriesShown {
    fn observe(&self, _endpoint: &str, _method: &str, code: &str, _elapsed: Duration) {
        if code.starts_with('2') {
            self.0.clear_retry();
        }
    }

    fn retrying(&self, wait: Duration, error: &ApiError) {
        let at = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(Instant::now);
        self.0.retrying(at, &error.brief());
    }
}
