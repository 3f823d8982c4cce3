//! The reconcile diff, pure: desired tunnels (the locations' config) + actual tunnels (the API,
//! all pages) + what popsel remembers (managed tunnels and PSK fingerprints) give a [`Plan`].

use std::collections::HashMap;

use serde::Serialize;

use super::managed::{
    FINGERPRINT_KEY_FILE, Fingerprinter, MANAGED_FILE, ManagedTunnels, PskRecordLost,
};
use crate::atmos::types::Tunnel;
use crate::location::{Location, TunnelConfig, tunnels};

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
    /// `tunnels.json` was damaged: the tunnel was re-learned by name and authentication ID,
    /// and which PSK popsel pushed is unknown.
    Relearned,
    /// `fingerprint.key` was damaged or missing and replaced: the PSK fingerprints kept under
    /// the old key tell nothing.
    KeyReplaced,
    /// An earlier push was never confirmed: the API may hold its PSK, whatever popsel last
    /// recorded.
    PushUnconfirmed,
}

impl PskReason {
    /// Why the PSK is pushed, in operator words (the plan, the audit log).
    pub fn describe(self) -> String {
        match self {
            PskReason::Rotated => "changed in the config".into(),
            PskReason::Unknown => "popsel has not pushed it to this tunnel yet".into(),
            PskReason::Relearned => format!(
                "{MANAGED_FILE} was damaged: popsel re-learned this tunnel by its name and \
                 authentication ID and pushes its PSK once more"
            ),
            PskReason::KeyReplaced => format!(
                "{FINGERPRINT_KEY_FILE} was damaged or missing and replaced: popsel can no \
                 longer tell whether the PSK changed and pushes it once more"
            ),
            PskReason::PushUnconfirmed => "an earlier push of a PSK to this tunnel was never \
                 confirmed (popsel stopped or the API failed mid-write), so the API may hold \
                 that one: pushed once more"
                .into(),
        }
    }
}

impl From<PskRecordLost> for PskReason {
    fn from(lost: PskRecordLost) -> Self {
        match lost {
            PskRecordLost::ManagedFileDamaged => PskReason::Relearned,
            PskRecordLost::KeyReplaced => PskReason::KeyReplaced,
            PskRecordLost::PushUnconfirmed => PskReason::PushUnconfirmed,
        }
    }
}

impl Action {
    /// The configured (or, for deletes and orphans, managed) tunnel the action is about.
    pub fn tunnel(&self) -> &str {
        match self {
            Action::Create { tunnel, .. }
            | Action::Update { tunnel, .. }
            | Action::Unchanged { tunnel, .. }
            | Action::Conflict { tunnel, .. }
            | Action::Delete { tunnel, .. }
            | Action::Orphan { tunnel, .. } => tunnel,
        }
    }

    /// One word for the action, as the plan's JSON `action` tag says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Update { .. } => "update",
            Action::Unchanged { .. } => "unchanged",
            Action::Conflict { .. } => "conflict",
            Action::Delete { .. } => "delete",
            Action::Orphan { .. } => "orphan",
        }
    }

    /// The location of a configured tunnel (deletes and orphans have none: they are no
    /// longer in the config).
    pub fn location(&self) -> Option<&str> {
        match self {
            Action::Create { location, .. }
            | Action::Update { location, .. }
            | Action::Unchanged { location, .. }
            | Action::Conflict { location, .. } => Some(location),
            Action::Delete { .. } | Action::Orphan { .. } => None,
        }
    }

    /// The id of the tunnel on the API, when it exists already.
    pub fn id(&self) -> Option<&str> {
        match self {
            Action::Update { id, .. }
            | Action::Unchanged { id, .. }
            | Action::Delete { id, .. }
            | Action::Orphan { id, .. } => Some(id),
            Action::Create { .. } | Action::Conflict { .. } => None,
        }
    }

    /// Why the PSK is pushed, when the action pushes it.
    pub fn psk_reason(&self) -> Option<PskReason> {
        match self {
            Action::Update { psk, .. } => *psk,
            _ => None,
        }
    }

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

    /// Whether a plan made from the managed tunnels alone, read by id, must be made again from
    /// the whole account: it would create a tunnel (which may exist under that name, popsel's
    /// to adopt, or be in the way) or it found a conflict (which the account may explain).
    pub fn needs_account(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Create { .. } | Action::Conflict { .. }))
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

/// The API's tunnels, looked up by name and by authentication ID.
struct Account<'a> {
    by_name: HashMap<&'a str, &'a Tunnel>,
    by_auth: HashMap<&'a str, &'a Tunnel>,
}

