//! Sequential probing, what the engine keeps: how it spends its requests ([`Adaptive`]) and
//! what each address has answered so far ([`Tally`]). Which addresses get another request is
//! the rank stage's to say (`rank::contenders`), since it depends on the score; the engine
//! (`icmp::sequential`) asks it at each tick.

use std::time::Duration;

/// How sequential probing spends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adaptive {
    /// The PoPs whose order must be settled (the selection needs a primary and a secondary in
    /// another city: at least 3).
    pub top: usize,
    /// The most requests one address gets.
    pub cap: u16,
    /// Time between two requests to a contender.
    pub follow_up: Duration,
    /// Time between two requests to an address that has not answered yet: a third of the
    /// timeout, so that any address answering within it does so before it is tried again,
    /// and the third try still ends within fping's time.
    pub retry_silent: Duration,
}

/// The fewest PoPs settled: a primary, and a secondary in another city.
pub const MIN_TOP: usize = 3;
/// Requests a contender gets at most (0.6²⁰ ≈ 0.004%: a PoP with two 40%-lossy addresses
/// passes for clean once in 13,000 runs).
pub const DEFAULT_CAP: u16 = 20;
/// Requests to an address that has not answered, before it is left as unreachable (fping's
/// default retries for a silent host: 3).
pub const TRIES_WHILE_SILENT: u32 = 3;
/// 95%.
const Z: f64 = 1.96;

impl Adaptive {
    /// Settles the best `top` (at least [`MIN_TOP`]) with follow-ups at a quarter of the
    /// probe interval: a contender's 20 requests then take about as long as fping's 5.
    pub fn new(top: usize, interval: Duration, timeout: Duration) -> Adaptive {
        Adaptive {
            top: top.max(MIN_TOP),
            cap: DEFAULT_CAP,
            follow_up: interval / 4,
            retry_silent: timeout / TRIES_WHILE_SILENT,
        }
    }

    /// The time between two requests to an address with this tally.
    pub fn gap(&self, tally: &Tally) -> Duration {
        if tally.rtts.is_empty() {
            self.retry_silent
        } else {
            self.follow_up
        }
    }
}

/// What one address has answered so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Requests sent.
    pub sent: u32,
    /// Round trips of the replies, in send order.
    pub rtts: Vec<Duration>,
    /// Requests whose timeout passed without a reply.
    pub lost: u32,
    /// How long the oldest request still waiting has waited; `None`: none is waiting.
    pub oldest_waiting: Option<Duration>,
}

impl Tally {
    pub fn received(&self) -> u32 {
        u32::try_from(self.rtts.len()).unwrap_or(u32::MAX)
    }

    /// Requests that have their reply or their timeout.
    pub fn answered_or_lost(&self) -> u32 {
        self.received().saturating_add(self.lost)
    }
}

/// The 95% Wilson score interval of a share `hits / n`; (0, 1) when `n` is 0.
pub fn wilson(hits: u32, n: u32) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (f64::from(n), f64::from(hits.min(n)) / f64::from(n));
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
#[path = "adaptive_tests.rs"]
mod tests;
