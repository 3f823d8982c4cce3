//! Select stage: a primary and a secondary PoP per location, with anti-flap. Pure: it takes
//! the location's ranking, the previous selection and `now`, and returns the new selection and
//! the changes.
//!
//! - Primary: the best-ranked PoP; among PoPs scoring within `provider_margin_ms` of it, the
//!   provider earliest in `providers` wins.
//! - Secondary: the best-ranked PoP in another city than the primary (never both in one city),
//!   preferring a provider other than the primary's within the same margin.
//! - Anti-flap: a current choice is kept until a challenger beats it by at least
//!   `switch_min_improvement_ms` AND `switch_min_improvement_ratio` in `switch_after_cycles`
//!   consecutive cycles (the same challenger each time). A current choice that becomes
//!   unreachable, leaves the catalogue or is no longer allowed is replaced at once. One that
//!   merely lost some probes is still answering and is kept unless the loss persists long
//!   enough for a challenger to win its cycles. When a local location sees no reply at all
//!   (this host lost its uplink, or ICMP broke) nothing is switched: every PoP looks dead alike.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::catalog::{Filter, PopId};
use crate::location::{Location, Role};
use crate::rank::{Basis, RankedPop, Ranking};
use crate::timestamp::{rfc3339, unix_seconds};

/// When a selection may change, and among which PoPs.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionSettings {
    /// A challenger must be at least this much faster (ms)…
    pub switch_min_improvement_ms: f64,
    /// …and at least this share faster…
    pub switch_min_improvement_ratio: f64,
    /// …for this many consecutive cycles.
    pub switch_after_cycles: u32,
    /// Allowed countries, excluded cities or FQDNs.
    pub filter: Filter,
    /// Providers in order of preference: among PoPs scoring within `provider_margin_ms` of the
    /// best, the preferred provider wins. The secondary prefers a provider other than the
    /// primary's within the same margin.
    pub providers: Vec<String>,
    pub provider_margin_ms: f64,
}

impl Default for SelectionSettings {
    fn default() -> Self {
        Self {
            switch_min_improvement_ms: 10.0,
            switch_min_improvement_ratio: 0.2,
            switch_after_cycles: 3,
            filter: Filter::default(),
            providers: Vec::new(),
            provider_margin_ms: 5.0,
        }
    }
}

/// A chosen PoP and the endpoint the router should use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub pop: PopId,
    pub fqdn: String,
    pub ip: IpAddr,
    /// The PoP's score when last evaluated (ms; km on a distance basis).
    pub score: Option<f64>,
    /// Median RTT of the endpoint when last evaluated.
    pub rtt_ms: Option<f64>,
    /// When this PoP was chosen (RFC 3339) and the same in seconds since the epoch.
    pub since: String,
    pub since_unix: u64,
}

/// Why the current choice stands: a challenger and how many cycles in a row it has won.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub challenger: Option<PopId>,
    pub wins: u32,
    pub improvement_ms: Option<f64>,
    pub note: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleState {
    pub choice: Option<Choice>,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationSelection {
    pub primary: RoleState,
    pub secondary: RoleState,
}

impl LocationSelection {
    pub fn role(&self, role: Role) -> &RoleState {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }

    pub fn role_mut(&mut self, role: Role) -> &mut RoleState {
        match role {
            Role::Primary => &mut self.primary,
            Role::Secondary => &mut self.secondary,
        }
    }
}

/// `selection.json`: every location's selection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub version: u32,
    pub locations: BTreeMap<String, LocationSelection>,
}

/// A choice that changed, for logs, metrics and `on_change`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub location: String,
    pub role: Role,
    pub old: Option<Choice>,
    pub new: Option<Choice>,
    pub reason: String,
}

fn choice(p: &RankedPop, now: SystemTime) -> Option<Choice> {
    let e = p.best_endpoint()?;
    Some(Choice {
        pop: p.pop.id(),
        fqdn: e.endpoint.fqdn.clone(),
        ip: e.endpoint.ip,
        score: p.score,
        rtt_ms: p.rtt.map(|s| s.median.as_secs_f64() * 1000.0),
        since: rfc3339(now),
        since_unix: unix_seconds(now),
    })
}

