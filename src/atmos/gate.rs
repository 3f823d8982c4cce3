//! The agent's API calls, held back together while the API throttles popsel or is down.
//!
//! Without it every stage finds out for itself, each with its retries, every run: an outage
//! then brings the API more requests than a working day, and a 429 is obeyed by one call while
//! the others carry on. With it:
//!
//! - a 429, or a call that fails (after its own retries) with a server error or no answer,
//!   closes the gate: every call of every stage is held back without a request until the
//!   server's `Retry-After` has passed and a backoff (exponential, full jitter, capped) with it;
//! - then one call, the probe, goes through alone, in a single attempt: answered, and the gate
//!   opens; failed, and it closes again for longer. Calls made meanwhile are held back.
//!
//! Only the agent has a gate: a command run by hand wants its answer now, and retries.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest `Retry-After` obeyed: a server asking for more (or for `1e20` seconds) is
/// asked again after a day.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Shared by every client the agent builds (a reload builds a new one), so that what one
/// generation learnt of the API holds for the next.
#[derive(Debug)]
pub struct Gate {
    /// The ceiling of the first backoff; it doubles with each failure.
    base: Duration,
    /// The largest ceiling.
    cap: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Calls (or probes) that failed in a row; 0: open.
    failures: u32,
    /// Closed until then.
    until: Option<Instant>,
    /// The last failure was a 429.
    throttled: bool,
    /// A probe is out.
    probing: bool,
}

/// Whether a call may go, and how.
#[derive(Debug)]
pub enum Admission {
    /// The gate is open: the call goes, with its retries.
    Open,
    /// The gate was closed and its wait is over: this call is the probe, one attempt. The
    /// ticket must be given back with [`Gate::answered`] or [`Gate::failed`]; dropped without
    /// that (the call was abandoned), the next call probes instead.
    Probe(ProbeTicket),
    /// Not sent.
    Held(Hold),
}

/// Why a call was held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Until the gate lets a probe through (zero while another call is the probe).
    pub left: Duration,
    /// The API throttled popsel (429); otherwise it failed.
    pub throttled: bool,
}

#[derive(Debug)]
pub struct ProbeTicket {
    gate: Arc<Gate>,
}

impl Drop for ProbeTicket {
    fn drop(&mut self) {
        self.gate.state().probing = false;
    }
}

impl Gate {
    pub fn new(base: Duration, cap: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            base: base.max(Duration::from_millis(1)),
            cap: cap.max(base),
            state: Mutex::default(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call made at `now` may go.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
        let mut state = self.state();
        if state.failures == 0 {
            return Admission::Open;
        }
        let left = state
            .until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        if state.probing || !left.is_zero() {
            return Admission::Held(Hold {
                left,
                throttled: state.throttled,
            });
        }
        state.probing = true;
        Admission::Probe(ProbeTicket { gate: self.clone() })
    }

    /// The API answered a call (whatever it said, short of throttling or failing): open.
    pub fn answered(&self, ticket: Option<ProbeTicket>) {
        let mut state = self.state();
        *state = State::default();
        drop(state);
        drop(ticket);
    }

    /// A call failed at `now` with throttling (`throttled`, the server asking to wait
    /// `retry_after`) or a server error or no answer: closed until `retry_after` and a backoff
    /// drawn with `jitter` in `[0, 1)` have passed. Returns the wait.
    pub fn failed(
        &self,
        ticket: Option<ProbeTicket>,
        now: Instant,
        throttled: bool,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Duration {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        let ceiling = self
            .base
            .saturating_mul(1 << (state.failures - 1).min(16))
            .min(self.cap);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let asked = retry_after.unwrap_or_default().min(LONGEST_RETRY_AFTER);
        let wait = ceiling.mul_f64(jitter).max(asked);
        state.until = Some(now.checked_add(wait).unwrap_or(now));
        state.throttled = throttled;
        drop(state);
        drop(ticket);
        wait
    }

    /// Whether the gate is closed because the API throttled popsel.
    pub fn throttled(&self) -> bool {
        let state = self.state();
        state.failures > 0 && state.throttled
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