/// Compares the locations' tunnels, the API's and what popsel remembers. `fingerprints` turns a
/// PSK into the keyed fingerprint kept in the state.
pub fn plan(
    locations: &[Location],
    actual: &[Tunnel],
    managed: &ManagedTunnels,
    fingerprints: &Fingerprinter,
    prune: bool,
) -> Plan {
    let account = Account {
        by_name: actual.iter().map(|t| (t.name.as_str(), t)).collect(),
        by_auth: actual
            .iter()
            .map(|t| (t.authentication_id.as_str(), t))
            .collect(),
    };
    let wanted: Vec<(&Location, &TunnelConfig)> = tunnels(locations).collect();
    // Entries whose tunnel is unmistakable go first, so that an ambiguous one (a rename in
    // the config next to a new tunnel taking the old name) cannot take a tunnel another entry
    // identifies better: exact name and authentication ID, then a managed tunnel's
    // authentication ID (a rename), then the name alone.
    let quality = |want: &TunnelConfig| {
        let exact = account
            .by_name
            .get(want.name.as_str())
            .is_some_and(|t| t.authentication_id == want.authentication_id);
        let renamed = account
            .by_auth
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
        let (action, claim) = plan_one(loc, want, &account, &claimed, managed, fingerprints);
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
    account: &Account<'a>,
    claimed: &[&str],
    managed: &ManagedTunnels,
    fingerprints: &Fingerprinter,
) -> (Action, Option<&'a str>) {
    let conflict = |reason: String| Action::Conflict {
        location: loc.name.clone(),
        tunnel: want.name.clone(),
        reason,
    };
    let Some(have) = existing(want, account, claimed, managed) else {
        let action = match account.by_auth.get(want.authentication_id.as_str()) {
            Some(holder) => conflict(format!(
                "authentication ID {:?} is held by tunnel {:?} ({}), which popsel does not manage",
                want.authentication_id, holder.name, holder.id
            )),
            None => Action::Create {
                location: loc.name.clone(),
                tunnel: want.name.clone(),
            },
        };
        return (action, None);
    };
    let claim = Some(have.id.as_str());
    if let Some(reason) = obstacle(want, have, account, managed) {
        return (conflict(reason), claim);
    }
    (difference(loc, want, have, managed, fingerprints), claim)
}

/// The API tunnel that is this configured one: the tunnel of that name, else one popsel
/// manages under an old name (a rename in the config), found by its authentication ID.
fn existing<'a>(
    want: &TunnelConfig,
    account: &Account<'a>,
    claimed: &[&str],
    managed: &ManagedTunnels,
) -> Option<&'a Tunnel> {
    let free = |t: &&Tunnel| !claimed.contains(&t.id.as_str());
    account
        .by_name
        .get(want.name.as_str())
        .copied()
        .filter(free)
        .or_else(|| {
            account
                .by_auth
                .get(want.authentication_id.as_str())
                .copied()
                .filter(free)
                .filter(|t| managed.tunnels.contains_key(&t.id))
        })
}

/// Why `have` cannot be made into `want` without a human, if it cannot.
fn obstacle(
    want: &TunnelConfig,
    have: &Tunnel,
    account: &Account<'_>,
    managed: &ManagedTunnels,
) -> Option<String> {
    // A tunnel popsel does not manage is only taken over when it is recognisably this one.
    if !managed.tunnels.contains_key(&have.id) && have.authentication_id != want.authentication_id {
        return Some(format!(
            "a tunnel named {:?} ({}) exists with authentication ID {:?}, and popsel does not manage it",
            have.name, have.id, have.authentication_id
        ));
    }
    // Another tunnel holds the authentication ID this one should get.
    match account.by_auth.get(want.authentication_id.as_str()) {
        Some(holder) if holder.id != have.id => Some(format!(
            "authentication ID {:?} is held by another tunnel, {:?} ({})",
            want.authentication_id, holder.name, holder.id
        )),
        _ => None,
    }
}

/// `have` compared with `want`: unchanged, or the fields and PSK to update.
fn difference(
    loc: &Location,
    want: &TunnelConfig,
    have: &Tunnel,
    managed: &ManagedTunnels,
    fingerprints: &Fingerprinter,
) -> Action {
    let changes: Vec<FieldChange> = actual_fields(have)
        .into_iter()
        .zip(desired_fields(loc, want))
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange { field, old, new })
        .collect();
    let psk = match managed.tunnels.get(&have.id) {
        None => Some(PskReason::Unknown),
        Some(m) => match (m.psk_record_lost, m.psk_fingerprint.as_str()) {
            (Some(lost), _) => Some(lost.into()),
            (None, "") => Some(PskReason::Unknown),
            (None, kept) if kept == fingerprints.fingerprint(&want.psk) => None,
            (None, _) => Some(PskReason::Rotated),
        },
    };
    let (location, tunnel, id) = (loc.name.clone(), want.name.clone(), have.id.clone());
    if changes.is_empty() && psk.is_none() {
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
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
