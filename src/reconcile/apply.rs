//! Carrying a plan out (the reconcile stage's I/O shell): one API write per action, each
//! recorded in the audit log and, when it succeeded, in the managed-tunnels state right away,
//! so that a crash mid-apply loses nothing.

use serde::Serialize;

use super::managed::{
    AUDIT_FILE, AuditEntry, Fingerprinter, MANAGED_FILE, ManagedTunnel, ManagedTunnels,
    PskRecordLost,
};
use super::plan::{Action, Plan, PskReason};
use crate::atmos::{ApiError, Client, Tunnel, TunnelSpec, TunnelUpdate};
use crate::location::{Location, TunnelConfig, tunnels};
use crate::state::{Loaded, Rotation, StateDir, StateError};
use crate::timestamp::rfc3339;

/// `audit.log` is rotated at 1 MiB and four old ones are kept: at most 5 MiB on a router's
/// flash. An entry is about 250 bytes, so one file holds some 4,000 writes: years of a
/// steady site (popsel writes only when the config or the account changes), and still
/// weeks of a config that flaps every reconcile run.
pub const AUDIT_ROTATION: Rotation = Rotation {
    max_bytes: 1 << 20,
    keep: 4,
};

/// The managed tunnels the state dir remembers.
pub fn load_managed(state: &StateDir) -> Loaded<ManagedTunnels> {
    state.load_json(MANAGED_FILE)
}

pub fn save_managed(state: &StateDir, managed: &ManagedTunnels) -> Result<(), StateError> {
    state.write_json(MANAGED_FILE, managed)
}

/// Why one action of a plan was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the API write succeeded but the state was not saved: {0}")]
    NotSaved(StateError),
    /// A PSK push is only started once the state says it is under way.
    #[error("the PSK was not pushed: the state could not be saved first: {0}")]
    PushNotRecorded(StateError),
    /// The tunnel was deleted, but the state still lists it.
    #[error(transparent)]
    NotForgotten(StateError),
    #[error("not in the config any more")]
    NotInConfig,
    #[error("{conflict}; and listing tunnels to check it failed: {listing}")]
    AdoptionUnchecked {
        conflict: ApiError,
        listing: ApiError,
    },
    #[error(
        "{0}; no tunnel with both this name and authentication ID exists, so popsel does not take one over"
    )]
    NotOurs(ApiError),
}

impl ApplyError {
    /// The write failed because the API could not be used (see [`ApiError::is_unavailable`]).
    pub fn api_unavailable(&self) -> bool {
        match self {
            ApplyError::Api(e) | ApplyError::NotOurs(e) => e.is_unavailable(),
            ApplyError::AdoptionUnchecked { conflict, listing } => {
                conflict.is_unavailable() || listing.is_unavailable()
            }
            ApplyError::NotSaved(_)
            | ApplyError::PushNotRecorded(_)
            | ApplyError::NotForgotten(_)
            | ApplyError::NotInConfig => false,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    Created {
        id: String,
    },
    /// A create met a 409 and the tunnel there is one popsel manages, as configured (the
    /// listing the plan was made from missed it): nothing was written.
    #[serde(rename = "already_there")]
    AlreadyThere {
        id: String,
    },
    /// A create met a 409 and the tunnel there was recognisably ours (same name and
    /// authentication ID): it was taken over and its PSK and location set.
    Adopted {
        id: String,
    },
    Updated,
    Deleted,
    Failed(#[serde(serialize_with = "as_text")] ApplyError),
    /// Not a write.
    Nothing,
}

impl Outcome {
    /// The write that went through, if this is one.
    pub fn written(&self) -> Option<Written> {
        match self {
            Outcome::Created { id } => Some(Written::Created { id: id.clone() }),
            Outcome::Adopted { id } => Some(Written::Adopted { id: id.clone() }),
            Outcome::Updated => Some(Written::Updated),
            Outcome::Deleted => Some(Written::Deleted),
            Outcome::AlreadyThere { .. } | Outcome::Failed(_) | Outcome::Nothing => None,
        }
    }
}

/// A write to the API that went through: what the log and the notices report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Created { id: String },
    Adopted { id: String },
    Updated,
    Deleted,
}

impl Written {
    /// One word for the log's `result` field.
    pub fn as_str(&self) -> &'static str {
        match self {
            Written::Created { .. } => "created",
            Written::Adopted { .. } => "adopted",
            Written::Updated => "updated",
            Written::Deleted => "deleted",
        }
    }

    /// The id of the tunnel the write made or found, when it tells one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Written::Created { id } | Written::Adopted { id } => Some(id),
            Written::Updated | Written::Deleted => None,
        }
    }
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())?;
        match self.id() {
            Some(id) => write!(f, " (id {id})"),
            None => Ok(()),
        }
    }
}

