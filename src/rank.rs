//! Rank stage: which PoP is best from a site, and why. Pure.
//!
//! Score of an endpoint, in milliseconds (lower is better):
//!
//! ```text
//! score = median RTT + 500 ms × loss ratio + 0.2 × min(jitter, 50 ms)
//! ```
//!
//! A PoP is as good as its best endpoint. Latency comes first; the loss penalty is strong
//! enough that a PoP losing 20% of its probes (+100 ms) never beats a clean PoP up to 50 ms
//! slower, even counting the jitter term (at most 10 ms); jitter is a small term; distance only
//! breaks ties. Unreachable PoPs rank after every reachable one, nearest first. When no address
//! answers at all (or ICMP is not available) the basis is "distance": every PoP is ordered by
//! great-circle distance and its score is that distance in km.

pub mod contenders;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use geo::{Distance, Haversine, Point};
use serde::Serialize;

use crate::catalog::{Pop, Skipped};
use crate::location::{Location, Site};
use crate::probe::{Probe, ProbeError, RttStats};
use crate::resolve::Endpoint;
use crate::survey::Survey;

/// Milliseconds added per unit of loss ratio (20% loss: +100 ms).
pub const LOSS_PENALTY_MS: f64 = 500.0;
/// Weight of jitter in the score.
pub const JITTER_WEIGHT: f64 = 0.2;
/// Jitter above this counts as this much: a jittery link is already penalised by its median.
pub const JITTER_CAP_MS: f64 = 50.0;

