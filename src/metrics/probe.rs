//! The probe round's families: whether this host can probe at all, how many echo requests it
//! sent, and per PoP what its best endpoint answered; per endpoint address and every reply's
//! RTT only when asked for (`[metrics] endpoint_series`, `rtt_histogram`). Nothing but the
//! agent's probing fills them, so with `--no-probe` (or no local location) the exposition
//! leaves them out.
//!
//! Why per PoP by default: a fleet multiplies every series by its sites. Per endpoint address
//! (2 to 4 a PoP) and with a 19-bucket histogram per PoP, one agent on a 45-PoP world exported
//! about 1,500 series; per PoP it is 3 a PoP, and the alerts and the dashboard need no more.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec, Result, exponential_buckets};

use super::SeriesOptions;
use super::family::{Family, collector};
use crate::probe::Probe;
use crate::rank::endpoint_score;
use crate::survey::Survey;

/// The one series of a family without labels (a vector, so that it is absent until set).
const NO_LABELS: &[&str] = &[];
const POP: &[&str] = &["pop", "country", "provider"];
const ENDPOINT: &[&str] = &["pop", "country", "provider", "fqdn", "ip"];

const RTT: Family = Family {
    name: "popsel_pop_rtt_seconds",
    help: "Median round-trip time of the PoP's best endpoint in the last probe round (absent when nothing answered).",
    labels: POP,
};
const LOSS: Family = Family {
    name: "popsel_pop_loss_ratio",
    help: "Share of echo requests without a reply to the PoP's best endpoint in the last probe round.",
    labels: POP,
};
const UP: Family = Family {
    name: "popsel_pop_up",
    help: "1 if an endpoint of the PoP answered in the last probe round.",
    labels: POP,
};
const SOCKET_UP: Family = Family {
    name: "popsel_probe_socket_up",
    help: "1 if the agent has an ICMP socket to probe with; 0 if a location is measured from this host but no socket could be opened (no CAP_NET_RAW, ping_group_range, or [probe] interface missing).",
    labels: &[],
};
const REQUESTS: Family = Family {
    name: "popsel_probe_requests_total",
    help: "Echo requests sent.",
    labels: &[],
};
const RESPONSES: Family = Family {
    name: "popsel_probe_responses_total",
    help: "Echo replies received.",
    labels: &[],
};
const ROUND_REQUESTS: Family = Family {
    name: "popsel_probe_round_requests",
    help: "Echo requests sent in the last probe round (0: nothing could be sent).",
    labels: &[],
};
const ENDPOINT_RTT: Family = Family {
    name: "popsel_endpoint_rtt_seconds",
    help: "Median round-trip time of the endpoint in the last probe round ([metrics] endpoint_series).",
    labels: ENDPOINT,
};
const ENDPOINT_LOSS: Family = Family {
    name: "popsel_endpoint_loss_ratio",
    help: "Share of echo requests to the endpoint without a reply in the last probe round ([metrics] endpoint_series).",
    labels: ENDPOINT,
};
const ENDPOINT_UP: Family = Family {
    name: "popsel_endpoint_up",
    help: "1 if the endpoint answered in the last probe round ([metrics] endpoint_series).",
    labels: ENDPOINT,
};
const REPLY_RTT: Family = Family {
    name: "popsel_probe_rtt_seconds",
    help: "Round-trip time of every echo reply ([metrics] rtt_histogram).",
    labels: &["pop"],
};

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct ProbeCollector {
    rtt: GaugeVec,
    loss: GaugeVec,
    up: IntGaugeVec,
    socket_up: IntGaugeVec,
    requests: IntCounterVec,
    responses: IntCounterVec,
    round_requests: IntGaugeVec,
    endpoint_rtt: GaugeVec,
    endpoint_loss: GaugeVec,
    endpoint_up: IntGaugeVec,
    reply_rtt: HistogramVec,
    options: SeriesOptions,
    /// The last round's PoPs: a histogram keeps a series until it is removed, so those of
    /// PoPs that left the catalogue must be.
    last_pops: Arc<Mutex<HashSet<String>>>,
}

collector!(ProbeCollector {
    rtt,
    loss,
    up,
    socket_up,
    requests,
    responses,
    round_requests,
    endpoint_rtt,
    endpoint_loss,
    endpoint_up,
    reply_rtt
});

/// What one PoP's endpoints answered in a round: the best endpoint's figures, as the ranking
/// takes them (the lowest score among those that answered).
struct PopRound<'a> {
    best: Option<&'a Probe>,
    up: bool,
}

impl<'a> PopRound<'a> {
    fn of(probes: impl Iterator<Item = &'a Probe>) -> PopRound<'a> {
        let mut round = PopRound {
            best: None,
            up: false,
        };
        let mut best_score = f64::INFINITY;
        for p in probes {
            if round.best.is_none() {
                // The first endpoint stands for a PoP none of whose endpoints answered.
                round.best = Some(p);
            }
            let Some(stats) = p.stats() else { continue };
            let score = endpoint_score(&stats, p.loss());
            if !round.up || score < best_score {
                round.best = Some(p);
                best_score = score;
            }
            round.up = true;
        }
        round
    }
}

impl ProbeCollector {
    pub const FAMILIES: [&'static str; 11] = [
        RTT.name,
        LOSS.name,
        UP.name,
        SOCKET_UP.name,
        REQUESTS.name,
        RESPONSES.name,
        ROUND_REQUESTS.name,
        ENDPOINT_RTT.name,
        ENDPOINT_LOSS.name,
        ENDPOINT_UP.name,
        REPLY_RTT.name,
    ];

