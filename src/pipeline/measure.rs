//! resolve → probe → rank: the measuring part of the pipeline, shared by `popsel rank` (one
//! site, one shot) and the stages of plan, apply and the agent.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::catalog::{Catalog, Filter, Pop};
use crate::location::{Location, Site};
use crate::probe::ProbeSettings;
use crate::probe::adaptive::Adaptive;
use crate::probe::icmp::Prober;
use crate::rank::{Basis, Ranking, rank};
use crate::resolve::dns::{DnsResolver, DnsSettings};
use crate::resolve::{self};
use crate::survey::Survey;

use super::notice::{Notice, Report};

/// The probe engine for `locations`: none when asked not to probe or when no location is
/// measured from this host, and none (said in a notice) when this host has no ICMP socket.
/// Its sockets are bound to `settings.interface` for the life of the process.
pub fn prober(
    locations: &[Location],
    no_probe: bool,
    settings: &ProbeSettings,
    report: &dyn Report,
) -> Option<Prober> {
    if no_probe || !locations.iter().any(|l| l.local) {
        return None;
    }
    icmp_prober(settings, report)
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
    adaptive: Option<&Adaptive>,
    report: &dyn Report,
) -> Survey {
    let answers = match dns {
        Some(dns) => dns.lookup_all(resolve::names(&pops)).await,
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
        let progress = |done, total| report.progress(done, total);
        survey.probes = Some(match adaptive {
            None => prober.probe(&survey.addresses(), settings, &progress).await,
            Some(adaptive) => {
                let pops: Vec<Vec<IpAddr>> = survey
                    .pops
                    .iter()
                    .map(|(_, endpoints)| endpoints.iter().map(|e| e.ip).collect())
                    .collect();
                prober
                    .probe_sequential(&pops, settings, adaptive, &progress)
                    .await
            }
        });
    }
    survey
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
    let adaptive = request.adaptive.as_ref();
    let surveyed = survey(
        pops,
        dns.as_ref(),
        prober.as_ref(),
        &settings,
        adaptive,
        report,
    )
    .await;
    let ranking = rank(
        request.site,
        surveyed.pops,
        surveyed.probes.as_ref(),
        catalog.skipped,
    );
    if ranking.basis == Basis::Distance && prober.is_some() {
        report.notice(Notice::NoReply);
    }
    Ok(ranking)
}