/// Great-circle distance from the site to the PoP, in km (haversine, mean earth radius).
pub fn distance_km(site: Site, pop: &Pop) -> f64 {
    let a = Point::new(site.longitude, site.latitude);
    let b = Point::new(pop.longitude, pop.latitude);
    Haversine.distance(a, b) / 1000.0
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The score of an endpoint that answered (see the module docs).
pub fn endpoint_score(stats: &RttStats, loss: f64) -> f64 {
    ms(stats.median) + LOSS_PENALTY_MS * loss + JITTER_WEIGHT * ms(stats.jitter).min(JITTER_CAP_MS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Latency,
    Distance,
}

/// An endpoint with what probing it found (`None`: not probed).
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredEndpoint {
    pub endpoint: Endpoint,
    pub probe: Option<Probe>,
}

impl MeasuredEndpoint {
    /// The score if it answered.
    pub fn score(&self) -> Option<f64> {
        let probe = self.probe.as_ref()?;
        Some(endpoint_score(&probe.stats()?, probe.loss()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RankedPop {
    /// 1 is best.
    pub rank: usize,
    pub pop: Pop,
    pub distance_km: f64,
    pub reachable: bool,
    /// Loss of the best endpoint; 1 when nothing answered.
    pub loss: f64,
    /// Latency basis: the best endpoint's score, `None` if unreachable. Distance basis: km.
    pub score: Option<f64>,
    /// Round trips of the best endpoint.
    pub rtt: Option<RttStats>,
    /// Index in `endpoints` of the best endpoint (the first one when nothing answered).
    pub best: Option<usize>,
    pub endpoints: Vec<MeasuredEndpoint>,
}

impl RankedPop {
    pub fn best_endpoint(&self) -> Option<&MeasuredEndpoint> {
        self.best.and_then(|i| self.endpoints.get(i))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub site: Site,
    pub basis: Basis,
    /// Whether anything was probed (false: ICMP unavailable or not asked for).
    pub probed: bool,
    pub pops: Vec<RankedPop>,
    pub skipped: Vec<Skipped>,
}

impl Ranking {
    pub fn unreachable(&self) -> usize {
        self.pops.iter().filter(|p| !p.reachable).count()
    }

    pub fn endpoint_count(&self) -> usize {
        self.pops.iter().map(|p| p.endpoints.len()).sum()
    }
}

fn measure(
    site: Site,
    pop: Pop,
    endpoints: Vec<Endpoint>,
    probes: Option<&HashMap<IpAddr, Probe>>,
) -> RankedPop {
    let endpoints: Vec<MeasuredEndpoint> = endpoints
        .into_iter()
        .map(|endpoint| MeasuredEndpoint {
            probe: probes.and_then(|p| p.get(&endpoint.ip)).cloned(),
            endpoint,
        })
        .collect();
    let best = endpoints
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.score().map(|s| (i, s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i);
    let best_probe = best.and_then(|i| endpoints[i].probe.as_ref());
    RankedPop {
        rank: 0,
        distance_km: distance_km(site, &pop),
        reachable: best.is_some(),
        loss: best_probe.map_or(1.0, Probe::loss),
        score: best.and_then(|i| endpoints[i].score()),
        rtt: best_probe.and_then(Probe::stats),
        best: best.or((!endpoints.is_empty()).then_some(0)),
        pop,
        endpoints,
    }
}

/// The order of the ranking: reachable first, then by score, then by distance; name fields
/// last so that the order is total and does not depend on the catalogue's order.
pub fn compare(a: &RankedPop, b: &RankedPop) -> Ordering {
    b.reachable
        .cmp(&a.reachable)
        .then_with(|| match (a.score, b.score) {
            (Some(x), Some(y)) if a.reachable && b.reachable => x.total_cmp(&y),
            _ => Ordering::Equal,
        })
        .then_with(|| a.distance_km.total_cmp(&b.distance_km))
        .then_with(|| a.pop.country.cmp(&b.pop.country))
        .then_with(|| a.pop.city.cmp(&b.pop.city))
        .then_with(|| a.pop.provider.cmp(&b.pop.provider))
}

/// Ranks PoPs and their endpoints from `site`. `probes` is `None` when nothing could be probed.
pub fn rank(
    site: Site,
    pops: Vec<(Pop, Vec<Endpoint>)>,
    probes: Option<&HashMap<IpAddr, Probe>>,
    skipped: Vec<Skipped>,
) -> Ranking {
    let mut ranked: Vec<RankedPop> = pops
        .into_iter()
        .map(|(pop, endpoints)| measure(site, pop, endpoints, probes))
        .collect();
    let basis = if ranked.iter().any(|p| p.reachable) {
        Basis::Latency
    } else {
        Basis::Distance
    };
    if basis == Basis::Distance {
        for p in &mut ranked {
            p.score = Some(p.distance_km);
        }
    }
    ranked.sort_by(compare);
    for (i, p) in ranked.iter_mut().enumerate() {
        p.rank = i + 1;
    }
    Ranking {
        site,
        basis,
        probed: probes.is_some(),
        pops: ranked,
        skipped,
    }
}

/// Each location's ranking, in location order: the PoPs of the survey ranked from the
/// location's site, with this host's latency when the location is local, by distance otherwise.
pub fn rank_locations(
    locations: &[Location],
    survey: &Survey,
    skipped: &[Skipped],
    refused: &Refusals,
) -> Rankings {
    locations
        .iter()
        .map(|loc| {
            let probes = if loc.local {
                survey.probes.as_ref()
            } else {
                None
            };
            let adjusted = probes
                .zip(refused.get(&loc.name))
                .map(|(p, ips)| unanswered(p, ips));
            let probes = adjusted.as_ref().or(probes);
            let ranking = rank(loc.site, survey.pops.clone(), probes, skipped.to_vec());
            (loc.name.clone(), ranking)
        })
        .collect()
}

/// Addresses whose PoP lately refused a location's tunnel (charon could not bring it up there
/// while the location's other tunnel stood at its secondary PoP), by location: ranked as if
/// they had not answered, so that the selection leaves them as it leaves a silent PoP. A PoP
/// that answers ICMP but not IKE would otherwise be kept for ever.
pub type Refusals = HashMap<String, Vec<IpAddr>>;

/// `probes` with every address of `refused` answering nothing.
fn unanswered(probes: &HashMap<IpAddr, Probe>, refused: &[IpAddr]) -> HashMap<IpAddr, Probe> {
    let mut probes = probes.clone();
    for ip in refused {
        let sent = probes.get(ip).map_or(1, |p| p.sent.max(1));
        probes.insert(
            *ip,
            Probe {
                sent,
                received: 0,
                rtts: Vec::new(),
                error: Some(ProbeError::Send("its PoP refused the tunnel".into())),
            },
        );
    }
    probes
}

/// Rankings by location name, in location order.
pub type Rankings = Vec<(String, Ranking)>;

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