/// Errors go to JSON as the sentence people read.
fn as_text<S: serde::Serializer>(e: &ApplyError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(e)
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub results: Vec<(Action, Outcome)>,
}

impl ApplyReport {
    pub fn failures(&self) -> impl Iterator<Item = (&Action, &ApplyError)> {
        self.results.iter().filter_map(|(a, o)| match o {
            Outcome::Failed(e) => Some((a, e)),
            _ => None,
        })
    }
}

fn find<'a>(
    locations: &'a [Location],
    location: &str,
    tunnel: &str,
) -> Option<(&'a Location, &'a TunnelConfig)> {
    tunnels(locations).find(|(l, t)| l.name == location && t.name == tunnel)
}

struct Applier<'a> {
    client: &'a Client,
    state: &'a StateDir,
    fingerprints: &'a Fingerprinter,
}

impl Applier<'_> {
    /// Records a write; `error` is why it failed, `None` when it went through.
    fn audit(
        &self,
        action: &str,
        tunnel: &str,
        id: Option<&str>,
        fields: Vec<String>,
        error: Option<&ApiError>,
    ) {
        self.audit_why(action, tunnel, id, fields, error, None);
    }

    /// [`audit`](Self::audit), saying why.
    fn audit_why(
        &self,
        action: &str,
        tunnel: &str,
        id: Option<&str>,
        fields: Vec<String>,
        error: Option<&ApiError>,
        why: Option<String>,
    ) {
        let entry = AuditEntry {
            time: rfc3339(std::time::SystemTime::now()),
            action: action.to_owned(),
            tunnel: tunnel.to_owned(),
            id: id.map(str::to_owned),
            fields,
            result: error.map_or_else(|| "ok".to_owned(), ToString::to_string),
            why,
        };
        if let Err(e) = self
            .state
            .append_json_line(AUDIT_FILE, &entry, AUDIT_ROTATION)
        {
            tracing::error!("{e}");
        }
    }

    /// The managed tunnels as they are on disk now. A file damaged since the plan read it is
    /// an error here: the next reconcile run sets it aside and re-learns the tunnels.
    fn managed(&self) -> Result<ManagedTunnels, StateError> {
        match load_managed(self.state) {
            Loaded::Absent => Ok(ManagedTunnels::default()),
            Loaded::Found(managed) => Ok(managed),
            Loaded::Damaged(problem) => Err(StateError {
                path: self.state.path().join(MANAGED_FILE),
                detail: format!("{problem}; the next reconcile run sets it aside"),
            }),
        }
    }

    fn remember(
        &self,
        id: &str,
        loc: &Location,
        want: &TunnelConfig,
        psk_pushed: bool,
    ) -> Result<(), StateError> {
        let mut managed = self.managed()?;
        let old = managed.tunnels.get(id);
        let (psk_fingerprint, psk_record_lost) = match old {
            _ if psk_pushed => (self.fingerprints.fingerprint(&want.psk), None),
            Some(old) => (old.psk_fingerprint.clone(), old.psk_record_lost),
            None => (String::new(), None),
        };
        // One entry per tunnel name: an older id under this name is gone or replaced.
        managed
            .tunnels
            .retain(|other, m| other == id || m.name != want.name);
        managed.tunnels.insert(
            id.to_owned(),
            ManagedTunnel {
                id: id.to_owned(),
                name: want.name.clone(),
                location: loc.name.clone(),
                psk_fingerprint,
                psk_record_lost,
                // It was just written or found: it is there.
                missing_listings: 0,
            },
        );
        managed.version = 1;
        save_managed(self.state, &managed)
    }

    /// Before a PSK push to a managed tunnel: its record says the push is unconfirmed until
    /// [`remember`](Self::remember) records the new PSK, so that a crash or a failed answer in
    /// between makes the next run push again rather than trust a record the API may no longer
    /// match (a config rolled back to that PSK would otherwise never reach the API).
    fn push_under_way(&self, id: &str) -> Result<(), StateError> {
        let mut managed = self.managed()?;
        let Some(m) = managed.tunnels.get_mut(id) else {
            // Not managed yet: the next run finds no record and pushes anyway.
            return Ok(());
        };
        if m.psk_record_lost == Some(PskRecordLost::PushUnconfirmed) {
            return Ok(());
        }
        m.psk_record_lost = Some(PskRecordLost::PushUnconfirmed);
        save_managed(self.state, &managed)
    }

    fn forget(&self, id: &str) -> Result<(), StateError> {
        let mut managed = self.managed()?;
        managed.tunnels.remove(id);
        save_managed(self.state, &managed)
    }

    /// Sets every field of an existing tunnel to the config's, PSK included when asked.
    async fn put(
        &self,
        id: &str,
        loc: &Location,
        want: &TunnelConfig,
        with_psk: bool,
    ) -> Result<(), ApiError> {
        let update = TunnelUpdate {
            name: Some(want.name.clone()),
            authentication_id: Some(want.authentication_id.clone()),
            psk: with_psk.then(|| want.psk.clone()),
            location_id: Some(loc.location_id.clone()),
        };
        self.client.update_tunnel(id, &update).await
    }

    async fn create(&self, loc: &Location, want: &TunnelConfig) -> Outcome {
        let spec = TunnelSpec {
            name: want.name.clone(),
            authentication_id: want.authentication_id.clone(),
            psk: want.psk.clone(),
            location_id: loc.location_id.clone(),
        };
        let fields = vec![
            "name".into(),
            "authentication_id".into(),
            "location_id".into(),
            "psk".into(),
        ];
        match self.client.create_tunnel(&spec).await {
            Ok(t) => {
                self.audit("create", &want.name, Some(&t.id), fields, None);
                self.settle(
                    &t.id,
                    loc,
                    want,
                    true,
                    Outcome::Created { id: t.id.clone() },
                )
            }
            Err(e) if e.is_conflict() => self.adopt(loc, want, e).await,
            Err(e) => {
                self.audit("create", &want.name, None, fields, Some(&e));
                Outcome::Failed(e.into())
            }
        }
    }

    /// After a 409: the tunnel there is ours to take only if name and authentication ID match.
    async fn adopt(&self, loc: &Location, want: &TunnelConfig, conflict: ApiError) -> Outcome {
        let all = match self.client.list::<Tunnel>().await {
            Ok(all) => all,
            Err(listing) => {
                return Outcome::Failed(ApplyError::AdoptionUnchecked { conflict, listing });
            }
        };
        let Some(found) = all
            .iter()
            .find(|t| t.name == want.name && t.authentication_id == want.authentication_id)
        else {
            self.audit("create", &want.name, None, vec![], Some(&conflict));
            return Outcome::Failed(ApplyError::NotOurs(conflict));
        };
        // One popsel manages already: the listing the plan was made from missed it (an empty
        // or partial page). Only what differs is written, its PSK only if the config's is not
        // the one last pushed.
        let record = self
            .managed()
            .ok()
            .and_then(|m| m.tunnels.get(&found.id).cloned());
        let psk_known = record.as_ref().is_some_and(|m| {
            m.psk_record_lost.is_none()
                && !m.psk_fingerprint.is_empty()
                && m.psk_fingerprint == self.fingerprints.fingerprint(&want.psk)
        });
        let missed = record.is_some().then(|| {
            "the tunnel was there already and popsel manages it: the listing the plan was made \
             from missed it"
                .to_owned()
        });
        if psk_known && found.location_id == loc.location_id {
            let why = missed.map(|m| format!("{m}; it is as configured, nothing written"));
            let (id, fields) = (Some(found.id.as_str()), vec![]);
            self.audit_why("create", &want.name, id, fields, Some(&conflict), why);
            let there = Outcome::AlreadyThere {
                id: found.id.clone(),
            };
            return self.settle(&found.id, loc, want, false, there);
        }
        let mut fields = vec!["location_id".to_owned()];
        if !psk_known {
            fields.push("psk".into());
        }
        if !psk_known {
            if let Err(e) = self.push_under_way(&found.id) {
                return Outcome::Failed(ApplyError::PushNotRecorded(e));
            }
        }
        let result = self.put(&found.id, loc, want, !psk_known).await;
        let (id, error) = (Some(found.id.as_str()), result.as_ref().err());
        self.audit_why("adopt", &want.name, id, fields, error, missed);
        match result {
            Ok(()) => {
                let adopted = Outcome::Adopted {
                    id: found.id.clone(),
                };
                self.settle(&found.id, loc, want, !psk_known, adopted)
            }
            Err(e) => Outcome::Failed(e.into()),
        }
    }

    fn settle(
        &self,
        id: &str,
        loc: &Location,
        want: &TunnelConfig,
        psk_pushed: bool,
        ok: Outcome,
    ) -> Outcome {
        match self.remember(id, loc, want, psk_pushed) {
            Ok(()) => ok,
            Err(e) => Outcome::Failed(ApplyError::NotSaved(e)),
        }
    }

    async fn update(
        &self,
        (loc, want): (&Location, &TunnelConfig),
        id: &str,
        mut fields: Vec<String>,
        psk: Option<PskReason>,
    ) -> Outcome {
        let push_psk = psk.is_some();
        if push_psk {
            fields.push("psk".into());
        }
        if push_psk {
            if let Err(e) = self.push_under_way(id) {
                return Outcome::Failed(ApplyError::PushNotRecorded(e));
            }
        }
        let result = self.put(id, loc, want, push_psk).await;
        let why = psk.map(PskReason::describe);
        let error = result.as_ref().err();
        self.audit_why("update", &want.name, Some(id), fields, error, why);
        match result {
            Ok(()) => self.settle(id, loc, want, push_psk, Outcome::Updated),
            Err(e) => Outcome::Failed(e.into()),
        }
    }

    async fn delete(&self, tunnel: &str, id: &str) -> Outcome {
        let result = self.client.delete::<Tunnel>(id).await;
        self.audit("delete", tunnel, Some(id), vec![], result.as_ref().err());
        match result {
            Ok(()) => match self.forget(id) {
                Ok(()) => Outcome::Deleted,
                Err(e) => Outcome::Failed(ApplyError::NotForgotten(e)),
            },
            Err(e) => Outcome::Failed(e.into()),
        }
    }

    async fn run(&self, locations: &[Location], action: &Action) -> Outcome {
        match action {
            Action::Create { location, tunnel } => match find(locations, location, tunnel) {
                Some((loc, want)) => self.create(loc, want).await,
                None => Outcome::Failed(ApplyError::NotInConfig),
            },
            Action::Update {
                location,
                tunnel,
                id,
                changes,
                psk,
            } => match find(locations, location, tunnel) {
                Some(wanted) => {
                    let fields = changes.iter().map(|c| c.field.to_owned()).collect();
                    self.update(wanted, id, fields, *psk).await
                }
                None => Outcome::Failed(ApplyError::NotInConfig),
            },
            Action::Delete { tunnel, id } => self.delete(tunnel, id).await,
            Action::Unchanged { .. } | Action::Conflict { .. } | Action::Orphan { .. } => {
                Outcome::Nothing
            }
        }
    }
}

/// Carries `plan` out. One failed action does not stop the others.
pub async fn apply(
    client: &Client,
    locations: &[Location],
    plan: &Plan,
    state: &StateDir,
    fingerprints: &Fingerprinter,
) -> ApplyReport {
    let applier = Applier {
        client,
        state,
        fingerprints,
    };
    let mut report = ApplyReport::default();
    for action in &plan.actions {
        let outcome = applier.run(locations, action).await;
        report.results.push((action.clone(), outcome));
    }
    report
}
