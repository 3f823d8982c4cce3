//! The agent's stages: each reads what it needs, does its I/O, and leaves its result for the
//! others. Failures are returned for counting; none is fatal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{Agent, lock};
use crate::atmos::{ConnectorState, PopDocument, TunnelState};
use crate::catalog::Catalog;
use crate::edge;
use crate::locations::{rank_locations, select_all};
use crate::reconcile::{self, Outcome};
use crate::state::SELECTION_FILE;
use crate::survey::survey;

const CATALOG_FILE: &str = "catalog.json";

/// `catalog.json`: the last good catalogue, as the API sent it.
#[derive(Serialize, Deserialize)]
struct CachedCatalog {
    fetched_unix: f64,
    document: PopDocument,
}

impl Agent {
    pub(super) async fn catalog_stage(&self) -> anyhow::Result<()> {
        let state = self.state();
        match self.client().ipsec_pops().await {
            Ok(document) => {
                let now = SystemTime::now();
                let catalog = Catalog::from_document(&document);
                for s in &catalog.skipped {
                    tracing::warn!(country = %s.country, city = %s.city, reason = %s.reason, "catalogue entry skipped");
                }
                let cached = CachedCatalog {
                    fetched_unix: now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                    document,
                };
                if let Err(e) = state.write_json(CATALOG_FILE, &cached) {
                    tracing::warn!("{e}");
                }
                self.metrics.observe_catalog(&catalog, now);
                *lock(&self.catalog) = Some((catalog, now));
                Ok(())
            }
            Err(e) => {
                let mut current = lock(&self.catalog);
                if current.is_none() {
                    if let Ok(Some(cached)) = state.read_json::<CachedCatalog>(CATALOG_FILE) {
                        let fetched = SystemTime::UNIX_EPOCH
                            + Duration::from_secs_f64(cached.fetched_unix.max(0.0));
                        let catalog = Catalog::from_document(&cached.document);
                        tracing::warn!("the API is unreachable; using the cached catalogue");
                        self.metrics.observe_catalog(&catalog, fetched);
                        *current = Some((catalog, fetched));
                    }
                }
                Err(e).context("catalogue refresh")
            }
        }
    }

    pub(super) async fn probe_stage(&self) -> anyhow::Result<()> {
        let config = self.config();
        let Some(pops) = lock(&self.catalog)
            .as_ref()
            .map(|(c, _)| config.selection.filter.apply(&c.pops))
        else {
            bail!("no catalogue yet (neither from the API nor cached)");
        };
        let dns = self.dns();
        let surveyed = survey(
            pops,
            dns.as_ref(),
            self.prober.as_ref(),
            &config.probe,
            &|_, _| {},
        )
        .await;
        self.metrics.observe_probes(&surveyed);
        *lock(&self.survey) = Some(Arc::new(surveyed));
        Ok(())
    }

    pub(super) async fn select_stage(&self) -> anyhow::Result<()> {
        let config = self.config();
        let Some(surveyed) = lock(&self.survey).clone() else {
            bail!("no probe round yet");
        };
        let skipped = lock(&self.catalog)
            .as_ref()
            .map(|(c, _)| c.skipped.clone())
            .unwrap_or_default();
        let rankings = rank_locations(&config, &surveyed, &skipped);
        let previous = self.selection();
        let (selection, changes) = select_all(&config, &rankings, &previous, SystemTime::now());
        let (persisted, stood, problems) =
            edge::hand_off(&config, &previous, &selection, &changes).await;
        // What the metrics show is what was handed off and persisted.
        self.metrics.observe_rankings(&rankings);
        self.metrics.observe_selection(&persisted, &stood);
        for c in &stood {
            tracing::info!(location = %c.location, role = %c.role,
                old = %c.old.as_ref().map_or("(none)".into(), |o| o.pop.to_string()),
                new = %c.new.as_ref().map_or("(none)".into(), |n| n.pop.to_string()),
                reason = %c.reason, "selection changed");
        }
        self.state().write_json(SELECTION_FILE, &persisted)?;
        *lock(&self.rankings) = rankings;
        *lock(&self.selection) = persisted;
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }

    pub(super) async fn reconcile_stage(&self) -> anyhow::Result<()> {
        let config = self.config();
        let client = self.client();
        let state = self.state();
        let actual = client.list_tunnels().await?;
        let mut managed = state.managed_tunnels()?;
        let gone = reconcile::forget_gone(&mut managed, &actual);
        if !gone.is_empty() {
            for m in &gone {
                tracing::warn!(tunnel = %m.name, id = %m.id, "a managed tunnel is gone from the API; it will be created anew");
            }
            state.save_managed_tunnels(&managed)?;
        }
        let fingerprints = state.fingerprint_key()?;
        let plan = reconcile::plan(&config, &actual, &managed, &fingerprints, false);
        let report = reconcile::apply(&client, &config, &plan, &state, &fingerprints).await;
        let mut problems = Vec::new();
        for (action, outcome) in &report.results {
            match outcome {
                Outcome::Nothing => {}
                Outcome::Failed(e) => problems.push(e.clone()),
                done => tracing::info!(?action, ?done, "tunnel reconciled"),
            }
            if let reconcile::Action::Conflict { tunnel, reason, .. } = action {
                problems.push(format!("tunnel {tunnel:?}: {reason}"));
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }

    pub(super) async fn status_stage(&self) -> anyhow::Result<()> {
        let config = self.config();
        let client = self.client();
        let managed = self.state().managed_tunnels()?;
        let mut problems = Vec::new();
        let mut tunnels = Vec::new();
        for (loc, t) in config.tunnels() {
            let id = managed
                .tunnels
                .values()
                .find(|m| m.name == t.name)
                .map(|m| m.id.clone());
            let state = match id {
                None => TunnelState::Unknown,
                Some(id) => match client.tunnel_status(&id).await {
                    Ok(s) => s.status,
                    Err(e) => {
                        problems.push(e.to_string());
                        TunnelState::Unknown
                    }
                },
            };
            tunnels.push((loc.name.clone(), t.name.clone(), state));
        }
        self.metrics.observe_tunnels(&tunnels);
        let connectors = match self.connector_statuses(&config.connectors).await {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string());
                Vec::new()
            }
        };
        self.metrics.observe_connectors(&connectors);
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }

    /// The watched connectors (all when the list is empty), by name.
    async fn connector_statuses(
        &self,
        watch: &[String],
    ) -> anyhow::Result<Vec<(String, ConnectorState)>> {
        let client = self.client();
        let connectors = if watch.is_empty() {
            client.list_connectors().await?
        } else {
            let mut out = Vec::new();
            for id in watch {
                out.push(client.get_connector(id).await?);
            }
            out
        };
        let mut statuses = Vec::new();
        for c in connectors {
            let state = client
                .connector_status(&c.id)
                .await
                .map(|s| s.status)
                .unwrap_or(ConnectorState::Unknown);
            let name = if c.name.is_empty() {
                c.id.clone()
            } else {
                c.name.clone()
            };
            statuses.push((name, state));
        }
        Ok(statuses)
    }
}
