//! The pipeline: the one place that sequences the stages.
//!
//! ```text
//!            catalogue ─► resolve ─► probe ─► rank ─► select ─► hand-off ─┐
//!  (API, cache or file)                                                   ├─► export
//!                             reconcile (plan ─► apply) ─► status ────────┘
//! ```
//!
//! Each stage lives in its own module (`catalog`, `resolve`, `probe`, `rank`, `select`,
//! `reconcile`, `edge`, `status`, `metrics`), most of them a pure core with a thin I/O shell;
//! here they are run in order against one [`Generation`] (config, client, state dir, resolver)
//! and leave their results on a board for the next. The commands differ only in which stages they run and how often:
//!
//! - `popsel rank`: [`rank_once`]: catalogue → resolve → probe → rank, one site.
//! - `popsel plan`: [`Pipeline::plan`]: catalogue → … → select, and the reconcile plan.
//! - `popsel apply`: [`Pipeline::apply`] after `plan`: reconcile → hand-off.
//! - `popsel run`: [`Pipeline::run_job`] for each of the [`JOBS`], each on its own interval
//!   (`agent`, `schedule`); `--once` is [`Pipeline::cycle`]: every stage once, in order.

mod error;
mod fetch;
mod generation;
mod measure;
mod notice;
mod recover;
mod sockets;
mod stages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::edge::HandOff;
use crate::metrics::Metrics;
use crate::rank::Rankings;
use crate::reconcile::apply::load_managed;
use crate::reconcile::{ApplyReport, Fingerprinter, ManagedTunnels, Plan};
use crate::schedule::Stage;
use crate::select::{Change, Selection};
use crate::state::{Loaded, StateError};
use crate::survey::Survey;

pub use error::{StageError, TunnelFailure};
pub use fetch::{CatalogFileError, CatalogInUse, catalog_file};
pub use generation::Generation;
pub use measure::{NothingToRank, RankRequest, probes_from_here, rank_once};
pub use notice::{Notice, Recovery, Report};
pub use sockets::ProberSlot;

/// The agent's jobs: the stages run together, in this order, each job on the interval of its
/// first stage. Flattened, they are one full cycle (`Stage::ALL`).
pub const JOBS: [&[Stage]; 4] = [
    &[Stage::Catalog],
    &[Stage::Probe, Stage::Select],
    &[Stage::Reconcile],
    &[Stage::Status],
];

/// `selection.json` in the state dir: the selection and its evidence, the hand-off to the
/// router and the anti-flap memory.
pub const SELECTION_FILE: &str = "selection.json";

/// What the stages leave for each other.
#[derive(Default)]
struct Board {
    catalog: Option<CatalogInUse>,
    survey: Option<Arc<Survey>>,
    rankings: Arc<Rankings>,
    selection: Selection,
    /// Endpoints whose PoP refused a location's tunnel, until when they are avoided.
    refused: HashMap<(String, IpAddr), Instant>,
    /// Probe rounds so far (which are full: `measure::FULL_ROUND_EVERY`).
    probe_rounds: u64,
}

/// How long an endpoint whose PoP refused a location's tunnel is ranked as silent. Then it may
/// be chosen again, through the anti-flap rounds like any challenger.
const REFUSAL_HOLD: Duration = Duration::from_secs(300);

/// What rank → select decided, before anything is handed off.
pub struct Decision {
    pub rankings: Rankings,
    pub previous: Selection,
    pub selection: Selection,
    pub changes: Vec<Change>,
}

/// What reconcile would do, before any write.
pub struct TunnelPlan {
    pub plan: Plan,
    /// The managed tunnels after this listing: missing counts, those forgotten, those
    /// re-learned from a damaged `tunnels.json`.
    managed: ManagedTunnels,
    /// Whether `managed` is saved before the plan is carried out: when this listing changed
    /// it, and always for `apply`.
    save_first: bool,
    fingerprints: Fingerprinter,
}

/// How one of the agent's jobs went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRun {
    /// Every stage succeeded.
    pub succeeded: bool,
    /// A stage failed because the API could not be used (it failed, throttled, or calls were
    /// held back): the job backs off.
    pub api_unavailable: bool,
}

/// `popsel plan`'s answer, for `popsel apply` to carry out.
pub struct Planned {
    pub decision: Decision,
    pub tunnels: TunnelPlan,
}

/// What `popsel apply` did.
pub struct Applied {
    pub report: ApplyReport,
    pub hand_off: HandOff,
}

/// How a command uses the pipeline.
pub enum Mode {
    /// `plan` and `apply`: one pass, nothing cached, nothing exported.
    OneShot,
    /// The agent: stages run again and again; the last good catalogue is cached in the state
    /// dir and used while the API is down, and every result is exported to the metrics.
    Agent(Arc<Metrics>),
}

pub struct Pipeline {
    generation: RwLock<Arc<Generation>>,
    /// The probe engine, opened again when it could not be or its device was replaced.
    prober: Mutex<ProberSlot>,
    board: Mutex<Board>,
    mode: Mode,
    report: Box<dyn Report>,
}

