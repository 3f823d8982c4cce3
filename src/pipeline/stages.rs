//! The stages as the pipeline runs them: each reads the generation it is given and the board,
//! does its I/O through the stage's own module, leaves its result on the board and exports it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::value::RawValue;

use super::fetch::{self, CatalogInUse};
use super::{
    Decision, Generation, Notice, Pipeline, REFUSAL_HOLD, Recovery, SELECTION_FILE, StageError,
    TunnelPlan, lock, measure,
};
use crate::atmos::Tunnel;
use crate::catalog::Catalog;
use crate::edge::{self, HandOff};
use crate::rank::{Refusals, rank_locations};
use crate::reconcile::apply::{self, load_managed, save_managed};
use crate::reconcile::{ApplyReport, ManagedTunnels};
use crate::select::select_all;
use crate::state::Loaded;
use crate::status;

impl Pipeline {
    /// Catalogue: from the API; for the agent, cached, and the cache used while the API is
    /// down.
    pub(super) async fn catalog(&self, generation: &Generation) -> Result<(), StageError> {
        // Read straight into the catalogue, the text kept for the cache: no document in
        // between (a 10,000-PoP catalogue: 12 ms instead of 52, `cargo bench --bench rank`).
        let read = |text: &str| {
            let catalog = Catalog::from_json(text)?;
            Ok((catalog, RawValue::from_string(text.to_owned())?))
        };
        let (catalog, document) = match generation.client.read_ipsec_pops(read).await {
            Ok(read) => read,
            Err(e) if self.caches_catalog() => {
                self.fall_back_on_cache(generation);
                return Err(StageError::CatalogRefresh(e));
            }
            Err(e) => return Err(e.into()),
        };
        let fetched = SystemTime::now();
        measure::announce_skipped(&catalog, &*self.report);
        if self.caches_catalog() {
            if let Err(e) = fetch::write_cache(&generation.state, &document, fetched) {
                self.report.notice(Notice::CacheNotWritten(e));
            }
        }
        self.export(|m| m.observe_catalog(&catalog, fetched));
        lock(&self.board).catalog = Some(CatalogInUse { catalog, fetched });
        Ok(())
    }

    fn fall_back_on_cache(&self, generation: &Generation) {
        if lock(&self.board).catalog.is_some() {
            return;
        }
        let state = &generation.state;
        match fetch::read_cache(state, SystemTime::now()) {
            Loaded::Found(cached) => {
                self.report.notice(Notice::CachedCatalog {
                    fetched: cached.fetched,
                });
                self.export(|m| m.observe_catalog(&cached.catalog, cached.fetched));
                lock(&self.board).catalog.get_or_insert(cached);
            }
            Loaded::Absent => {}
            Loaded::Damaged(problem) => self.report.notice(Notice::StateDamaged {
                damaged: state.set_aside(fetch::CATALOG_FILE, problem),
                recovery: Recovery::NoCachedCatalog,
            }),
        }
    }

    /// At the agent's start: the cached catalogue, when it was fetched less than `fresh_for`
    /// ago, is used as it is, and the refresh waits for its turn, so that a fleet restarted at
    /// once (an upgrade, a power cut) does not fetch the catalogue in the same second. Returns
    /// when it was fetched; `None` (nothing cached, too old, damaged: fetch it now) otherwise.
    pub fn catalog_from_cache(&self, fresh_for: Duration) -> Option<SystemTime> {
        if !self.caches_catalog() {
            return None;
        }
        let generation = self.generation();
        let now = SystemTime::now();
        let Loaded::Found(cached) = fetch::read_cache(&generation.state, now) else {
            return None;
        };
        let age = now.duration_since(cached.fetched).ok()?;
        if age >= fresh_for {
            return None;
        }
        measure::announce_skipped(&cached.catalog, &*self.report);
        self.export(|m| m.observe_catalog(&cached.catalog, cached.fetched));
        let fetched = cached.fetched;
        lock(&self.board).catalog.get_or_insert(cached);
        Some(fetched)
    }

