//! The probe round's families: per endpoint what it answered, per PoP every reply's RTT.
//! Nothing but a probe round fills them, so without one the exposition leaves them out.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec, Result, exponential_buckets};

use super::family::{Family, collector};
use crate::probe::Probe;
use crate::survey::Survey;

const ENDPOINT: &[&str] = &["pop", "country", "provider", "fqdn", "ip"];

const RTT: Family = Family {
    name: "popsel_pop_rtt_seconds",
    help: "Median round-trip time of the endpoint in the last probe round (absent when nothing answered).",
    labels: ENDPOINT,
};
const LOSS: Family = Family {
    name: "popsel_pop_loss_ratio",
    help: "Share of echo requests without a reply in the last probe round.",
    labels: ENDPOINT,
};
const UP: Family = Family {
    name: "popsel_pop_up",
    help: "1 if the endpoint answered in the last probe round.",
    labels: ENDPOINT,
};
const REQUESTS: Family = Family {
    name: "popsel_probe_requests_total",
    help: "Echo requests sent to the endpoint.",
    labels: ENDPOINT,
};
const RESPONSES: Family = Family {
    name: "popsel_probe_responses_total",
    help: "Echo replies received from the endpoint.",
    labels: ENDPOINT,
};
const REPLY_RTT: Family = Family {
    name: "popsel_probe_rtt_seconds",
    help: "Round-trip time of every echo reply.",
    labels: &["pop"],
};

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct ProbeCollector {
    rtt: GaugeVec,
    loss: GaugeVec,
    up: IntGaugeVec,
    requests: IntCounterVec,
    responses: IntCounterVec,
    reply_rtt: HistogramVec,
    /// The last round's endpoints and PoPs: counters and histograms keep a series until it is
    /// removed, so those of what left the catalogue must be.
    last_round: Arc<Mutex<Round>>,
}

#[derive(Default)]
struct Round {
    /// Label values in `ENDPOINT` order.
    endpoints: HashSet<Vec<String>>,
    pops: HashSet<String>,
}

collector!(ProbeCollector {
    rtt,
    loss,
    up,
    requests,
    responses,
    reply_rtt
});

impl ProbeCollector {
    pub const FAMILIES: [&'static str; 6] = [
        RTT.name,
        LOSS.name,
        UP.name,
        REQUESTS.name,
        RESPONSES.name,
        REPLY_RTT.name,
    ];

    pub fn new() -> Result<ProbeCollector> {
        Ok(ProbeCollector {
            rtt: RTT.gauges()?,
            loss: LOSS.gauges()?,
            up: UP.int_gauges()?,
            requests: REQUESTS.counters()?,
            responses: RESPONSES.counters()?,
            reply_rtt: REPLY_RTT.histograms(exponential_buckets(0.000_05, 2.0, 16)?)?,
            last_round: Arc::default(),
        })
    }

    /// A probe round: per-endpoint gauges and counters, the RTT histogram per PoP; the
    /// addresses in `carried` were not probed this round, so they set their gauges only. A
    /// survey without probes (nothing could be probed) leaves the last round's series as they
    /// are.
    pub fn observe(&self, survey: &Survey, carried: &HashSet<IpAddr>) {
        let Some(probes) = &survey.probes else {
            return;
        };
        self.rtt.reset();
        self.loss.reset();
        self.up.reset();
        let mut round = Round::default();
        for (pop, endpoints) in &survey.pops {
            let label = pop.id().to_string();
            for e in endpoints {
                let Some(p) = probes.get(&e.ip) else {
                    continue;
                };
                let ip = e.ip.to_string();
                let labels = [label.as_str(), &pop.country, &pop.provider, &e.fqdn, &ip];
                self.observe_endpoint(&labels, p, !carried.contains(&e.ip));
                round
                    .endpoints
                    .insert(labels.iter().map(|s| s.to_string()).collect());
            }
            round.pops.insert(label);
        }
        self.forget_departed(round);
    }

    /// `labels` in `ENDPOINT` order; `fresh`: probed this round (its requests and replies
    /// are counted).
    fn observe_endpoint(&self, labels: &[&str; 5], p: &Probe, fresh: bool) {
        if let Some(stats) = p.stats() {
            self.rtt
                .with_label_values(labels)
                .set(stats.median.as_secs_f64());
        }
        self.loss.with_label_values(labels).set(p.loss());
        self.up
            .with_label_values(labels)
            .set(i64::from(p.reachable()));
        if !fresh {
            // The series must exist all the same: `forget_departed` keeps what this round saw.
            self.requests.with_label_values(labels);
            self.responses.with_label_values(labels);
            return;
        }
        self.requests
            .with_label_values(labels)
            .inc_by(u64::from(p.sent));
        self.responses
            .with_label_values(labels)
            .inc_by(u64::from(p.received));
        let histogram = self.reply_rtt.with_label_values(&labels[..1]);
        for rtt in p.rtts.iter() {
            histogram.observe(rtt.as_secs_f64());
        }
    }

    fn forget_departed(&self, round: Round) {
        let mut last = self
            .last_round
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in last.endpoints.difference(&round.endpoints) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.requests.remove_label_values(&labels);
            let _ = self.responses.remove_label_values(&labels);
        }
        for gone in last.pops.difference(&round.pops) {
            let _ = self.reply_rtt.remove_label_values(&[gone.as_str()]);
        }
        *last = round;
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
