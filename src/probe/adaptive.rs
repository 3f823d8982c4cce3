//! Sequential probing, the pure core: which addresses deserve another echo request.
//!
//! A fixed count per address (fping's way) spends as much on a PoP 200 ms away as on the two
//! that decide the answer, and still lets a lossy PoP through now and then: with 5 requests
//! an address losing 40% of them shows no loss 8% of the time (0.6⁵). Here every address gets
//! one request, and then only the contenders get more: the addresses whose plausible score
//! could still place their PoP among the best `top`. They are probed until `cap` requests
//! (0.6²⁰: a 40%-lossy address passes for clean once in 27,000 runs) unless they drop out on
//! the way.
//!
//! The statistics, with the score of [`crate::rank`] (median RTT + 500 ms × loss + jitter):
//!
//! - an address's plausible score is at least its lowest RTT plus 500 ms × the lower end of
//!   the 95% Wilson interval of its loss (an address with no reply yet: at least the time
//!   its oldest request has been waiting), its estimate the score of what it answered so far;
//! - the bar is the `top`-th best PoP's estimate (a PoP is as good as its best address);
//! - an address below the bar is a contender and gets another request every `follow_up`;
//!   one above it gets none (until the bar moves past it: a leader showing loss raises it);
//! - an address that has not answered yet gets up to 3 requests, a third of the timeout
//!   apart, as fping retries a silent host, before it is left as unreachable.
//!
//! Nothing here sends or waits: the engine (`icmp::sequential`) asks [`contenders`] each
//! tick.

use std::time::Duration;

use super::rtt_stats;
use crate::rank::{JITTER_CAP_MS, JITTER_WEIGHT, LOSS_PENALTY_MS, endpoint_score};

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
    fn received(&self) -> u32 {
        u32::try_from(self.rtts.len()).unwrap_or(u32::MAX)
    }

    fn answered_or_lost(&self) -> u32 {
        self.received().saturating_add(self.lost)
    }

    /// The score of what it answered, as the rank stage computes it; `None`: no reply.
    pub fn estimate(&self) -> Option<f64> {
        let loss = f64::from(self.lost) / f64::from(self.answered_or_lost());
        Some(endpoint_score(&rtt_stats(&self.rtts)?, loss))
    }

    /// The least its score can plausibly be.
    pub fn lower(&self) -> f64 {
        let rtt = match (self.rtts.iter().min(), self.oldest_waiting) {
            (Some(&min), _) => ms(min),
            (None, Some(waiting)) => ms(waiting),
            (None, None) => 0.0,
        };
        let (low, _) = wilson(self.lost, self.answered_or_lost());
        rtt + LOSS_PENALTY_MS * low
    }
}

/// For each address of `tallies`, whether it gets another request now. `pops` lists the
/// addresses (indices into `tallies`) of each PoP. An address not sent to now may be later:
/// a reply may still come and make it a contender, or the bar may move past it.
pub fn contenders(pops: &[Vec<usize>], tallies: &[Tally], adaptive: &Adaptive) -> Vec<bool> {
    let bar = bar(pops, tallies, adaptive.top);
    tallies
        .iter()
        .map(|tally| {
            if tally.sent == 0 {
                return true;
            }
            if tally.sent >= u32::from(adaptive.cap) {
                return false;
            }
            // Silent so far: tried a few times, as fping retries, before it is unreachable.
            if tally.rtts.is_empty() {
                return tally.sent < TRIES_WHILE_SILENT;
            }
            // Too few PoPs have answered to tell where the bar is: those that did go on.
            bar.is_none_or(|bar| tally.lower() <= bar)
        })
        .collect()
}

/// The `top`-th best PoP's estimate; `None` while fewer PoPs have answered.
fn bar(pops: &[Vec<usize>], tallies: &[Tally], top: usize) -> Option<f64> {
    let mut estimates: Vec<f64> = pops
        .iter()
        .filter_map(|addresses| {
            addresses
                .iter()
                .filter_map(|&i| tallies.get(i)?.estimate())
                .min_by(f64::total_cmp)
        })
        .collect();
    if estimates.len() < top.max(1) {
        return None;
    }
    let at = top.max(1) - 1;
    estimates.select_nth_unstable_by(at, f64::total_cmp);
    Some(estimates[at])
}

/// The plausible range of an address's score, in ms: its lowest round trip to its highest,
/// its loss over the 95% Wilson interval, its jitter as measured. `None` without a reply.
pub fn score_range(rtts: &[Duration], sent: u32) -> Option<(f64, f64)> {
    let stats = rtt_stats(rtts)?;
    let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX).min(sent);
    let (low, high) = wilson(sent - received, sent);
    let jitter = JITTER_WEIGHT * ms(stats.jitter).min(JITTER_CAP_MS);
    Some((
        ms(stats.min) + LOSS_PENALTY_MS * low + jitter,
        ms(stats.max) + LOSS_PENALTY_MS * high + jitter,
    ))
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[path = "adaptive_tests.rs"]
mod tests;
