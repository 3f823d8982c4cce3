//! resolve → probe → rank: the measuring part of the pipeline, shared by `popsel rank` (one
//! site, one shot) and the stages of plan, apply and the agent.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use crate::catalog::{Catalog, Filter, Pop};
use crate::location::{Location, Site};
use crate::probe::adaptive::{Adaptive, Tally};
use crate::probe::icmp::Prober;
use crate::probe::{ProbeSettings, Probes};
use crate::rank::{Basis, Ranking, Rankings, contenders, rank};
use crate::resolve::dns::{DnsResolver, DnsSettings};
use crate::resolve::{self};
use crate::select::Selection;
use crate::survey::Survey;

use super::notice::{Notice, Report};

/// Whether the agent opens ICMP sockets ([`super::ProberSlot`]): a location is measured from
/// this host and probing was not turned off.
pub fn probes_from_here(locations: &[Location], no_probe: bool) -> bool {
    !no_probe && locations.iter().any(|l| l.local)
}

fn icmp_prober(settings: &ProbeSettings, report: &dyn Report) -> Option<Prober> {
    Prober::new(settings)
        .map_err(|e| report.notice(Notice::NoIcmp(e)))
        .ok()
}

/// The DNS resolver of `settings`, or `None` (said in a notice) when it cannot be set up.
pub(super) fn resolver(settings: DnsSettings, report: &dyn Report) -> Option<DnsResolver> {
    DnsResolver::new(settings)
        .map_err(|e| report.notice(Notice::NoDns(e)))
        .ok()
}

/// Every entry the catalogue left out, said once.
pub(super) fn announce_skipped(catalog: &Catalog, report: &dyn Report) {
    for s in &catalog.skipped {
        report.notice(Notice::Skipped(s.clone()));
    }
}

/// resolve → probe over `pops`: every FQDN looked up (when `dns` is given), every endpoint
/// address probed (when `prober` is given).
pub(super) async fn survey(
    pops: Vec<Pop>,
    dns: Option<&DnsResolver>,
    prober: Option<&Prober>,
    settings: &ProbeSettings,
    probing: Probing<'_>,
    report: &dyn Report,
) -> Survey {
    let progress = report.progress().cloned().unwrap_or_default();
    let answers = match dns {
        Some(dns) => dns.lookup_all(resolve::names(&pops), &progress).await,
        None => HashMap::new(),
    };
    let pops = pops
        .into_iter()
        .map(|pop| {
            let endpoints = resolve::endpoints(&pop, &answers);
            (pop, endpoints)
        })
        .collect();
    let mut survey = Survey {
        pops,
        answers,
        probes: None,
    };
    if let Some(prober) = prober {
        let probes = match probing {
            Probing::Fixed => prober.probe(&survey.addresses(), settings, &progress).await,
            Probing::Only(contenders) => {
                let mut targets = survey.addresses();
                targets.retain(|ip| contenders.contains(ip));
                prober.probe(&targets, settings, &progress).await
            }
            Probing::Sequential(adaptive) => {
                let pops: Vec<Vec<IpAddr>> = survey
                    .pops
                    .iter()
                    .map(|(_, endpoints)| endpoints.iter().map(|e| e.ip).collect())
                    .collect();
                let wanted = |pops: &[Vec<usize>], tallies: &[Tally]| {
                    contenders::contenders(pops, tallies, adaptive)
                };
                prober
                    .probe_sequential(&pops, settings, adaptive, &wanted, &progress)
                    .await
            }
        };
        survey.probes = Some(Arc::new(probes));
    }
    progress.done();
    survey
}

