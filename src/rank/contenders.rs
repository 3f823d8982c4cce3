//! Sequential probing, the decision: which addresses deserve another echo request.
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
//! Nothing here sends or waits: the engine (`probe::icmp::sequential`) asks [`contenders`]
//! at each tick.

use std::time::Duration;

use super::{JITTER_CAP_MS, JITTER_WEIGHT, LOSS_PENALTY_MS, endpoint_score};
use crate::probe::adaptive::{Adaptive, TRIES_WHILE_SILENT, Tally, wilson};
use crate::probe::rtt_stats;

/// The score of what an address answered, as the rank stage computes it; `None`: no reply.
pub fn estimate(tally: &Tally) -> Option<f64> {
    let loss = f64::from(tally.lost) / f64::from(tally.answered_or_lost());
    Some(endpoint_score(&rtt_stats(&tally.rtts)?, loss))
}

/// The least an address's score can plausibly be.
pub fn lower(tally: &Tally) -> f64 {
    let rtt = match (tally.rtts.iter().min(), tally.oldest_waiting) {
        (Some(&min), _) => ms(min),
        (None, Some(waiting)) => ms(waiting),
        (None, None) => 0.0,
    };
    let (low, _) = wilson(tally.lost, tally.answered_or_lost());
    rtt + LOSS_PENALTY_MS * low
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
            bar.is_none_or(|bar| lower(tally) <= bar)
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
                .filter_map(|&i| estimate(tallies.get(i)?))
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
#[path = "contenders_tests.rs"]
mod tests;