    /// resolve → probe, over the PoPs of the catalogue in use the config allows.
    ///
    /// Every [`measure::FULL_ROUND_EVERY`]th round probes every address; the others only the
    /// contenders ([`measure::probed_every_round`]), the rest keeping what the last round found.
    pub(super) async fn measure(&self, generation: &Generation) -> Result<(), StageError> {
        let (pops, previous, contenders) = {
            let mut board = lock(&self.board);
            let pops = board
                .catalog
                .as_ref()
                .map(|c| generation.config.selection.filter.apply(&c.catalog.pops))
                .ok_or(StageError::NoCatalog)?;
            let round = board.probe_rounds;
            board.probe_rounds = round.wrapping_add(1);
            let contenders = (round % measure::FULL_ROUND_EVERY != 0)
                .then(|| measure::probed_every_round(&board.rankings, &board.selection))
                .filter(|c| !c.is_empty());
            (pops, board.survey.clone(), contenders)
        };
        let previous = previous.filter(|_| contenders.is_some());
        let probing = contenders
            .as_ref()
            .map_or(measure::Probing::Fixed, measure::Probing::Only);
        let (prober, socket_up) = {
            let mut slot = lock(&self.prober);
            let prober = slot.current(&generation.config.probe, &*self.report);
            (prober, slot.socket_up())
        };
        if let Some(up) = socket_up {
            self.export(|m| m.probe_socket(up));
        }
        let mut surveyed = measure::survey(
            pops,
            generation.dns.as_ref(),
            prober.as_deref(),
            &generation.config.probe,
            probing,
            &*self.report,
        )
        .await;
        let carried = measure::carry_over(&mut surveyed, previous.as_deref());
        self.export(|m| m.observe_probes(&surveyed, &carried));
        lock(&self.board).survey = Some(Arc::new(surveyed));
        Ok(())
    }

    /// rank → select: each location's ranking and its new selection.
    pub(super) fn decide(&self, generation: &Generation) -> Result<Decision, StageError> {
        let (surveyed, skipped, previous, refused) = {
            let mut board = lock(&self.board);
            let surveyed = board.survey.clone().ok_or(StageError::NoSurvey)?;
            let skipped = board
                .catalog
                .as_ref()
                .map(|c| c.catalog.skipped.clone())
                .unwrap_or_default();
            let now = Instant::now();
            board.refused.retain(|_, until| *until > now);
            let mut refused = Refusals::new();
            for (location, ip) in board.refused.keys() {
                refused.entry(location.clone()).or_default().push(*ip);
            }
            (surveyed, skipped, board.selection.clone(), refused)
        };
        let locations = &generation.config.locations;
        let rankings = rank_locations(locations, &surveyed, &skipped, &refused);
        let (selection, changes) = select_all(
            locations,
            &generation.config.selection,
            &rankings,
            &previous,
            SystemTime::now(),
        );
        Ok(Decision {
            rankings,
            previous,
            selection,
            changes,
        })
    }

    /// Hand-off: the selection to the router (charon over VICI, or swanctl files; `on_change`),
    /// then persisted as handed off, and exported with the SAs charon holds.
    pub(super) async fn hand_off(
        &self,
        generation: &Generation,
        decision: Decision,
    ) -> Result<HandOff, StageError> {
        let handed = edge::hand_off(
            &generation.config.edge,
            &generation.config.locations,
            &decision.previous,
            &decision.selection,
            &decision.changes,
        )
        .await;
        // What the metrics show is what was handed off and persisted.
        self.export(|m| {
            m.observe_rankings(&decision.rankings, &handed.persisted);
            m.observe_selection(&handed.persisted, &handed.handed_off);
            if let Some(sas) = &handed.ipsec {
                m.observe_ipsec(sas);
            }
        });
        for change in &handed.handed_off {
            self.report
                .notice(Notice::SelectionChanged(Box::new(change.clone())));
        }
        generation
            .state
            .write_json(SELECTION_FILE, &handed.persisted)?;
        let mut board = lock(&self.board);
        board.rankings = Arc::new(decision.rankings);
        board.selection = handed.persisted.clone();
        let until = Instant::now() + REFUSAL_HOLD;
        for (location, ip) in &handed.refused {
            board.refused.insert((location.clone(), *ip), until);
        }
        Ok(handed)
    }

