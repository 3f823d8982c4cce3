//! The agent's Prometheus metrics. The names and labels are an interface (alert rules and
//! dashboards depend on them): keep them exactly. One collector per concern, each in its own
//! file owning its families and how a stage's result fills them, in the manner of
//! node_exporter's collectors; [`Metrics`] only composes them into one registry, and each stage
//! reports what it found through one method of it. `/metrics` encodes the classic text format
//! 0.0.4.
//!
//! Series of PoPs that leave the catalogue disappear: gauges are rebuilt every round and
//! histograms of departed PoPs removed. Label values are bounded (catalogue entries,
//! configured locations and tunnels, a fixed set of states and codes) and never carry a secret.
//! An agent is one of thousands feeding one store: per PoP by default, per endpoint address and
//! per reply only when `[metrics]` asks ([`SeriesOptions`]).

mod api;
mod build;
mod catalog;
mod family;
#[cfg(test)]
mod fixtures;
mod ipsec;
mod probe;
mod selection;
mod stages;
mod status;

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

use self::api::ApiCollector;
use self::build::BuildCollector;
use self::catalog::CatalogCollector;
use self::ipsec::IpsecCollector;
use self::probe::ProbeCollector;
use self::selection::SelectionCollector;
use self::stages::StageCollector;
use self::status::StatusCollector;
use crate::atmos::ApiObserver;
use crate::catalog::Catalog;
use crate::edge::charon::SaStatus;
use crate::rank::Ranking;
use crate::schedule::{Schedule, Stage};
use crate::select::{Change, Selection};
use crate::status::{ConnectorStatusRow, TunnelStatusRow};
use crate::survey::Survey;

/// `[metrics]` of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/`, `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: std::net::SocketAddr,
    /// Which series are exported; read at start (a reload keeps the ones the agent started
    /// with, as it keeps `listen`).
    pub series: SeriesOptions,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9469)),
            series: SeriesOptions::default(),
        }
    }
}

/// The series an agent exports beyond what every agent of a fleet needs. The defaults keep an
/// agent on a 45-PoP catalogue under 300 series (about 1,500 with everything on), so that a
/// fleet of 10,000 fits a horizontally scaled store (README, "Metrics").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesOptions {
    /// `rtt_histogram`: the RTT of every echo reply, a histogram per PoP (19 series a PoP).
    pub rtt_histogram: bool,
    /// `endpoint_series`: RTT, loss and up per endpoint address too (3 series an address).
    pub endpoints: bool,
    /// `ranked_pops`: the ranking's series for each location's best N PoPs and its chosen
    /// ones (3 series a PoP and location); 0: every PoP.
    pub ranked_pops: usize,
}

impl Default for SeriesOptions {
    fn default() -> Self {
        Self {
            rtt_histogram: false,
            endpoints: false,
            // The agent's contenders (`pipeline::measure::CONTENDER_RANKS`): the PoPs probed
            // every round, so their series are never more than a round old.
            ranked_pops: 5,
        }
    }
}

/// Each collector's `popsel_` families, in the order of the README's table.
const BY_COLLECTOR: [&[&str]; 8] = [
    &ProbeCollector::FAMILIES,
    &SelectionCollector::FAMILIES,
    &StatusCollector::FAMILIES,
    &IpsecCollector::FAMILIES,
    &ApiCollector::FAMILIES,
    &CatalogCollector::FAMILIES,
    &StageCollector::FAMILIES,
    &BuildCollector::FAMILIES,
];

/// Every `popsel_` family the agent exports: the one list the docs test (`tests/agent/deploy.rs`)
/// and the agent test read.
pub const FAMILIES: [&str; family::count(&BY_COLLECTOR)] = family::concat(&BY_COLLECTOR);

/// The families only a probe round (or a location measured from this host) fills: without
/// one they have no series, and the exposition leaves them out altogether. The latency score is
/// one of them: a ranking by distance has none.
pub const PROBE_FAMILIES: [&str; ProbeCollector::FAMILIES.len() + 1] =
    family::concat(&[&ProbeCollector::FAMILIES, &[SelectionCollector::SCORE]]);

/// The families only a `[metrics]` option turns on (`rtt_histogram`, `endpoint_series`).
pub const OPT_IN_FAMILIES: [&str; ProbeCollector::OPT_IN.len()] = ProbeCollector::OPT_IN;

