//! Per-location view of a survey: each location ranks the PoPs it may use from its own site
//! (with this host's latency when it is local, by distance otherwise), then selects. Pure.

use std::time::SystemTime;

use crate::catalog::Skipped;
use crate::config::Config;
use crate::rank::{Ranking, rank};
use crate::select::{Change, Selection, select_location};
use crate::survey::Survey;

/// Each location's ranking, in config order.
pub fn rank_locations(
    config: &Config,
    survey: &Survey,
    skipped: &[Skipped],
) -> Vec<(String, Ranking)> {
    config
        .locations
        .iter()
        .map(|loc| {
            let probes = if loc.local {
                survey.probes.as_ref()
            } else {
                None
            };
            let ranking = rank(loc.site, survey.pops.clone(), probes, skipped.to_vec());
            (loc.name.clone(), ranking)
        })
        .collect()
}

/// Every location's new selection, and what changed. Locations gone from the config are
/// dropped from the selection.
pub fn select_all(
    config: &Config,
    rankings: &[(String, Ranking)],
    prev: &Selection,
    now: SystemTime,
) -> (Selection, Vec<Change>) {
    let mut next = Selection {
        version: 1,
        ..Selection::default()
    };
    let mut changes = Vec::new();
    for (loc, (name, ranking)) in config.locations.iter().zip(rankings) {
        let before = prev.locations.get(name).cloned().unwrap_or_default();
        let (after, mut c) =
            select_location(name, &before, ranking, &config.selection, loc.local, now);
        next.locations.insert(name.clone(), after);
        changes.append(&mut c);
    }
    (next, changes)
}
