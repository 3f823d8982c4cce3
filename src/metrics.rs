//! The agent's Prometheus metrics. The names and labels are an interface (alert rules and
//! dashboards depend on them): keep them exactly. One registry; each stage reports what it
//! found through one method here; `/metrics` encodes the classic text format 0.0.4.
//!
//! Series of PoPs that leave the catalogue disappear: gauges are rebuilt every round and
//! counters of departed endpoints removed. Label values are bounded (catalogue entries,
//! configured locations and tunnels, a fixed set of states and codes) and never carry a secret.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder, exponential_buckets,
};

use crate::atmos::{ApiObserver, ConnectorState, TunnelState};
use crate::catalog::Catalog;
use crate::location::Role;
use crate::rank::Ranking;
use crate::schedule::Stage;
use crate::select::{Change, Selection};
use crate::status::{ConnectorStatusRow, TunnelStatusRow};
use crate::survey::Survey;

/// `[metrics]` of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9469)),
        }
    }
}

/// Every `popsel_` family the agent exports: the one list the docs test (`tests/deploy.rs`)
/// and the agent test read.
pub const FAMILIES: [&str; 24] = [
    "popsel_pop_rtt_seconds",
    "popsel_pop_loss_ratio",
    "popsel_pop_up",
    "popsel_probe_requests_total",
    "popsel_probe_responses_total",
    "popsel_probe_rtt_seconds",
    "popsel_pop_distance_meters",
    "popsel_pop_rank",
    "popsel_pop_score",
    "popsel_selected_pop_info",
    "popsel_selection_changes_total",
    "popsel_tunnel_status",
    "popsel_tunnel_up",
    "popsel_connector_status",
    "popsel_api_up",
    "popsel_api_requests_total",
    "popsel_api_request_duration_seconds",
    "popsel_catalog_pops",
    "popsel_catalog_skipped_entries",
    "popsel_catalog_last_update_timestamp_seconds",
    "popsel_stage_runs_total",
    "popsel_stage_failures_total",
    "popsel_stage_last_success_timestamp_seconds",
    "popsel_build_info",
];

/// The families only a probe round fills: without one they have no series, and the
/// exposition leaves them out altogether.
pub const PROBE_FAMILIES: [&str; 6] = [
    "popsel_pop_rtt_seconds",
    "popsel_pop_loss_ratio",
    "popsel_pop_up",
    "popsel_probe_requests_total",
    "popsel_probe_responses_total",
    "popsel_probe_rtt_seconds",
];

/// The process collector's families (Linux).
pub const PROCESS_FAMILIES: [&str; 7] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric");
    r.register(Box::new(h.clone())).expect("registered once");
    h
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("registered once");
    g
}

pub struct Metrics {
    registry: Registry,
    pop_rtt: GaugeVec,
    pop_loss: GaugeVec,
    pop_up: IntGaugeVec,
    probe_requests: IntCounterVec,
    probe_responses: IntCounterVec,
    probe_rtt: HistogramVec,
    pop_distance: GaugeVec,
    pop_rank: IntGaugeVec,
    pop_score: GaugeVec,
    selected: IntGaugeVec,
    selection_changes: IntCounterVec,
    tunnel_status: IntGaugeVec,
    tunnel_up: IntGaugeVec,
    connector_status: IntGaugeVec,
    api_up: IntGauge,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    catalog_pops: IntGauge,
    catalog_skipped: IntGauge,
    catalog_last_update: Gauge,
    stage_runs: IntCounterVec,
    stage_failures: IntCounterVec,
    stage_last_success: GaugeVec,
    /// Endpoint label sets seen in the last probe round, and PoP labels, to drop departed ones.
    endpoints_seen: Mutex<HashSet<Vec<String>>>,
    pops_seen: Mutex<HashSet<String>>,
}