    /// Reconcile, planning: the API's tunnels against the config and the managed tunnels.
    ///
    /// The agent reads the site's own tunnels, each by its id: a run costs the API as many
    /// requests as the site has tunnels, however large the account. The whole account (every
    /// page) is read only when that cannot do: for `popsel plan` (`whole`); when a configured
    /// tunnel is not managed yet (to create, or adopt); when a managed one is gone (404) or
    /// the plan would create or finds a conflict; when `tunnels.json` is damaged or absent;
    /// and for the audit, once every `[agent] audit_interval`, for what only the account shows
    /// (a tunnel in the way, a managed one forgotten).
    pub(super) async fn plan_tunnels(
        &self,
        generation: &Generation,
        prune: bool,
        whole: bool,
    ) -> Result<TunnelPlan, StageError> {
        if let (false, Loaded::Found(managed)) = (whole, load_managed(&generation.state)) {
            if let Some(plan) = self.plan_by_id(generation, managed, prune).await? {
                return Ok(plan);
            }
        }
        let actual = generation.client.list::<Tunnel>().await?;
        let (mut managed, rebuilt) = self.managed_tunnels(generation, &actual);
        let loaded = managed.clone();
        let schedule = &generation.config.schedule;
        managed.plan_audit(schedule.next_audit(SystemTime::now(), fastrand::f64()));
        let seen = managed.note_listing(&actual);
        for m in seen.missing {
            self.report.notice(Notice::ManagedTunnelMissing(m));
        }
        for m in seen.forgotten {
            self.report.notice(Notice::ManagedTunnelGone(m));
        }
        let fingerprints = self.fingerprints(generation, &mut managed)?;
        let plan = crate::reconcile::plan::plan(
            &generation.config.locations,
            &actual,
            &managed,
            &fingerprints,
            prune,
        );
        Ok(TunnelPlan {
            plan,
            save_first: rebuilt || managed != loaded,
            managed,
            fingerprints,
        })
    }

    /// Reconcile, planning from the managed tunnels read by id; `None` when the whole account
    /// must be read instead (see [`plan_tunnels`](Self::plan_tunnels)).
    async fn plan_by_id(
        &self,
        generation: &Generation,
        mut managed: ManagedTunnels,
        prune: bool,
    ) -> Result<Option<TunnelPlan>, StageError> {
        let loaded = managed.clone();
        let locations = &generation.config.locations;
        let schedule = &generation.config.schedule;
        let now = SystemTime::now();
        if managed.next_audit.is_none() {
            managed.plan_audit(schedule.first_audit(now, fastrand::f64()));
        }
        if managed.audit_due(now, schedule.audit_interval) {
            tracing::debug!("reconcile: the audit of the account is due");
            return Ok(None);
        }
        if let Some(tunnel) = managed.first_unmanaged(locations) {
            tracing::debug!(tunnel, "reconcile: not managed yet, the account is read");
            return Ok(None);
        }
        let mut actual = Vec::with_capacity(managed.tunnels.len());
        for id in managed.tunnels.keys() {
            match generation.client.get::<Tunnel>(id).await {
                Ok(tunnel) => actual.push(tunnel),
                Err(e) if e.is_not_found() => {
                    tracing::debug!(
                        id,
                        "reconcile: a managed tunnel is gone, the account is read"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let fingerprints = self.fingerprints(generation, &mut managed)?;
        let plan = crate::reconcile::plan::plan(locations, &actual, &managed, &fingerprints, prune);
        if plan.needs_account() {
            return Ok(None);
        }
        Ok(Some(TunnelPlan {
            plan,
            save_first: managed != loaded,
            managed,
            fingerprints,
        }))
    }

    /// Reconcile, carrying the plan out.
    pub(super) async fn reconcile(
        &self,
        generation: &Generation,
        tunnels: TunnelPlan,
    ) -> Result<ApplyReport, StageError> {
        if tunnels.save_first {
            save_managed(&generation.state, &tunnels.managed)?;
        }
        let report = apply::apply(
            &generation.client,
            &generation.config.locations,
            &tunnels.plan,
            &generation.state,
            &tunnels.fingerprints,
        )
        .await;
        for (action, outcome) in &report.results {
            if let Some(done) = outcome.written() {
                self.report.notice(Notice::TunnelReconciled {
                    action: Box::new(action.clone()),
                    done,
                });
            }
        }
        Ok(report)
    }

    /// Status: what Atmos says of the tunnels and connectors, exported.
    pub(super) async fn status(&self, generation: &Generation) -> Result<(), StageError> {
        // Read only: a damaged file is the reconcile stage's to set aside and re-learn (it
        // has the API's listing); meanwhile the tunnels' states are unknown.
        let managed = match load_managed(&generation.state) {
            Loaded::Found(managed) => managed,
            Loaded::Absent | Loaded::Damaged(_) => ManagedTunnels::default(),
        };
        let statuses = status::poll(
            &generation.client,
            &generation.config.locations,
            &managed,
            &generation.config.status,
        )
        .await;
        self.export(|m| {
            m.observe_tunnels(&statuses.tunnels);
            m.observe_connectors(&statuses.connectors);
        });
        if statuses.failures.is_empty() {
            Ok(())
        } else {
            Err(StageError::Status(statuses.failures))
        }
    }
}
