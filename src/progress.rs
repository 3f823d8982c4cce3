//! How far a run of the measuring stages has got (catalogue, DNS, probing): counters that the
//! stages add to as they go and that a display reads from elsewhere, at its own pace. Passed
//! in by whoever wants to show it (`popsel rank` on a terminal), never global; a run nobody
//! watches counts into a `Progress` nobody reads.
//!
//! The probe engine adds to it once per request and once per reply: a relaxed atomic add each,
//! no lock and no allocation on that path. Pure: no clock (the display times the run itself).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The stage a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the PoP catalogue (the API, or a file).
    Catalog,
    /// Looking the PoPs' names up.
    Resolve,
    /// Sending echo requests.
    Probe,
    /// Ranking and printing: nothing left to wait for.
    Done,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Catalog,
            1 => Phase::Resolve,
            2 => Phase::Probe,
            _ => Phase::Done,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Phase::Catalog => 0,
            Phase::Resolve => 1,
            Phase::Probe => 2,
            Phase::Done => 3,
        }
    }
}

#[derive(Default)]
struct Counters {
    phase: AtomicU8,
    names: AtomicU64,
    names_done: AtomicU64,
    addresses: AtomicU64,
    addresses_answered: AtomicU64,
    addresses_done: AtomicU64,
    requests: AtomicU64,
    replies: AtomicU64,
    /// The API client's retry under way (rare: a lock is fine here).
    retry: Mutex<Option<Retry>>,
}

/// The API client waits until `at` to try again, because of `why` (`HTTP 503`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub at: Instant,
    pub why: String,
}

/// The counters of one run; clones share them.
#[derive(Clone, Default)]
pub struct Progress(Arc<Counters>);

/// What a [`Progress`] says at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: Phase,
    /// Names looked up, of how many.
    pub names: (u64, u64),
    /// Addresses that answered at least once, of how many.
    pub answered: (u64, u64),
    /// Addresses done with (answered in full, or given up on).
    pub addresses_done: u64,
    /// Echo requests sent, replies received.
    pub requests: u64,
    pub replies: u64,
    /// The API client's retry under way.
    pub retry: Option<Retry>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Progress {
    fn enter(&self, phase: Phase) {
        self.0.phase.store(phase.as_u8(), Ordering::Relaxed);
        self.clear_retry();
    }

    /// DNS begins: `names` to look up.
    pub fn resolving(&self, names: usize) {
        self.0.names.store(names as u64, Ordering::Relaxed);
        self.0.names_done.store(0, Ordering::Relaxed);
        self.enter(Phase::Resolve);
    }

    /// One name looked up (answered, failed or timed out).
    pub fn name_resolved(&self) {
        add(&self.0.names_done, 1);
    }

    /// Probing begins: `addresses` distinct addresses.
    pub fn probing(&self, addresses: usize) {
        let c = &self.0;
        c.addresses.store(addresses as u64, Ordering::Relaxed);
        for counter in [
            &c.addresses_answered,
            &c.addresses_done,
            &c.requests,
            &c.replies,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.enter(Phase::Probe);
    }

    /// An echo request left.
    pub fn request_sent(&self) {
        add(&self.0.requests, 1);
    }

    /// An echo reply came; `first`: the first from its address.
    pub fn reply_received(&self, first: bool) {
        add(&self.0.replies, 1);
        if first {
            add(&self.0.addresses_answered, 1);
        }
    }

    /// One more address is done with (fixed probing: its requests all ended).
    pub fn address_done(&self) {
        add(&self.0.addresses_done, 1);
    }

    /// `done` addresses are done with now (sequential probing, which counts them afresh).
    pub fn addresses_done(&self, done: usize) {
        self.0.addresses_done.store(done as u64, Ordering::Relaxed);
    }

    /// Nothing left to wait for.
    pub fn done(&self) {
        self.enter(Phase::Done);
    }

    /// The API client waits until `at` before trying again, because of `why` (`HTTP 503`).
    pub fn retrying(&self, at: Instant, why: &str) {
        let retry = Retry {
            at,
            why: why.to_owned(),
        };
        *self.0.retry.lock().unwrap_or_else(|e| e.into_inner()) = Some(retry);
    }

    /// The API answered: no retry under way.
    pub fn clear_retry(&self) {
        *self.0.retry.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.0;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            phase: Phase::from_u8(c.phase.load(Ordering::Relaxed)),
            names: (get(&c.names_done), get(&c.names)),
            answered: (get(&c.addresses_answered), get(&c.addresses)),
            addresses_done: get(&c.addresses_done),
            requests: get(&c.requests),
            replies: get(&c.replies),
            retry: c.retry.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}

impl Snapshot {
    /// One short line for a terminal's status line (the display adds a spinner and the
    /// elapsed time): what is being waited for, and how far it is; `now` counts a retry down.
    pub fn line(&self, now: Instant) -> String {
        if let Some(retry) = &self.retry {
            let left = retry.at.saturating_duration_since(now);
            return format!(
                "{}: retrying in {}: {}",
                self.what(),
                short(left),
                retry.why
            );
        }
        match self.phase {
            Phase::Catalog => "fetching the PoP catalogue".into(),
            Phase::Resolve => format!("DNS: {}/{} names", self.names.0, self.names.1),
            Phase::Probe => format!(
                "probing: {}/{} addresses answered, {} done; {} requests, {} replies",
                self.answered.0, self.answered.1, self.addresses_done, self.requests, self.replies
            ),
            Phase::Done => "ranking".into(),
        }
    }

    fn what(&self) -> &'static str {
        match self.phase {
            Phase::Catalog => "PoP catalogue",
            Phase::Resolve => "DNS",
            Phase::Probe => "probing",
            Phase::Done => "ranking",
        }
    }
}

/// `2s`, `400ms`: a wait as a status line says it (whole seconds from one second on, rounded
/// up so that it never says 0s while waiting).
fn short(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{}ms", wait.as_millis())
    } else {
        format!("{}s", wait.as_millis().div_ceil(1000))
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
