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
use std::sync::Arc;

use geo::{Distance, Haversine, Point};
use serde::Serialize;

use crate::catalog::{Pop, Skipped};
use crate::location::{Location, Site};
use crate::probe::{Probe, ProbeError, Probes, RttStats};
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
    /// As the survey found them; what probing found at each is [`Ranking::probe`].
    pub endpoints: Vec<Endpoint>,
}

impl RankedPop {
    pub fn best_endpoint(&self) -> Option<&Endpoint> {
        self.best.and_then(|i| self.endpoints.get(i))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub site: Site,
    pub basis: Basis,
    /// What probing found, by address: the survey's, shared, not copied into each endpoint
    /// (20,000 probe results for 10,000 PoPs); `None` when nothing was probed (ICMP
    /// unavailable or not asked for).
    pub probes: Option<Arc<Probes>>,
    pub pops: Vec<RankedPop>,
    pub skipped: Vec<Skipped>,
}

impl Ranking {
    /// Whether anything was probed.
    pub fn probed(&self) -> bool {
        self.probes.is_some()
    }

    /// What probing found at `endpoint` (`None`: not probed).
    pub fn probe(&self, endpoint: &Endpoint) -> Option<&Probe> {
        self.probes.as_deref()?.get(&endpoint.ip)
    }

    pub fn unreachable(&self) -> usize {
        self.pops.iter().filter(|p| !p.reachable).count()
    }

    pub fn endpoint_count(&self) -> usize {
        self.pops.iter().map(|p| p.endpoints.len()).sum()
    }
}

/// The probe results read in the order of the endpoints. The survey probes its endpoints in
/// that order, so each result is usually the one after the last found: read there first, with no
/// hash computed and no table bucket missed in the cache (which was half the time of ranking
/// 10,000 PoPs); by address otherwise (an address listed twice, results from elsewhere).
struct ProbeCursor<'a> {
    probes: Option<&'a Probes>,
    next: usize,
}

impl<'a> ProbeCursor<'a> {
    fn new(probes: Option<&'a Probes>) -> Self {
        ProbeCursor { probes, next: 0 }
    }

    fn find(&mut self, ip: &IpAddr) -> Option<&'a Probe> {
        let probes = self.probes?;
        let (at, probe) = match probes.get_index(self.next) {
            Some((listed, probe)) if listed == ip => (self.next, probe),
            _ => probes.get_full(ip).map(|(at, _, probe)| (at, probe))?,
        };
        self.next = at + 1;
        Some(probe)
    }
}

fn measure(
    site: Site,
    pop: Pop,
    endpoints: Vec<Endpoint>,
    probes: &mut ProbeCursor<'_>,
) -> RankedPop {
    // The best endpoint (the first of equals) with what makes it best: its round-trip
    // statistics are computed once, here, not again for its score, loss and `rtt`.
    let mut best: Option<(usize, f64, RttStats, f64)> = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let Some((probe, stats)) = probes
            .find(&endpoint.ip)
            .and_then(|p| Some((p, p.stats()?)))
        else {
            continue;
        };
        let loss = probe.loss();
        let score = endpoint_score(&stats, loss);
        if best.is_none_or(|(_, b, _, _)| score.total_cmp(&b).is_lt()) {
            best = Some((i, score, stats, loss));
        }
    }
    RankedPop {
        rank: 0,
        distance_km: distance_km(site, &pop),
        reachable: best.is_some(),
        loss: best.map_or(1.0, |(_, _, _, loss)| loss),
        score: best.map(|(_, score, _, _)| score),
        rtt: best.map(|(_, _, stats, _)| stats),
        best: best
            .map(|(i, _, _, _)| i)
            .or((!endpoints.is_empty()).then_some(0)),
        pop,
        endpoints,
    }
}

/// What the order of the ranking looks at before the names, computed once per PoP, as
/// integers that order as [`compare`] does: sorting 10,000 of them compares only integers,
/// not options and floats.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SortKey {
    unreachable: bool,
    /// The score when reachable (0 otherwise: unreachable PoPs are not ordered by score).
    score: i64,
    distance: i64,
}

