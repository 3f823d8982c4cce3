//! Reconcile stage: make each location's Atmos tunnels exist and match the config.
//!
//! [`plan`] is pure: desired tunnels (config) + actual tunnels (API, all pages) + what popsel
//! remembers (managed tunnels and PSK fingerprints) give a [`Plan`]. [`apply`] carries it out
//! through the client, records each write in the audit log and the state. popsel never deletes
//! a tunnel unless asked to prune and the tunnel carries its management marker (it is in the
//! state's managed tunnels); a tunnel popsel does not manage that stands in the way is a
//! conflict for a human, never something to overwrite.

mod apply;
mod render;

use std::collections::HashMap;

use serde::Serialize;

use crate::atmos::Tunnel;
use crate::config::{Config, Location, TunnelConfig};
use crate::state::{Fingerprinter, ManagedTunnel, ManagedTunnels};

pub use apply::{ApplyReport, Outcome, apply};
pub use render::{plan_json, plan_text};

/// A field that differs between the API and the config. PSKs never appear: their change is
/// shown as `(sensitive)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// `+ create`
    Create { location: String, tunnel: String },
    /// `~ update`: field changes, and whether the PSK is pushed (rotated, or never pushed by
    /// this state dir).
    Update {
        location: String,
        tunnel: String,
        id: String,
        changes: Vec<FieldChange>,
        psk: Option<PskReason>,
    },
    /// `= unchanged`
    Unchanged {
        location: String,
        tunnel: String,
        id: String,
    },
    /// `! conflict`: cannot be done without a human.
    Conflict {
        location: String,
        tunnel: String,
        reason: String,
    },
    /// `- delete` (only with prune, only managed tunnels).
    Delete { tunnel: String, id: String },
    /// `? orphan`: managed by popsel, gone from the config, kept (no prune).
    Orphan { tunnel: String, id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PskReason {
    /// The config's PSK differs from the one popsel last pushed.
    Rotated,
    /// popsel has no record of pushing a PSK to this tunnel, so it cannot tell.
    Unknown,
}

impl Action {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Action::Create { .. } | Action::Update { .. } | Action::Delete { .. }
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn writes(&self) -> usize {
        self.actions.iter().filter(|a| a.is_write()).count()
    }

    pub fn conflicts(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a, Action::Conflict { .. }))
            .count()
    }
}