    /// The families only a `[metrics]` option fills.
    pub const OPT_IN: [&'static str; 4] = [
        ENDPOINT_RTT.name,
        ENDPOINT_LOSS.name,
        ENDPOINT_UP.name,
        REPLY_RTT.name,
    ];

    pub fn new(options: SeriesOptions) -> Result<ProbeCollector> {
        Ok(ProbeCollector {
            rtt: RTT.gauges()?,
            loss: LOSS.gauges()?,
            up: UP.int_gauges()?,
            socket_up: SOCKET_UP.int_gauges()?,
            requests: REQUESTS.counters()?,
            responses: RESPONSES.counters()?,
            round_requests: ROUND_REQUESTS.int_gauges()?,
            endpoint_rtt: ENDPOINT_RTT.gauges()?,
            endpoint_loss: ENDPOINT_LOSS.gauges()?,
            endpoint_up: ENDPOINT_UP.int_gauges()?,
            reply_rtt: REPLY_RTT.histograms(exponential_buckets(0.000_05, 2.0, 16)?)?,
            options,
            last_pops: Arc::default(),
        })
    }

    /// The agent measures from this host: `up` says whether it has an ICMP socket to do it
    /// with. The request counters start at 0 here, so that "no probe sent" is a value an alert
    /// can see, not an absent series.
    pub fn socket(&self, up: bool) {
        self.socket_up
            .with_label_values(NO_LABELS)
            .set(i64::from(up));
        self.requests.with_label_values(NO_LABELS);
        self.responses.with_label_values(NO_LABELS);
        self.round_requests.with_label_values(NO_LABELS);
    }

    /// A probe round: per-PoP gauges (and per endpoint, RTT histogram when asked for), the
    /// request counters; the addresses in `carried` were not probed this round, so they set
    /// their gauges only. A survey without probes (nothing could be probed) leaves the last
    /// round's series as they are.
    pub fn observe(&self, survey: &Survey, carried: &HashSet<IpAddr>) {
        let Some(probes) = &survey.probes else {
            return;
        };
        for family in [
            &self.rtt,
            &self.loss,
            &self.endpoint_rtt,
            &self.endpoint_loss,
        ] {
            family.reset();
        }
        self.up.reset();
        self.endpoint_up.reset();
        let (mut sent, mut received) = (0u64, 0u64);
        let mut pops = HashSet::new();
        for (pop, endpoints) in &survey.pops {
            let label = pop.id().to_string();
            let pop_labels = [label.as_str(), &pop.country, &pop.provider];
            let measured = || {
                endpoints
                    .iter()
                    .filter_map(|e| Some((e, probes.get(&e.ip)?)))
            };
            for (_, p) in measured().filter(|(e, _)| !carried.contains(&e.ip)) {
                sent = sent.saturating_add(u64::from(p.sent));
                received = received.saturating_add(u64::from(p.received));
                self.observe_replies(&label, p);
            }
            if self.options.endpoints {
                for (e, p) in measured() {
                    let ip = e.ip.to_string();
                    let labels = [pop_labels[0], pop_labels[1], pop_labels[2], &e.fqdn, &ip];
                    set_gauges(
                        &self.endpoint_rtt,
                        &self.endpoint_loss,
                        &self.endpoint_up,
                        &labels,
                        p,
                        p.reachable(),
                    );
                }
            }
            let round = PopRound::of(measured().map(|(_, p)| p));
            if let Some(best) = round.best {
                set_gauges(&self.rtt, &self.loss, &self.up, &pop_labels, best, round.up);
            }
            pops.insert(label);
        }
        self.requests.with_label_values(NO_LABELS).inc_by(sent);
        self.responses.with_label_values(NO_LABELS).inc_by(received);
        self.round_requests
            .with_label_values(NO_LABELS)
            .set(i64::try_from(sent).unwrap_or(i64::MAX));
        self.forget_departed(pops);
    }

    /// Every reply of a fresh probe into the PoP's histogram, when it is asked for.
    fn observe_replies(&self, pop: &str, p: &Probe) {
        if !self.options.rtt_histogram || p.rtts.is_empty() {
            return;
        }
        let histogram = self.reply_rtt.with_label_values(&[pop]);
        for rtt in p.rtts.iter() {
            histogram.observe(rtt.as_secs_f64());
        }
    }

    fn forget_departed(&self, pops: HashSet<String>) {
        let mut last = self
            .last_pops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in last.difference(&pops) {
            let _ = self.reply_rtt.remove_label_values(&[gone.as_str()]);
        }
        *last = pops;
    }
}

/// RTT (when something answered), loss and up of one probe under `labels`.
fn set_gauges(
    rtt: &GaugeVec,
    loss: &GaugeVec,
    up: &IntGaugeVec,
    labels: &[&str],
    p: &Probe,
    answered: bool,
) {
    if let Some(stats) = p.stats() {
        rtt.with_label_values(labels)
            .set(stats.median.as_secs_f64());
    }
    loss.with_label_values(labels).set(p.loss());
    up.with_label_values(labels).set(i64::from(answered));
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