/// A poisoned lock only means a panic elsewhere mid-update; the data is still the last good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pipeline {
    /// A pipeline over `generation`, starting from the selection its state dir remembers (a
    /// fresh one, said in a notice, when that is damaged).
    pub fn new(
        generation: Generation,
        prober: ProberSlot,
        mode: Mode,
        report: Box<dyn Report>,
    ) -> Result<Pipeline, StateError> {
        let selection = recover::load_selection(&generation.state, &*report);
        Ok(Pipeline {
            generation: RwLock::new(Arc::new(generation)),
            prober: Mutex::new(prober),
            board: Mutex::new(Board {
                selection,
                ..Board::default()
            }),
            mode,
            report,
        })
    }

    /// The generation in use. A stage run takes it once and keeps it to its end.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps a new generation in, in one step (a reload).
    pub fn swap(&self, generation: Generation) {
        *self.generation.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
    }

    pub fn report(&self) -> &dyn Report {
        &*self.report
    }

    /// Ready once a catalogue (fresh or cached) and one probe round exist.
    pub fn ready(&self) -> bool {
        let board = lock(&self.board);
        board.catalog.is_some() && board.survey.is_some()
    }

    pub fn selection(&self) -> Selection {
        lock(&self.board).selection.clone()
    }

    pub fn rankings(&self) -> Arc<Rankings> {
        lock(&self.board).rankings.clone()
    }

    /// The export stage: results go to the agent's metrics; one-shot commands have none.
    fn export(&self, f: impl FnOnce(&Metrics)) {
        if let Mode::Agent(metrics) = &self.mode {
            f(metrics);
        }
    }

    /// The agent caches the last good catalogue and falls back on it; one-shot commands do not.
    fn caches_catalog(&self) -> bool {
        matches!(self.mode, Mode::Agent(_))
    }

    /// One of the agent's jobs ([`run`](Self::run)); whether all its stages succeeded.
    pub async fn run_job(&self, job: &[Stage]) -> bool {
        self.run(job).await.succeeded
    }

    /// One of the agent's jobs: its stages in order, each counted and any failure reported.
    ///
    /// A panic in a stage ends that stage's run as a failure, like any other: counted,
    /// reported, and the stage runs again on its interval while the others go on. The agent is
    /// not ended: a restart would only run into the same panic, and what the stages share
    /// stays usable (the board's and the generation's locks shrug off poisoning; a stage
    /// commits its result at its end, so a run cut short leaves the last good one).
    pub async fn run(&self, job: &[Stage]) -> JobRun {
        use futures_util::FutureExt;
        let mut run = JobRun {
            succeeded: true,
            api_unavailable: false,
        };
        for &stage in job {
            let result = std::panic::AssertUnwindSafe(self.run_stage(stage))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_owned());
                    Err(StageError::Panicked(message))
                });
            let succeeded = result.is_ok();
            self.export(|m| m.stage_ran(stage, succeeded, SystemTime::now()));
            if let Err(error) = result {
                run.api_unavailable |= error.api_unavailable();
                self.report.notice(Notice::StageFailed { stage, error });
            }
            run.succeeded &= succeeded;
        }
        run
    }

    /// Every stage once, in order (`popsel run --once`, the demo). Returns whether all
    /// succeeded.
    pub async fn cycle(&self) -> bool {
        let mut ok = true;
        for job in JOBS {
            ok &= self.run_job(job).await;
        }
        ok
    }

    /// One of the agent's stages, against one generation from start to end.
    async fn run_stage(&self, stage: Stage) -> Result<(), StageError> {
        let generation = self.generation();
        let generation = &*generation;
        match stage {
            Stage::Catalog => self.catalog(generation).await,
            Stage::Probe => self.measure(generation).await,
            Stage::Select => {
                let decision = self.decide(generation)?;
                let handed = self.hand_off(generation, decision).await?;
                if handed.failures.is_empty() {
                    Ok(())
                } else {
                    Err(StageError::HandOff(handed.failures))
                }
            }
            Stage::Reconcile => {
                let tunnels = self.plan_tunnels(generation, false, false).await?;
                let failures = TunnelFailure::of(self.reconcile(generation, tunnels).await?);
                if failures.is_empty() {
                    Ok(())
                } else {
                    Err(StageError::Tunnels(failures))
                }
            }
            Stage::Status => self.status(generation).await,
        }
    }

    /// Whether a catalogue is in use (fetched, or read from the cache).
    pub fn has_catalog(&self) -> bool {
        lock(&self.board).catalog.is_some()
    }

    /// Whether a configured tunnel is not managed yet (a new site, or one added to the
    /// config), so that the first reconcile run should not wait.
    pub fn tunnels_pending(&self) -> bool {
        let generation = self.generation();
        match load_managed(&generation.state) {
            Loaded::Found(managed) => managed
                .first_unmanaged(&generation.config.locations)
                .is_some(),
            Loaded::Absent | Loaded::Damaged(_) => true,
        }
    }

    /// `popsel plan`: catalogue → resolve → probe → rank → select, and the reconcile plan.
    /// Writes nothing (but the state dir's fingerprint key, made on first use).
    pub async fn plan(&self, prune: bool) -> Result<Planned, StageError> {
        let generation = self.generation();
        let generation = &*generation;
        self.catalog(generation).await?;
        self.measure(generation).await?;
        let decision = self.decide(generation)?;
        let mut tunnels = self.plan_tunnels(generation, prune, true).await?;
        tunnels.save_first = true;
        Ok(Planned { decision, tunnels })
    }

    /// The reconcile plan alone, from the whole account as `popsel plan` makes it, for the
    /// selection and catalogue the stages have left; nothing is written (but the fingerprint
    /// key, made on first use).
    pub async fn tunnel_plan(&self) -> Result<Plan, StageError> {
        let generation = self.generation();
        Ok(self.plan_tunnels(&generation, false, true).await?.plan)
    }

    /// `popsel apply`, after `plan`: reconcile → hand-off.
    pub async fn apply(&self, planned: Planned) -> Result<Applied, StageError> {
        let generation = self.generation();
        let generation = &*generation;
        let report = self.reconcile(generation, planned.tunnels).await?;
        let hand_off = self.hand_off(generation, planned.decision).await?;
        Ok(Applied { report, hand_off })
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