/// The config's tunnel as it should be on the API.
fn desired_fields(loc: &Location, t: &TunnelConfig) -> [(&'static str, String); 3] {
    [
        ("name", t.name.clone()),
        ("authentication_id", t.authentication_id.clone()),
        ("location_id", loc.location_id.clone()),
    ]
}

fn actual_fields(t: &Tunnel) -> [(&'static str, String); 3] {
    [
        ("name", t.name.clone()),
        ("authentication_id", t.authentication_id.clone()),
        ("location_id", t.location_id.clone()),
    ]
}

/// Forgets the managed tunnels whose id is no longer on the API (deleted by someone, or an
/// account reset), so that nothing keeps pointing at an id that is gone; the config's tunnels
/// are then created anew. Returns what was forgotten.
pub fn forget_gone(managed: &mut ManagedTunnels, actual: &[Tunnel]) -> Vec<ManagedTunnel> {
    let gone: Vec<String> = managed
        .tunnels
        .keys()
        .filter(|id| !actual.iter().any(|t| &t.id == *id))
        .cloned()
        .collect();
    gone.iter()
        .filter_map(|id| managed.tunnels.remove(id))
        .collect()
}

/// Compares config, API and state. `fingerprints` turns a PSK into the keyed fingerprint kept
/// in the state.
pub fn plan(
    config: &Config,
    actual: &[Tunnel],
    managed: &ManagedTunnels,
    fingerprints: &Fingerprinter,
    prune: bool,
) -> Plan {
    let by_name: HashMap<&str, &Tunnel> = actual.iter().map(|t| (t.name.as_str(), t)).collect();
    let by_auth: HashMap<&str, &Tunnel> = actual
        .iter()
        .map(|t| (t.authentication_id.as_str(), t))
        .collect();
    let wanted: Vec<(&Location, &TunnelConfig)> = config.tunnels().collect();
    // Entries whose tunnel is unmistakable go first, so that an ambiguous one (a rename in
    // the config next to a new tunnel taking the old name) cannot take a tunnel another entry
    // identifies better: exact name and authentication ID, then a managed tunnel's
    // authentication ID (a rename), then the name alone.
    let quality = |want: &TunnelConfig| {
        let exact = by_name
            .get(want.name.as_str())
            .is_some_and(|t| t.authentication_id == want.authentication_id);
        let renamed = by_auth
            .get(want.authentication_id.as_str())
            .is_some_and(|t| managed.tunnels.contains_key(&t.id));
        if exact {
            0
        } else if renamed {
            1
        } else {
            2
        }
    };
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| quality(wanted[i].1));
    let mut planned: Vec<Option<Action>> = vec![None; wanted.len()];
    let mut claimed: Vec<&str> = Vec::new();
    for i in order {
        let (loc, want) = wanted[i];
        let (action, claim) = plan_one(
            loc,
            want,
            &by_name,
            &by_auth,
            &claimed,
            managed,
            fingerprints,
        );
        claimed.extend(claim);
        planned[i] = Some(action);
    }
    let mut actions: Vec<Action> = planned.into_iter().flatten().collect();
    for m in managed.tunnels.values() {
        let still_there = actual.iter().any(|t| t.id == m.id);
        if !still_there || claimed.contains(&m.id.as_str()) {
            continue;
        }
        let (tunnel, id) = (m.name.clone(), m.id.clone());
        actions.push(if prune {
            Action::Delete { tunnel, id }
        } else {
            Action::Orphan { tunnel, id }
        });
    }
    Plan { actions }
}

/// The action for one configured tunnel, and the id of the API tunnel it takes, if any.
/// Tunnels in `claimed` are taken already.
fn plan_one<'a>(
    loc: &Location,
    want: &TunnelConfig,
    by_name: &HashMap<&str, &'a Tunnel>,
    by_auth: &HashMap<&str, &'a Tunnel>,
    claimed: &[&str],
    managed: &ManagedTunnels,
    fingerprints: &Fingerprinter,
) -> (Action, Option<&'a str>) {
    let location = loc.name.clone();
    let tunnel = want.name.clone();
    let free = |t: &&Tunnel| !claimed.contains(&t.id.as_str());
    // The tunnel of that name, else one popsel manages under an old name (a rename in the
    // config), identified by its authentication ID.
    let existing = by_name
        .get(want.name.as_str())
        .copied()
        .filter(free)
        .or_else(|| {
            by_auth
                .get(want.authentication_id.as_str())
                .copied()
                .filter(free)
                .filter(|t| managed.tunnels.contains_key(&t.id))
        });
    let Some(have) = existing else {
        let action = match by_auth.get(want.authentication_id.as_str()) {
            Some(holder) => Action::Conflict {
                location,
                tunnel,
                reason: format!(
                    "authentication ID {:?} is held by tunnel {:?} ({}), which popsel does not manage",
                    want.authentication_id, holder.name, holder.id
                ),
            },
            None => Action::Create { location, tunnel },
        };
        return (action, None);
    };
    let claim = Some(have.id.as_str());
    let conflict = |reason: String| {
        let action = Action::Conflict {
            location: location.clone(),
            tunnel: tunnel.clone(),
            reason,
        };
        (action, claim)
    };
    let is_managed = managed.tunnels.get(&have.id);
    // A tunnel popsel does not manage is only taken over when it is recognisably this one.
    if is_managed.is_none() && have.authentication_id != want.authentication_id {
        return conflict(format!(
            "a tunnel named {:?} ({}) exists with authentication ID {:?}, and popsel does not manage it",
            have.name, have.id, have.authentication_id
        ));
    }
    // Another tunnel holds the authentication ID this one should get.
    if let Some(holder) = by_auth.get(want.authentication_id.as_str()) {
        if holder.id != have.id {
            return conflict(format!(
                "authentication ID {:?} is held by another tunnel, {:?} ({})",
                want.authentication_id, holder.name, holder.id
            ));
        }
    }
    let changes: Vec<FieldChange> = actual_fields(have)
        .into_iter()
        .zip(desired_fields(loc, want))
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange { field, old, new })
        .collect();
    let psk = match is_managed {
        Some(m) if m.psk_fingerprint == fingerprints.fingerprint(&want.psk) => None,
        Some(m) if !m.psk_fingerprint.is_empty() => Some(PskReason::Rotated),
        _ => Some(PskReason::Unknown),
    };
    let id = have.id.clone();
    let action = if changes.is_empty() && psk.is_none() {
        Action::Unchanged {
            location,
            tunnel,
            id,
        }
    } else {
        Action::Update {
            location,
            tunnel,
            id,
            changes,
            psk,
        }
    };
    (action, claim)
}

#[cfg(test)]
mod tests;
