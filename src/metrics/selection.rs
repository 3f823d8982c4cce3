//! The rank and select stages' families: each location's ranking of its best PoPs and of the
//! ones it chose, its choices and how often they changed.
//!
//! Why not every PoP: a ranking is 3 series per PoP and location, on a 45-PoP world with two
//! locations 270 of the 300 an agent can afford in a fleet; the best few (`[metrics]
//! ranked_pops`) and the chosen ones say why a choice was made, and `popsel rank` or `popsel
//! plan` on the router shows the rest.

use std::collections::HashSet;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Result};

use super::family::{Family, collector};
use crate::catalog::PopId;
use crate::location::Role;
use crate::rank::{Basis, Ranking};
use crate::select::{Change, Selection};

const LOCATION_POP: &[&str] = &["location", "pop"];

const DISTANCE: Family = Family {
    name: "popsel_pop_distance_meters",
    help: "Great-circle distance from the location to the PoP.",
    labels: LOCATION_POP,
};
const RANK: Family = Family {
    name: "popsel_pop_rank",
    help: "Rank of the PoP for the location (1 is best).",
    labels: LOCATION_POP,
};
/// One unit: only a latency ranking has a score; on a distance basis the order is
/// `popsel_pop_distance_meters`'s, and a family whose unit changed with the basis could not be
/// compared, summed or graphed across locations or agents.
const SCORE: Family = Family {
    name: "popsel_pop_score_seconds",
    help: "Latency score of the PoP for a location ranked by latency: median RTT + 0.5 s x loss ratio + 0.2 x jitter (absent if unreachable, and for a location ranked by distance).",
    labels: LOCATION_POP,
};
const SELECTED: Family = Family {
    name: "popsel_selected_pop_info",
    help: "The PoP chosen for each location and role (value 1).",
    labels: &["location", "role", "pop", "fqdn", "ip"],
};
const CHANGES: Family = Family {
    name: "popsel_selection_changes_total",
    help: "Times the chosen PoP of a location and role changed.",
    labels: &["location", "role"],
};

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct SelectionCollector {
    distance: GaugeVec,
    rank: IntGaugeVec,
    score: GaugeVec,
    selected: IntGaugeVec,
    changes: IntCounterVec,
    /// How many of each location's best PoPs are exported (0: all).
    ranked_pops: usize,
}

collector!(SelectionCollector {
    distance,
    rank,
    score,
    selected,
    changes
});

impl SelectionCollector {
    /// The family only a latency ranking fills.
    pub const SCORE: &'static str = SCORE.name;

    pub const FAMILIES: [&'static str; 5] = [
        DISTANCE.name,
        RANK.name,
        SCORE.name,
        SELECTED.name,
        CHANGES.name,
    ];

    pub fn new(ranked_pops: usize) -> Result<SelectionCollector> {
        Ok(SelectionCollector {
            distance: DISTANCE.gauges()?,
            rank: RANK.int_gauges()?,
            score: SCORE.gauges()?,
            selected: SELECTED.int_gauges()?,
            changes: CHANGES.counters()?,
            ranked_pops,
        })
    }

    /// Rebuilt from scratch so that PoPs gone from the catalogue, or out of a location's best,
    /// lose their series. Each location's best `ranked_pops` and the PoPs `selection` chose for
    /// it.
    pub fn observe_rankings(&self, rankings: &[(String, Ranking)], selection: &Selection) {
        self.distance.reset();
        self.rank.reset();
        self.score.reset();
        for (location, ranking) in rankings {
            let chosen: HashSet<&PopId> = selection
                .locations
                .get(location)
                .map(|s| {
                    Role::ALL
                        .iter()
                        .filter_map(|r| s.role(*r).choice.as_ref().map(|c| &c.pop))
                        .collect()
                })
                .unwrap_or_default();
            for p in &ranking.pops {
                let id = p.pop.id();
                if self.ranked_pops != 0 && p.rank > self.ranked_pops && !chosen.contains(&id) {
                    continue;
                }
                let labels = [location.as_str(), &id.to_string()];
                self.distance
                    .with_label_values(&labels)
                    .set(p.distance_km * 1000.0);
                self.rank.with_label_values(&labels).set(p.rank as i64);
                if let (Basis::Latency, Some(ms)) = (ranking.basis, p.score) {
                    self.score.with_label_values(&labels).set(ms / 1000.0);
                }
            }
        }
    }

    pub fn observe_selection(&self, selection: &Selection, changes: &[Change]) {
        self.selected.reset();
        for (location, s) in &selection.locations {
            for role in Role::ALL {
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
            self.changes
                .with_label_values(&[c.location.as_str(), c.role.as_str()])
                .inc();
        }
    }
}

#[cfg(test)]
#[path = "selection_tests.rs"]
mod tests;