const ENDPOINT: &[&str] = &["pop", "country", "provider", "fqdn", "ip"];

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            pop_rtt: gauge_vec(
                &r,
                "popsel_pop_rtt_seconds",
                "Median round-trip time of the endpoint in the last probe round (absent when nothing answered).",
                ENDPOINT,
            ),
            pop_loss: gauge_vec(
                &r,
                "popsel_pop_loss_ratio",
                "Share of echo requests without a reply in the last probe round.",
                ENDPOINT,
            ),
            pop_up: int_gauge_vec(
                &r,
                "popsel_pop_up",
                "1 if the endpoint answered in the last probe round.",
                ENDPOINT,
            ),
            probe_requests: counter_vec(
                &r,
                "popsel_probe_requests_total",
                "Echo requests sent to the endpoint.",
                ENDPOINT,
            ),
            probe_responses: counter_vec(
                &r,
                "popsel_probe_responses_total",
                "Echo replies received from the endpoint.",
                ENDPOINT,
            ),
            probe_rtt: histogram_vec(
                &r,
                "popsel_probe_rtt_seconds",
                "Round-trip time of every echo reply.",
                &["pop"],
                exponential_buckets(0.000_05, 2.0, 16).expect("valid buckets"),
            ),
            pop_distance: gauge_vec(
                &r,
                "popsel_pop_distance_meters",
                "Great-circle distance from the location to the PoP.",
                &["location", "pop"],
            ),
            pop_rank: int_gauge_vec(
                &r,
                "popsel_pop_rank",
                "Rank of the PoP for the location (1 is best).",
                &["location", "pop"],
            ),
            pop_score: gauge_vec(
                &r,
                "popsel_pop_score",
                "Score of the PoP for the location (ms on a latency basis, km on a distance basis; absent if unreachable).",
                &["location", "pop"],
            ),
            selected: int_gauge_vec(
                &r,
                "popsel_selected_pop_info",
                "The PoP chosen for each location and role (value 1).",
                &["location", "role", "pop", "fqdn", "ip"],
            ),
            selection_changes: counter_vec(
                &r,
                "popsel_selection_changes_total",
                "Times the chosen PoP of a location and role changed.",
                &["location", "role"],
            ),
            tunnel_status: int_gauge_vec(
                &r,
                "popsel_tunnel_status",
                "Tunnel status as reported by Atmos: 1 for the current state, 0 for the others.",
                &["location", "tunnel", "state"],
            ),
            tunnel_up: int_gauge_vec(
                &r,
                "popsel_tunnel_up",
                "1 if Atmos reports the tunnel Connected.",
                &["location", "tunnel"],
            ),
            connector_status: int_gauge_vec(
                &r,
                "popsel_connector_status",
                "Connector status as reported by Atmos: 1 for the current state, 0 for the others.",
                &["connector", "state"],
            ),
            api_up: int_gauge(
                &r,
                "popsel_api_up",
                "1 if the last API call was answered (not 401/403/429/5xx, not a transport failure).",
            ),
            api_requests: counter_vec(
                &r,
                "popsel_api_requests_total",
                "API requests by endpoint, method and HTTP code (or timeout, connection_refused, transport).",
                &["endpoint", "method", "code"],
            ),
            api_duration: histogram_vec(
                &r,
                "popsel_api_request_duration_seconds",
                "API request duration.",
                &["endpoint"],
                exponential_buckets(0.005, 2.0, 12).expect("valid buckets"),
            ),
            catalog_pops: int_gauge(
                &r,
                "popsel_catalog_pops",
                "Usable PoPs in the catalogue in use.",
            ),
            catalog_skipped: int_gauge(
                &r,
                "popsel_catalog_skipped_entries",
                "Catalogue entries skipped as unusable.",
            ),
            catalog_last_update: gauge(
                &r,
                "popsel_catalog_last_update_timestamp_seconds",
                "When the catalogue in use was fetched from the API (a cached one keeps its time).",
            ),
            stage_runs: counter_vec(
                &r,
                "popsel_stage_runs_total",
                "Runs of each agent stage.",
                &["stage"],
            ),
            stage_failures: counter_vec(
                &r,
                "popsel_stage_failures_total",
                "Failed runs of each agent stage.",
                &["stage"],
            ),
            stage_last_success: gauge_vec(
                &r,
                "popsel_stage_last_success_timestamp_seconds",
                "When each agent stage last succeeded.",
                &["stage"],
            ),
            endpoints_seen: Mutex::new(HashSet::new()),
            pops_seen: Mutex::new(HashSet::new()),
            registry: r,
        };
        let build = int_gauge_vec(
            &m.registry,
            "popsel_build_info",
            "Version and source revision of this popsel (value 1).",
            &["version", "revision"],
        );
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("POPSEL_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = m.registry.register(Box::new(pc));
        }
        for stage in Stage::ALL {
            m.stage_runs.with_label_values(&[stage.as_str()]);
            m.stage_failures.with_label_values(&[stage.as_str()]);
        }
        m
    }

    /// The text exposition format, version 0.0.4.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub fn stage_ran(&self, stage: Stage, ok: bool, now: SystemTime) {
        let label = [stage.as_str()];
        self.stage_runs.with_label_values(&label).inc();
        if ok {
            self.stage_last_success
                .with_label_values(&label)
                .set(unix_seconds(now));
        } else {
            self.stage_failures.with_label_values(&label).inc();
        }
    }

    pub fn observe_catalog(&self, catalog: &Catalog, fetched: SystemTime) {
        self.catalog_pops.set(catalog.pops.len() as i64);
        self.catalog_skipped.set(catalog.skipped.len() as i64);
        self.catalog_last_update.set(unix_seconds(fetched));
    }

    /// A probe round: per-endpoint gauges and counters, the RTT histogram per PoP.
    pub fn observe_probes(&self, survey: &Survey) {
        let Some(probes) = &survey.probes else {
            return;
        };
        self.pop_rtt.reset();
        self.pop_loss.reset();
        self.pop_up.reset();
        let mut endpoints = HashSet::new();
        let mut pops = HashSet::new();
        for (pop, eps) in &survey.pops {
            let label = pop.id().to_string();
            for e in eps {
                let Some(p) = probes.get(&e.ip) else {
                    continue;
                };
                let ip = e.ip.to_string();
                let labels = [label.as_str(), &pop.country, &pop.provider, &e.fqdn, &ip];
                if let Some(stats) = p.stats() {
                    self.pop_rtt
                        .with_label_values(&labels)
                        .set(stats.median.as_secs_f64());
                }
                self.pop_loss.with_label_values(&labels).set(p.loss());
                self.pop_up
                    .with_label_values(&labels)
                    .set(i64::from(p.reachable()));
                self.probe_requests
                    .with_label_values(&labels)
                    .inc_by(u64::from(p.sent));
                self.probe_responses
                    .with_label_values(&labels)
                    .inc_by(u64::from(p.received));
                let histogram = self.probe_rtt.with_label_values(&[label.as_str()]);
                for rtt in &p.rtts {
                    histogram.observe(rtt.as_secs_f64());
                }
                endpoints.insert(labels.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            }
            pops.insert(label);
        }
        let mut seen = self
            .endpoints_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for gone in seen.difference(&endpoints) {
            let labels: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.probe_requests.remove_label_values(&labels);
            let _ = self.probe_responses.remove_label_values(&labels);
        }
        *seen = endpoints;
        let mut seen = self.pops_seen.lock().unwrap_or_else(|e| e.into_inner());
        for gone in seen.difference(&pops) {
            let _ = self.probe_rtt.remove_label_values(&[gone.as_str()]);
        }
        *seen = pops;
    }

    pub fn observe_rankings(&self, rankings: &[(String, Ranking)]) {
        self.pop_distance.reset();
        self.pop_rank.reset();
        self.pop_score.reset();
        for (location, ranking) in rankings {
            for p in &ranking.pops {
                let labels = [location.as_str(), &p.pop.id().to_string()];
                self.pop_distance
                    .with_label_values(&labels)
                    .set(p.distance_km * 1000.0);
                self.pop_rank.with_label_values(&labels).set(p.rank as i64);
                if let Some(score) = p.score {
                    self.pop_score.with_label_values(&labels).set(score);
                }
            }
        }
    }

    pub fn observe_selection(&self, selection: &Selection, changes: &[Change]) {
        self.selected.reset();
        for (location, s) in &selection.locations {
            for role in [Role::Primary, Role::Secondary] {
                if let Some(c) = &s.role(role).choice {
                    let pop = c.pop.to_string();
                    let ip = c.ip.to_string();
                    self.selected
                        .with_label_values(&[location.as_str(), role.as_str(), &pop, &c.fqdn, &ip])
                        .set(1);
                }
            }
        }
        for c in changes {
            self.selection_changes
                .with_label_values(&[c.location.as_str(), c.role.as_str()])
                .inc();
        }
    }

    /// Every configured tunnel's status.
    pub fn observe_tunnels(&self, statuses: &[TunnelStatusRow]) {
        self.tunnel_status.reset();
        self.tunnel_up.reset();
        for row in statuses {
            for s in TunnelState::ALL {
                self.tunnel_status
                    .with_label_values(&[row.location.as_str(), &row.tunnel, s.as_str()])
                    .set(i64::from(s == row.state));
            }
            self.tunnel_up
                .with_label_values(&[row.location.as_str(), &row.tunnel])
                .set(i64::from(row.state == TunnelState::Connected));
        }
    }

    /// Every watched connector's status.
    pub fn observe_connectors(&self, statuses: &[ConnectorStatusRow]) {
        self.connector_status.reset();
        for row in statuses {
            for s in ConnectorState::ALL {
                self.connector_status
                    .with_label_values(&[row.connector.as_str(), s.as_str()])
                    .set(i64::from(s == row.state));
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiObserver for Metrics {
    fn observe(&self, endpoint: &str, method: &str, code: &str, elapsed: Duration) {
        self.api_requests
            .with_label_values(&[endpoint, method, code])
            .inc();
        self.api_duration
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
        let answered = code
            .parse::<u16>()
            .is_ok_and(|c| c < 500 && !matches!(c, 401 | 403 | 429));
        self.api_up.set(i64::from(answered));
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
