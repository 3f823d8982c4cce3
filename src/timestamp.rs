//! Points in time as popsel writes them: RFC 3339 for people and state files, seconds since
//! the epoch for metrics. Pure: the time is always passed in.

use std::time::{Duration, SystemTime};

/// `2026-11-30T09:45:38Z`, to the second, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Whole seconds since the epoch; 0 for a time before it.
pub fn unix_seconds(t: SystemTime) -> u64 {
    since_epoch(t).as_secs()
}

/// Seconds since the epoch with their fraction, as Prometheus timestamps are; 0 before it.
pub fn unix_seconds_f64(t: SystemTime) -> f64 {
    since_epoch(t).as_secs_f64()
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}