/// PoPs this close count as the same place when ranking by distance.
const SAME_PLACE_KM: f64 = 1.0;

/// The best PoP among `candidates` (in rank order), with the provider preferences applied
/// among those within the margin of the best.
fn preferred<'a>(
    candidates: &[&'a RankedPop],
    settings: &SelectionSettings,
    avoid_provider: Option<&str>,
    basis: Basis,
) -> Option<&'a RankedPop> {
    let best = *candidates.first()?;
    // Which PoPs are as good as the best: within the margin on latency; at the same place
    // (within a kilometre: the same city's other providers) by distance.
    let within: Vec<&RankedPop> = match basis {
        Basis::Latency if !best.reachable => return Some(best),
        Basis::Latency => {
            let best_score = best.score?;
            candidates
                .iter()
                .copied()
                .filter(|p| {
                    p.reachable
                        && p.score
                            .is_some_and(|s| s <= best_score + settings.provider_margin_ms)
                })
                .collect()
        }
        Basis::Distance => candidates
            .iter()
            .copied()
            .filter(|p| p.distance_km <= best.distance_km + SAME_PLACE_KM)
            .collect(),
    };
    let preference = |p: &RankedPop| {
        let avoided = avoid_provider.is_some_and(|a| a.eq_ignore_ascii_case(&p.pop.provider));
        let order = settings
            .providers
            .iter()
            .position(|x| x.eq_ignore_ascii_case(&p.pop.provider))
            .unwrap_or(usize::MAX);
        (avoided, order)
    };
    // min_by_key keeps the first of equals, so rank order decides among equals.
    within
        .into_iter()
        .min_by_key(|p| preference(p))
        .or(Some(best))
}

/// Keep, refresh or replace one role's choice.
fn decide(
    prev: &RoleState,
    ideal: Option<&RankedPop>,
    ranking: &Ranking,
    settings: &SelectionSettings,
    local: bool,
    forbidden_city: Option<&PopId>,
    now: SystemTime,
) -> (RoleState, Option<String>) {
    let take = |reason: &str| {
        let state = RoleState {
            choice: ideal.and_then(|p| choice(p, now)),
            evidence: Evidence::default(),
        };
        (state, Some(reason.to_owned()))
    };
    let Some(current) = &prev.choice else {
        return take("first choice");
    };
    let Some(now_ranked) = ranking.pops.iter().find(|p| p.pop.id() == current.pop) else {
        return take("the current PoP left the catalogue or is no longer allowed");
    };
    if forbidden_city.is_some_and(|c| c.same_city(&current.pop)) {
        return take("the current PoP is in the primary's city");
    }
    let blackout = local && ranking.probed && ranking.basis == Basis::Distance;
    if ranking.basis == Basis::Latency && !now_ranked.reachable {
        return take("the current PoP stopped answering");
    }
    // Still valid: keep it, with fresh figures, and the same endpoint while it answers.
    let mut kept = current.clone();
    kept.score = now_ranked.score;
    kept.rtt_ms = now_ranked.rtt.map(|s| s.median.as_secs_f64() * 1000.0);
    let same_endpoint = now_ranked
        .endpoints
        .iter()
        .find(|e| e.endpoint.ip == current.ip && e.endpoint.fqdn == current.fqdn);
    let endpoint_ok = same_endpoint
        .is_some_and(|e| e.probe.as_ref().is_some_and(|p| p.reachable()) || !now_ranked.reachable);
    if !endpoint_ok {
        if let Some(best) = now_ranked.best_endpoint() {
            kept.fqdn = best.endpoint.fqdn.clone();
            kept.ip = best.endpoint.ip;
        }
    }
    let keep = |evidence: Evidence| RoleState {
        choice: Some(kept.clone()),
        evidence,
    };
    if blackout {
        let note = "no PoP answers from this host; holding the current choice".to_owned();
        return (
            keep(Evidence {
                note,
                ..Evidence::default()
            }),
            None,
        );
    }
    let Some(challenger) = ideal.filter(|p| p.pop.id() != current.pop) else {
        return (keep(Evidence::default()), None);
    };
    let (Some(cur), Some(new)) = (now_ranked.score, challenger.score) else {
        return (keep(Evidence::default()), None);
    };
    let improvement = cur - new;
    let enough_ratio = improvement >= settings.switch_min_improvement_ratio * cur;
    // The ms threshold only means something when scores are ms.
    let enough_ms =
        ranking.basis == Basis::Distance || improvement >= settings.switch_min_improvement_ms;
    if !(enough_ratio && enough_ms && improvement > 0.0) {
        return (keep(Evidence::default()), None);
    }
    let key = challenger.pop.id();
    let wins = if prev.evidence.challenger.as_ref() == Some(&key) {
        prev.evidence.wins + 1
    } else {
        1
    };
    if wins >= settings.switch_after_cycles {
        let reason = format!(
            "{key} beat {} by {improvement:.1} ({:.0}%) for {wins} cycles",
            current.pop,
            improvement / cur * 100.0
        );
        return take(&reason);
    }
    let evidence = Evidence {
        challenger: Some(key),
        wins,
        improvement_ms: Some(improvement),
        note: format!(
            "challenger has won {wins} of {} cycles",
            settings.switch_after_cycles
        ),
    };
    (keep(evidence), None)
}

