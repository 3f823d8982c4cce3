//! The rank and select stages' families: each location's ranking of every PoP, its choices and
//! how often they changed.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Result};

use super::family::{Family, collector};
use crate::location::Role;
use crate::rank::Ranking;
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
const SCORE: Family = Family {
    name: "popsel_pop_score",
    help: "Score of the PoP for the location (ms on a latency basis, km on a distance basis; absent if unreachable).",
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
}

collector!(SelectionCollector {
    distance,
    rank,
    score,
    selected,
    changes
});

impl SelectionCollector {
    pub const FAMILIES: [&'static str; 5] = [
        DISTANCE.name,
        RANK.name,
        SCORE.name,
        SELECTED.name,
        CHANGES.name,
    ];

    pub fn new() -> Result<SelectionCollector> {
        Ok(SelectionCollector {
            distance: DISTANCE.gauges()?,
            rank: RANK.int_gauges()?,
            score: SCORE.gauges()?,
            selected: SELECTED.int_gauges()?,
            changes: CHANGES.counters()?,
        })
    }

    /// Rebuilt from scratch so that PoPs gone from the catalogue lose their series.
    pub fn observe_rankings(&self, rankings: &[(String, Ranking)]) {
        self.distance.reset();
        self.rank.reset();
        self.score.reset();
        for (location, ranking) in rankings {
            for p in &ranking.pops {
                let labels = [location.as_str(), &p.pop.id().to_string()];
                self.distance
                    .with_label_values(&labels)
                    .set(p.distance_km * 1000.0);
                self.rank.with_label_values(&labels).set(p.rank as i64);
                if let Some(score) = p.score {
                    self.score.with_label_values(&labels).set(score);
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