/// How a survey spends its echo requests.
#[derive(Debug, Clone, Copy)]
pub enum Probing<'a> {
    /// `count` to every address.
    Fixed,
    /// `count` to these addresses only (the agent's rounds between full ones).
    Only(&'a HashSet<IpAddr>),
    /// Sequentially: one to every address, more to the contenders (`popsel rank`).
    Sequential(&'a Adaptive),
}

/// Every this many probe rounds the agent probes every address; in the others, only its
/// contenders ([`probed_every_round`]). A dead primary is noticed as fast as before (it is always a
/// contender); the other PoPs' metrics are at most this many rounds old (2 minutes at the
/// default 30 s).
pub const FULL_ROUND_EVERY: u64 = 4;

/// How many of each location's best PoPs are probed in every round.
pub const CONTENDER_RANKS: usize = 5;

/// The addresses the agent probes in every round: those of each location's best
/// [`CONTENDER_RANKS`] PoPs by measured latency (a challenger must beat the current choice
/// round after round, so it is among them), and every chosen endpoint.
pub fn probed_every_round(rankings: &Rankings, selection: &Selection) -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    for (_, ranking) in rankings {
        if ranking.basis != Basis::Latency {
            continue;
        }
        for pop in ranking.pops.iter().take(CONTENDER_RANKS) {
            out.extend(pop.endpoints.iter().map(|e| e.ip));
        }
    }
    for location in selection.locations.values() {
        for role in [&location.primary, &location.secondary] {
            out.extend(role.choice.as_ref().map(|c| c.ip));
        }
    }
    out
}

/// Gives `surveyed` the last known probe of each of its addresses this round did not probe,
/// from `previous`; returns those addresses. The probes stay in the order of the endpoints,
/// in which the rank core reads them.
pub fn carry_over(surveyed: &mut Survey, previous: Option<&Survey>) -> HashSet<IpAddr> {
    let mut carried = HashSet::new();
    let (Some(probes), Some(before)) = (
        surveyed.probes.as_mut(),
        previous.and_then(|p| p.probes.as_ref()),
    ) else {
        return carried;
    };
    let mut this_round = Arc::unwrap_or_clone(std::mem::take(probes));
    let mut merged = Probes::with_capacity_and_hasher(this_round.len(), Default::default());
    for e in surveyed.pops.iter().flat_map(|(_, endpoints)| endpoints) {
        if merged.contains_key(&e.ip) {
            continue;
        }
        if let Some(probe) = this_round.swap_remove(&e.ip) {
            merged.insert(e.ip, probe);
        } else if let Some(probe) = before.get(&e.ip) {
            merged.insert(e.ip, probe.clone());
            carried.insert(e.ip);
        }
    }
    // Addresses probed that no endpoint lists: kept, as before.
    merged.extend(this_round);
    *probes = Arc::new(merged);
    carried
}

/// What `popsel rank` asks for.
pub struct RankRequest {
    pub site: Site,
    pub filter: Filter,
    /// `None`: no DNS, the catalogue's addresses only.
    pub dns: Option<DnsSettings>,
    /// `None`: no probing, rank by distance.
    pub probe: Option<ProbeSettings>,
    /// Sequential probing (`--probes adaptive`); `None`: `probe.count` requests to every
    /// address.
    pub adaptive: Option<Adaptive>,
}

/// No PoP is left to rank once the filters are applied.
#[derive(Debug, thiserror::Error)]
#[error("nothing to rank: the catalogue has {usable} usable PoPs and the filters leave none")]
pub struct NothingToRank {
    pub usable: usize,
}

/// `popsel rank`: the catalogue's PoPs the filter allows, resolved, probed and ranked from one
/// site.
pub async fn rank_once(
    catalog: Catalog,
    request: &RankRequest,
    report: &dyn Report,
) -> Result<Ranking, NothingToRank> {
    announce_skipped(&catalog, report);
    let pops = request.filter.apply(&catalog.pops);
    if pops.is_empty() {
        return Err(NothingToRank {
            usable: catalog.pops.len(),
        });
    }
    let dns = request
        .dns
        .clone()
        .and_then(|settings| resolver(settings, report));
    let prober = request.probe.as_ref().and_then(|s| icmp_prober(s, report));
    let settings = request.probe.clone().unwrap_or_default();
    let probing = request
        .adaptive
        .as_ref()
        .map_or(Probing::Fixed, Probing::Sequential);
    let surveyed = survey(
        pops,
        dns.as_ref(),
        prober.as_ref(),
        &settings,
        probing,
        report,
    )
    .await;
    let ranking = rank(
        request.site,
        surveyed.pops,
        surveyed.probes,
        catalog.skipped,
    );
    if ranking.basis == Basis::Distance && prober.is_some() {
        report.notice(Notice::NoReply);
    }
    Ok(ranking)
}

#[cfg(test)]
#[path = "measure_tests.rs"]
mod tests;