/// The new selection of one location from its ranking (already limited to allowed PoPs).
pub fn select_location(
    name: &str,
    prev: &LocationSelection,
    ranking: &Ranking,
    settings: &SelectionSettings,
    local: bool,
    now: SystemTime,
) -> (LocationSelection, Vec<Change>) {
    let all: Vec<&RankedPop> = ranking.pops.iter().collect();
    let ideal_primary = preferred(&all, settings, None, ranking.basis);
    let (primary, why_primary) = decide(
        &prev.primary,
        ideal_primary,
        ranking,
        settings,
        local,
        None,
        now,
    );
    let primary_key = primary.choice.as_ref().map(|c| c.pop.clone());
    let other_city: Vec<&RankedPop> = ranking
        .pops
        .iter()
        .filter(|p| {
            primary_key
                .as_ref()
                .is_none_or(|k| !k.same_city(&p.pop.id()))
        })
        .collect();
    let ideal_secondary = preferred(
        &other_city,
        settings,
        primary_key.as_ref().map(|k| k.provider.as_str()),
        ranking.basis,
    );
    let (secondary, why_secondary) = decide(
        &prev.secondary,
        ideal_secondary,
        ranking,
        settings,
        local,
        primary_key.as_ref(),
        now,
    );
    let mut changes = Vec::new();
    for (role, old, new, why) in [
        (Role::Primary, &prev.primary, &primary, why_primary),
        (Role::Secondary, &prev.secondary, &secondary, why_secondary),
    ] {
        let old_key = old.choice.as_ref().map(|c| &c.pop);
        let new_key = new.choice.as_ref().map(|c| &c.pop);
        if old_key != new_key {
            changes.push(Change {
                location: name.to_owned(),
                role,
                old: old.choice.clone(),
                new: new.choice.clone(),
                reason: why.unwrap_or_default(),
            });
        }
    }
    (LocationSelection { primary, secondary }, changes)
}

/// Every location's new selection, and what changed. Locations gone from the config are
/// dropped from the selection. `rankings` are the locations' own, in location order.
pub fn select_all(
    locations: &[Location],
    settings: &SelectionSettings,
    rankings: &[(String, Ranking)],
    prev: &Selection,
    now: SystemTime,
) -> (Selection, Vec<Change>) {
    let mut next = Selection {
        version: 1,
        ..Selection::default()
    };
    let mut changes = Vec::new();
    for (loc, (name, ranking)) in locations.iter().zip(rankings) {
        let before = prev.locations.get(name).cloned().unwrap_or_default();
        let (after, mut c) = select_location(name, &before, ranking, settings, loc.local, now);
        next.locations.insert(name.clone(), after);
        changes.append(&mut c);
    }
    (next, changes)
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