/// The families only a hand-off to charon fills (`[edge] vici_socket`).
pub const IPSEC_FAMILIES: [&str; IpsecCollector::FAMILIES.len()] = IpsecCollector::FAMILIES;

/// The process collector's families (Linux).
pub const PROCESS_FAMILIES: [&str; BuildCollector::PROCESS_FAMILIES.len()] =
    BuildCollector::PROCESS_FAMILIES;

/// The agent's collectors in one registry; the registry holds clones of them, which share
/// their series with the ones kept here to be updated.
pub struct Metrics {
    registry: Registry,
    probe: ProbeCollector,
    selection: SelectionCollector,
    status: StatusCollector,
    ipsec: IpsecCollector,
    api: ApiCollector,
    catalog: CatalogCollector,
    stages: StageCollector,
}

impl Metrics {
    // The one allowed `expect` of the crate: every name, label set and bucket layout is a
    // constant (nothing from the network or the disk) and each collector is registered once, so
    // an error here is a bug that every test constructing `Metrics` hits first.
    #[allow(clippy::expect_used)]
    pub fn with_series(series: SeriesOptions) -> Metrics {
        Self::compose(series).expect("constant metric families are valid and registered once")
    }

    /// The default series ([`SeriesOptions::default`]).
    pub fn new() -> Metrics {
        Self::with_series(SeriesOptions::default())
    }

    fn compose(series: SeriesOptions) -> prometheus::Result<Metrics> {
        let m = Metrics {
            registry: Registry::new(),
            probe: ProbeCollector::new(series)?,
            selection: SelectionCollector::new(series.ranked_pops)?,
            status: StatusCollector::new()?,
            ipsec: IpsecCollector::new()?,
            api: ApiCollector::new()?,
            catalog: CatalogCollector::new()?,
            stages: StageCollector::new()?,
        };
        let collectors: [Box<dyn Collector>; 8] = [
            Box::new(m.probe.clone()),
            Box::new(m.selection.clone()),
            Box::new(m.status.clone()),
            Box::new(m.ipsec.clone()),
            Box::new(m.api.clone()),
            Box::new(m.catalog.clone()),
            Box::new(m.stages.clone()),
            Box::new(BuildCollector::new()?),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        Ok(m)
    }

    /// The text exposition format, version 0.0.4.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The stages' intervals, at start and after a reload.
    pub fn schedule(&self, schedule: &Schedule) {
        self.stages.schedule(schedule);
    }

    pub fn stage_ran(&self, stage: Stage, ok: bool, now: SystemTime) {
        self.stages.ran(stage, ok, now);
    }

    pub fn observe_catalog(&self, catalog: &Catalog, fetched: SystemTime) {
        self.catalog.observe(catalog, fetched);
    }

    /// The agent measures a location from this host; `up`: it has an ICMP socket to do it.
    pub fn probe_socket(&self, up: bool) {
        self.probe.socket(up);
    }

    /// A probe round; `carried`: addresses not probed this round, whose last results the
    /// survey carries (their gauges stand, their counters do not count them again).
    pub fn observe_probes(&self, survey: &Survey, carried: &HashSet<IpAddr>) {
        self.probe.observe(survey, carried);
    }

    /// Each location's ranking, its best PoPs and those `selection` chose.
    pub fn observe_rankings(&self, rankings: &[(String, Ranking)], selection: &Selection) {
        self.selection.observe_rankings(rankings, selection);
    }

    pub fn observe_selection(&self, selection: &Selection, changes: &[Change]) {
        self.selection.observe_selection(selection, changes);
    }

    /// Every configured tunnel's status.
    /// The local SAs after a hand-off to charon.
    pub fn observe_ipsec(&self, sas: &[SaStatus]) {
        self.ipsec.observe(sas);
    }

    pub fn observe_tunnels(&self, statuses: &[TunnelStatusRow]) {
        self.status.observe_tunnels(statuses);
    }

    /// Every watched connector's status.
    pub fn observe_connectors(&self, statuses: &[ConnectorStatusRow]) {
        self.status.observe_connectors(statuses);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiObserver for Metrics {
    fn observe(&self, endpoint: &str, method: &str, code: &str, elapsed: Duration) {
        self.api.observe(endpoint, method, code, elapsed);
    }

    fn held(&self, throttled: bool) {
        self.api.held(throttled);
    }

    fn throttled(&self, throttled: bool) {
        self.api.throttled(throttled);
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
