//! Carrying a plan out (the reconcile stage's I/O shell): one API write per action, each
//! recorded in the audit log and, when it succeeded, in the managed-tunnels state right away,
//! so that a crash mid-apply loses nothing.

use serde::Serialize;

use super::managed::{
    AUDIT_FILE, AuditEntry, FINGERPRINT_KEY_FILE, Fingerprinter, MANAGED_FILE, ManagedTunnel,
    ManagedTunnels,
};
use super::plan::{Action, Plan};
use crate::atmos::{ApiError, Client, Tunnel, TunnelSpec, TunnelUpdate};
use crate::location::{Location, TunnelConfig, tunnels};
use crate::state::{StateDir, StateError};
use crate::timestamp::rfc3339;

/// The managed tunnels the state dir remembers (none yet: empty).
pub fn load_managed(state: &StateDir) -> Result<ManagedTunnels, StateError> {
    Ok(state.read_json(MANAGED_FILE)?.unwrap_or_default())
}

pub fn save_managed(state: &StateDir, managed: &ManagedTunnels) -> Result<(), StateError> {
    state.write_json(MANAGED_FILE, managed)
}

/// The state dir's PSK fingerprinter (its key is made on first use).
pub fn fingerprinter(state: &StateDir) -> Result<Fingerprinter, StateError> {
    Ok(Fingerprinter::new(&state.secret_key(FINGERPRINT_KEY_FILE)?))
}

/// Why one action of a plan was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the API write succeeded but the state was not saved: {0}")]
    NotSaved(StateError),
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

#[derive(Debug, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    Created {
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
            Outcome::Failed(_) | Outcome::Nothing => None,
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
        let entry = AuditEntry {
            time: rfc3339(std::time::SystemTime::now()),
            action: action.to_owned(),
            tunnel: tunnel.to_owned(),
            id: id.map(str::to_owned),
            fields,
            result: error.map_or_else(|| "ok".to_owned(), ToString::to_string),
        };
        if let Err(e) = self.state.append_json_line(AUDIT_FILE, &entry) {
            tracing::error!("{e}");
        }
    }

    fn remember(
        &self,
        id: &str,
        loc: &Location,
        want: &TunnelConfig,
        psk_pushed: bool,
    ) -> Result<(), StateError> {
        let mut managed = load_managed(self.state)?;
        let old = managed.tunnels.get(id).map(|m| m.psk_fingerprint.clone());
        // One entry per tunnel name: an older id under this name is gone or replaced.
        managed
            .tunnels
            .retain(|other, m| other == id || m.name != want.name);
        let psk_fingerprint = if psk_pushed {
            self.fingerprints.fingerprint(&want.psk)
        } else {
            old.unwrap_or_default()
        };
        managed.tunnels.insert(
            id.to_owned(),
            ManagedTunnel {
                id: id.to_owned(),
                name: want.name.clone(),
                location: loc.name.clone(),
                psk_fingerprint,
            },
        );
        managed.version = 1;
        save_managed(self.state, &managed)
    }

    fn forget(&self, id: &str) -> Result<(), StateError> {
        let mut managed = load_managed(self.state)?;
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
        let result = self.put(&found.id, loc, want, true).await;
        let fields = vec!["location_id".into(), "psk".into()];
        self.audit(
            "adopt",
            &want.name,
            Some(&found.id),
            fields,
            result.as_ref().err(),
        );
        match result {
            Ok(()) => {
                let adopted = Outcome::Adopted {
                    id: found.id.clone(),
                };
                self.settle(&found.id, loc, want, true, adopted)
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
        push_psk: bool,
    ) -> Outcome {
        if push_psk {
            fields.push("psk".into());
        }
        let result = self.put(id, loc, want, push_psk).await;
        self.audit(
            "update",
            &want.name,
            Some(id),
            fields,
            result.as_ref().err(),
        );
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
                    self.update(wanted, id, fields, psk.is_some()).await
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
