//! The Atmos API client's families, filled by the client itself through [`ApiObserver`].

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGauge, Result};

use super::family::{Family, collector};
use crate::atmos::ApiObserver;

const UP: Family = Family {
    name: "popsel_api_up",
    help: "1 if the last API call was answered (not 401/403/429/5xx, not a transport failure).",
    labels: &[],
};
const REQUESTS: Family = Family {
    name: "popsel_api_requests_total",
    help: "API requests by endpoint, method and HTTP code (or timeout, connection_refused, transport).",
    labels: &["endpoint", "method", "code"],
};
const THROTTLED: Family = Family {
    name: "popsel_api_throttled",
    help: "1 while the agent holds its API calls back because the API answered 429 (until a call is answered again).",
    labels: &[],
};
const HELD_BACK: Family = Family {
    name: "popsel_api_held_back_total",
    help: "API calls not sent, held back while the API throttled popsel (reason throttled) or failed (reason failing).",
    labels: &["reason"],
};
const HELD_BACK_REASONS: [&str; 2] = ["throttled", "failing"];
const DURATION: Family = Family {
    name: "popsel_api_request_duration_seconds",
    help: "API request duration.",
    labels: &["endpoint"],
};

/// Clones share their series (the registry holds one, the client reports to another).
/// Coarse, for a fleet: 9 series an endpoint template (up to 7 of them), where 12 doubling
/// buckets made 15. An answer within 25 ms is a nearby API, past 1 s a slow one, and the agent's
/// calls give up at 5 s.
const DURATION_BUCKETS: [f64; 6] = [0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Clone)]
pub struct ApiCollector {
    up: IntGauge,
    requests: IntCounterVec,
    duration: HistogramVec,
    throttled: IntGauge,
    held_back: IntCounterVec,
}

collector!(ApiCollector {
    up,
    requests,
    duration,
    throttled,
    held_back
});

impl ApiCollector {
    pub const FAMILIES: [&'static str; 5] = [
        UP.name,
        REQUESTS.name,
        DURATION.name,
        THROTTLED.name,
        HELD_BACK.name,
    ];

    pub fn new() -> Result<ApiCollector> {
        let held_back = HELD_BACK.counters()?;
        // From zero, so that an alert on its increase sees the first hold.
        for reason in HELD_BACK_REASONS {
            held_back.with_label_values(&[reason]);
        }
        Ok(ApiCollector {
            up: UP.int_gauge()?,
            requests: REQUESTS.counters()?,
            duration: DURATION.histograms(DURATION_BUCKETS.to_vec())?,
            throttled: THROTTLED.int_gauge()?,
            held_back,
        })
    }
}

impl ApiObserver for ApiCollector {
    fn observe(&self, endpoint: &str, method: &str, code: &str, elapsed: Duration) {
        self.requests
            .with_label_values(&[endpoint, method, code])
            .inc();
        self.duration
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
        // A refusal of the credentials, throttling or a server fault is no answer: the API is
        // not usable. Any other code (a 404 too) means it is.
        let answered = code
            .parse::<u16>()
            .is_ok_and(|c| c < 500 && !matches!(c, 401 | 403 | 429));
        self.up.set(i64::from(answered));
    }

    fn held(&self, throttled: bool) {
        let [throttled_reason, failing] = HELD_BACK_REASONS;
        let reason = if throttled { throttled_reason } else { failing };
        self.held_back.with_label_values(&[reason]).inc();
    }

    fn throttled(&self, throttled: bool) {
        self.throttled.set(i64::from(throttled));
    }
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
