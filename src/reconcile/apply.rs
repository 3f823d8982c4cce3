//! Carrying a plan out: one API write per action, each recorded in the audit log and, when it
//! succeeded, in the managed-tunnels state right away, so that a crash mid-apply loses nothing.

use crate::atmos::{ApiError, Client, TunnelSpec, TunnelUpdate};
use crate::config::{Config, Location, TunnelConfig};
use crate::state::{AuditEntry, Fingerprinter, ManagedTunnel, StateDir, StateError, rfc3339};

use super::{Action, Plan};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    Failed(String),
    /// Not a write.
    Nothing,
}

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub results: Vec<(Action, Outcome)>,
}

impl ApplyReport {
    pub fn failures(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count()
    }
}

fn find<'a>(
    config: &'a Config,
    location: &str,
    tunnel: &str,
) -> Option<(&'a Location, &'a TunnelConfig)> {
    config
        .tunnels()
        .find(|(l, t)| l.name == location && t.name == tunnel)
}

struct Applier<'a> {
    client: &'a Client,
    state: &'a StateDir,
    fingerprints: &'a Fingerprinter,
}

impl Applier<'_> {
    fn audit(
        &self,
        action: &str,
        tunnel: &str,
        id: Option<&str>,
        fields: Vec<String>,
        result: &Result<(), String>,
    ) {
        let entry = AuditEntry {
            time: rfc3339(std::time::SystemTime::now()),
            action: action.to_owned(),
            tunnel: tunnel.to_owned(),
            id: id.map(str::to_owned),
            fields,
            result: match result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.clone(),
            },
        };
        if let Err(e) = self.state.audit(&entry) {
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
        let mut managed = self.state.managed_tunnels()?;
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
        self.state.save_managed_tunnels(&managed)
    }

    fn forget(&self, id: &str) -> Result<(), StateError> {
        let mut managed = self.state.managed_tunnels()?;
        managed.tunnels.remove(id);
        self.state.save_managed_tunnels(&managed)
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
                self.audit("create", &want.name, Some(&t.id), fields, &Ok(()));
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
                self.audit("create", &want.name, None, fields, &Err(e.to_string()));
                Outcome::Failed(e.to_string())
            }
        }
    }

    /// After a 409: the tunnel there is ours to take only if name and authentication ID match.
    async fn adopt(&self, loc: &Location, want: &TunnelConfig, conflict: ApiError) -> Outcome {
        let all = match self.client.list_tunnels().await {
            Ok(all) => all,
            Err(e) => {
                return Outcome::Failed(format!(
                    "{conflict}; and listing tunnels to check it failed: {e}"
                ));
            }
        };
        let Some(found) = all
            .iter()
            .find(|t| t.name == want.name && t.authentication_id == want.authentication_id)
        else {
            self.audit(
                "create",
                &want.name,
                None,
                vec![],
                &Err(conflict.to_string()),
            );
            return Outcome::Failed(format!(
                "{conflict}; no tunnel with both this name and authentication ID exists, so popsel does not take one over"
            ));
        };
        let result = self
            .put(&found.id, loc, want, true)
            .await
            .map_err(|e| e.to_string());
        self.audit(
            "adopt",
            &want.name,
            Some(&found.id),
            vec!["location_id".into(), "psk".into()],
            &result,
        );
        match result {
            Ok(()) => self.settle(
                &found.id,
                loc,
                want,
                true,
                Outcome::Adopted {
                    id: found.id.clone(),
                },
            ),
            Err(e) => Outcome::Failed(e),
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
            Err(e) => Outcome::Failed(format!(
                "the API write succeeded but the state was not saved: {e}"
            )),
        }
    }

    async fn run(&self, config: &Config, action: &Action) -> Outcome {
        match action {
            Action::Create { location, tunnel } => match find(config, location, tunnel) {
                Some((loc, want)) => self.create(loc, want).await,
                None => Outcome::Failed("not in the config any more".into()),
            },
            Action::Update {
                location,
                tunnel,
                id,
                changes,
                psk,
            } => {
                let Some((loc, want)) = find(config, location, tunnel) else {
                    return Outcome::Failed("not in the config any more".into());
                };
                let mut fields: Vec<String> = changes.iter().map(|c| c.field.to_owned()).collect();
                if psk.is_some() {
                    fields.push("psk".into());
                }
                let result = self
                    .put(id, loc, want, psk.is_some())
                    .await
                    .map_err(|e| e.to_string());
                self.audit("update", tunnel, Some(id), fields, &result);
                match result {
                    Ok(()) => self.settle(id, loc, want, psk.is_some(), Outcome::Updated),
                    Err(e) => Outcome::Failed(e),
                }
            }
            Action::Delete { tunnel, id } => {
                let result = self
                    .client
                    .delete_tunnel(id)
                    .await
                    .map_err(|e| e.to_string());
                self.audit("delete", tunnel, Some(id), vec![], &result);
                match result.and_then(|()| self.forget(id).map_err(|e| e.to_string())) {
                    Ok(()) => Outcome::Deleted,
                    Err(e) => Outcome::Failed(e),
                }
            }
            Action::Unchanged { .. } | Action::Conflict { .. } | Action::Orphan { .. } => {
                Outcome::Nothing
            }
        }
    }
}

/// Carries `plan` out. One failed action does not stop the others.
pub async fn apply(
    client: &Client,
    config: &Config,
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
        let outcome = applier.run(config, action).await;
        report.results.push((action.clone(), outcome));
    }
    report
}