impl SortKey {
    fn of(p: &RankedPop) -> Self {
        SortKey {
            unreachable: !p.reachable,
            score: p.score.filter(|_| p.reachable).map_or(0, ordered),
            distance: ordered(p.distance_km),
        }
    }
}

/// `x` as an integer that orders as `f64::total_cmp` orders the floats.
fn ordered(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// Reachable first, then by score, then by distance.
fn by_measure(a: &RankedPop, b: &RankedPop) -> Ordering {
    b.reachable
        .cmp(&a.reachable)
        .then_with(|| match (a.score, b.score) {
            (Some(x), Some(y)) if a.reachable && b.reachable => x.total_cmp(&y),
            _ => Ordering::Equal,
        })
        .then_with(|| a.distance_km.total_cmp(&b.distance_km))
}

/// Country, city, provider: the last of the order, which makes it total.
fn names(p: &RankedPop) -> (&str, &str, &str) {
    (&p.pop.country, &p.pop.city, &p.pop.provider)
}

/// The order of the ranking: reachable first, then by score, then by distance; name fields
/// last so that the order is total and does not depend on the catalogue's order.
pub fn compare(a: &RankedPop, b: &RankedPop) -> Ordering {
    by_measure(a, b).then_with(|| names(a).cmp(&names(b)))
}

/// `pops` in the order of [`compare`], equals in their order (a stable sort). The keys are
/// sorted, not the PoPs: a ranked PoP is a few hundred bytes, which a sort would move about
/// n log n times; here each moves once, from its slot to its place.
fn sorted(mut slots: Vec<Option<RankedPop>>) -> Vec<RankedPop> {
    let names_at = |i: usize| slots.get(i).and_then(Option::as_ref).map(names);
    let mut keys: Vec<(SortKey, usize)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((SortKey::of(p.as_ref()?), i)))
        .collect();
    // Integers only: the names are compared after, within each run of equal keys (few and
    // short), not in every comparison of the sort. Equals stay in input order through the
    // index, as a stable sort would keep them.
    keys.sort_unstable();
    for equals in keys.chunk_by_mut(|(a, _), (b, _)| a == b) {
        if equals.len() > 1 {
            equals
                .sort_unstable_by(|(_, i), (_, j)| names_at(*i).cmp(&names_at(*j)).then(i.cmp(j)));
        }
    }
    keys.into_iter()
        .filter_map(|(_, i)| slots.get_mut(i).and_then(Option::take))
        .collect()
}

/// Ranks PoPs and their endpoints from `site`. `probes` is `None` when nothing could be probed;
/// the ranking keeps them (shared) for what each endpoint answered.
pub fn rank(
    site: Site,
    pops: Vec<(Pop, Vec<Endpoint>)>,
    probes: Option<Arc<Probes>>,
    skipped: Vec<Skipped>,
) -> Ranking {
    let mut cursor = ProbeCursor::new(probes.as_deref());
    let mut ranked: Vec<Option<RankedPop>> = pops
        .into_iter()
        .map(|(pop, endpoints)| Some(measure(site, pop, endpoints, &mut cursor)))
        .collect();
    let basis = if ranked.iter().flatten().any(|p| p.reachable) {
        Basis::Latency
    } else {
        Basis::Distance
    };
    if basis == Basis::Distance {
        for p in ranked.iter_mut().flatten() {
            p.score = Some(p.distance_km);
        }
    }
    let mut ranked = sorted(ranked);
    for (i, p) in ranked.iter_mut().enumerate() {
        p.rank = i + 1;
    }
    Ranking {
        site,
        basis,
        probes,
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
            let probes = survey.probes.as_ref().filter(|_| loc.local);
            let probes = match (probes, refused.get(&loc.name)) {
                (Some(probes), Some(ips)) => Some(Arc::new(unanswered(probes, ips))),
                (probes, _) => probes.cloned(),
            };
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
fn unanswered(probes: &Probes, refused: &[IpAddr]) -> Probes {
    let mut probes = probes.clone();
    for ip in refused {
        let sent = probes.get(ip).map_or(1, |p| p.sent.max(1));
        probes.insert(
            *ip,
            Probe {
                sent,
                received: 0,
                rtts: Arc::from([]),
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
