//! When to try a request again, and how long to wait first.
//!
//! Exponential backoff with full jitter (a fleet of routers that lost the API together must not
//! come back together), at least what the server's `Retry-After` asks, bounded both in attempts
//! and in total time so that a cycle of the agent always ends.

use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    /// Backoff ceiling before jitter for the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Cap on one wait (before `Retry-After`, which may ask for more).
    pub max_delay: Duration,
    /// No retry is started when it would end past this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all: for one-shot commands that want the first answer.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `attempts_made + 1`, or `None` to give up.
    ///
    /// `jitter` is a number in `[0, 1)`; it is passed in so that this stays pure and testable.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        match self.next(attempts_made, elapsed, retry_after, jitter) {
            Next::Wait(wait) => Some(wait),
            Next::OutOfAttempts | Next::OutOfTime | Next::RetryAfterBeyondBudget { .. } => None,
        }
    }

    /// What to do after `attempts_made` attempts, `elapsed` since the first: wait and try
    /// again, or give up, and why. No wait ever ends past `max_elapsed`: a `Retry-After` of any
    /// size is compared with what is left of the budget, never slept on beyond it.
    pub fn next(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Next {
        if attempts_made >= self.max_attempts {
            return Next::OutOfAttempts;
        }
        let exp = attempts_made.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = if jitter.is_finite() { jitter } else { 0.0 };
        let jittered = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        let past_budget = |wait: Duration| elapsed.saturating_add(wait) > self.max_elapsed;
        if let Some(asked) = retry_after.filter(|&ra| past_budget(ra)) {
            let left = self.max_elapsed.saturating_sub(elapsed);
            return Next::RetryAfterBeyondBudget { asked, left };
        }
        let wait = retry_after.map_or(jittered, |ra| ra.max(jittered));
        if past_budget(wait) {
            return Next::OutOfTime;
        }
        Next::Wait(wait)
    }
}

/// What [`RetryPolicy::next`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Wait(Duration),
    OutOfAttempts,
    /// The backoff would end past the time budget.
    OutOfTime,
    /// The server asked to wait `asked`, more than the `left` of the time budget.
    RetryAfterBeyondBudget {
        asked: Duration,
        left: Duration,
    },
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
///
/// Whatever the server sends, this never fails and never panics: a number too large for a
/// `Duration` (`1e20`, `inf`, 30 digits) is the longest `Duration`, which no budget allows; a
/// negative number, NaN or anything else unreadable is no `Retry-After` at all (the backoff
/// applies); a date in the past is now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
