//! The Atmos API client's families, filled by the client itself through [`ApiObserver`].

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec, IntGauge, Result, exponential_buckets};

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
const DURATION: Family = Family {
    name: "popsel_api_request_duration_seconds",
    help: "API request duration.",
    labels: &["endpoint"],
};

/// Clones share their series (the registry holds one, the client reports to another).
#[derive(Clone)]
pub struct ApiCollector {
    up: IntGauge,
    requests: IntCounterVec,
    duration: HistogramVec,
}

collector!(ApiCollector {
    up,
    requests,
    duration
});

impl ApiCollector {
    pub const FAMILIES: [&'static str; 3] = [UP.name, REQUESTS.name, DURATION.name];

    pub fn new() -> Result<ApiCollector> {
        Ok(ApiCollector {
            up: UP.int_gauge()?,
            requests: REQUESTS.counters()?,
            duration: DURATION.histograms(exponential_buckets(0.005, 2.0, 12)?)?,
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
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
