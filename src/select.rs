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
//!
//! The rules themselves are in [`decide`]; this module holds the types and runs them per
//! location and role.

mod decide;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::catalog::{Filter, PopId};
use crate::location::{Location, Role};
use crate::rank::{RankedPop, Ranking};

use decide::{Round, preferred};

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

/// The new selection of one location from its ranking (already limited to allowed PoPs).
pub fn select_location(
    name: &str,
    prev: &LocationSelection,
    ranking: &Ranking,
    settings: &SelectionSettings,
    local: bool,
    now: SystemTime,
) -> (LocationSelection, Vec<Change>) {
    let round = Round {
        ranking,
        settings,
        local,
        now,
    };
    let all: Vec<&RankedPop> = ranking.pops.iter().collect();
    let ideal_primary = preferred(&all, settings, None, ranking.basis);
    let promoted = round.promote(prev);
    let (primary, why_primary) = match &promoted {
        Some((state, why)) => (state.clone(), Some(why.clone())),
        None => round.decide(&prev.primary, ideal_primary, None),
    };
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
        primary_key.as_ref().map(|k| &*k.provider),
        ranking.basis,
    );
    let (secondary, why_secondary) = if promoted.is_some() {
        let (state, _) = round.decide(&RoleState::default(), ideal_secondary, None);
        (state, Some("the secondary became the primary".to_owned()))
    } else {
        round.decide(&prev.secondary, ideal_secondary, primary_key.as_ref())
    };
    let mut changes = Vec::new();
    for (role, old, new, why) in [
        (Role::Primary, &prev.primary, &primary, why_primary),
        (Role::Secondary, &prev.secondary, &secondary, why_secondary),
    ] {
        // A new endpoint of the same PoP is a change too: the router must connect elsewhere.
        let endpoint = |c: &Choice| (c.pop.clone(), c.fqdn.clone(), c.ip);
        let (old_end, new_end) = (
            old.choice.as_ref().map(endpoint),
            new.choice.as_ref().map(endpoint),
        );
        if old_end != new_end {
            let reason = why.unwrap_or_else(|| match (&old.choice, &new.choice) {
                (Some(o), Some(n)) => format!(
                    "{} ({}) stopped answering or left the catalogue; {} ({}) of the same PoP answers",
                    o.ip, o.fqdn, n.ip, n.fqdn
                ),
                _ => String::new(),
            });
            changes.push(Change {
                location: name.to_owned(),
                role,
                old: old.choice.clone(),
                new: new.choice.clone(),
                reason,
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
