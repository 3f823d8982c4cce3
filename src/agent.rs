//! `popsel run`: the agent. The pipeline's stages each run on their own interval (catalogue
//! refresh; probing with selection and hand-off right after; tunnel reconciliation; status
//! polling), every run jittered so that a fleet of routers does not call the API in lockstep.
//! A job whose API calls fail backs off across its runs, and every API call of the agent goes
//! through one [`Gate`], which holds them all back while the API throttles or fails: an outage
//! costs the API less than a working day, and the fleet does not come back all at once.
//!
//! A failed stage (a panic included) is counted and logged and never stops the others; the
//! process never exits on an API or DNS error. The last good catalogue is cached in the state
//! dir and used when the API is down. `/healthz` turns unhealthy when a stage stops completing
//! runs ([`Liveness`]). SIGTERM/SIGINT: stages under way get 5 s to finish, then are abandoned;
//! state is written as each stage ends, so nothing is lost. SIGHUP: the config is reloaded as a
//! new generation, swapped in whole; an invalid one is reported and the old one kept. Under
//! systemd, each of these is notified ([`notify`]).

mod http;
mod log;
mod notify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use crate::atmos::{Client, Gate, RetryPolicy};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{self, Generation, JOBS, Mode, Pipeline, ProberSlot};
use crate::probe::icmp::Prober;
use crate::rank::Rankings;
use crate::reconcile::Plan;
use crate::schedule::{BACKOFF_CAP, Schedule, Stage};
use crate::select::Selection;

pub use http::serve_metrics;
pub use log::LogReport;

/// Retries of the agent's API calls: short, so that a stage ends within its interval when the
/// API is down and the failure shows in the metrics promptly; the next run tries again anyway.
pub const STAGE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
    max_elapsed: Duration::from_secs(5),
};

/// Builds the API client of a config; the agent calls it again after a reload.
pub type ClientFactory =
    Box<dyn Fn(&Config, &Arc<Metrics>) -> anyhow::Result<Client> + Send + Sync>;

pub struct RunOptions {
    /// One cycle of every stage, in order, then return.
    pub once: bool,
    /// Where to reload the config from on SIGHUP.
    pub config_path: Option<PathBuf>,
    /// SIGHUP, installed by the caller before it read the config, so that one that comes
    /// during start-up is not fatal: it stays pending and reloads the config once the agent
    /// runs. `None`: no reload.
    #[cfg(unix)]
    pub hangups: Option<tokio::signal::unix::Signal>,
}

/// How [`run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<S> {
    /// `once`: the cycle ran to its end; whether every stage succeeded.
    Cycle(bool),
    /// `shutdown` resolved (with what it resolved to: which signal).
    Stopped(S),
}

/// The pipeline, scheduled.
pub struct Agent {
    pub metrics: Arc<Metrics>,
    pipeline: Pipeline,
    make_client: ClientFactory,
    liveness: Liveness,
    /// Every client's, across reloads.
    gate: Arc<Gate>,
    /// What systemd is told (nothing when it gave no notification socket).
    systemd: notify::Systemd,
}

/// The agent's gate: the first backoff as long as the shortest interval of a job that calls
/// the API, the longest [`BACKOFF_CAP`] of them, like a job's own backoff.
fn gate_for(schedule: &Schedule) -> Arc<Gate> {
    let shortest = schedule.shortest_api_interval();
    Gate::new(shortest, shortest.saturating_mul(BACKOFF_CAP))
}

impl Agent {
    /// Opens the state dir and the ICMP sockets (unless `no_probe`, or no location is local),
    /// reads the previous selection.
    pub fn new(
        config: Config,
        make_client: ClientFactory,
        no_probe: bool,
    ) -> anyhow::Result<Arc<Agent>> {
        let prober = ProberSlot::open(&config.locations, no_probe, &config.probe, &LogReport);
        Agent::with_prober_slot(config, make_client, prober)
    }

    /// [`Agent::new`] with the probe engine given: `popsel demo` opens its sockets inside its
    /// latency lab's network namespace, and they are never opened again elsewhere. `None`:
    /// every location ranked by distance.
    pub fn with_prober(
        config: Config,
        make_client: ClientFactory,
        prober: Option<Prober>,
    ) -> anyhow::Result<Arc<Agent>> {
        Agent::with_prober_slot(config, make_client, ProberSlot::given(prober))
    }

    fn with_prober_slot(
        config: Config,
        make_client: ClientFactory,
        prober: ProberSlot,
    ) -> anyhow::Result<Arc<Agent>> {
        let metrics = Arc::new(Metrics::with_series(config.metrics.series));
        let report = Box::new(LogReport);
        let gate = gate_for(&config.schedule);
        let client = make_client(&config, &metrics)?.with_gate(gate.clone());
        if let Some(up) = prober.socket_up() {
            metrics.probe_socket(up);
        }
        metrics.schedule(&config.schedule);
        let generation = Generation::new(config, client, true, &*report)?;
        let pipeline = Pipeline::new(generation, prober, Mode::Agent(metrics.clone()), report)?;
        Ok(Arc::new(Agent {
            metrics,
            pipeline,
            make_client,
            liveness: Liveness::default(),
            gate,
            systemd: notify::Systemd::from_env(),
        }))
    }

    pub fn generation(&self) -> Arc<Generation> {
        self.pipeline.generation()
    }

    /// Ready once a catalogue (fresh or cached) and one probe round exist.
    pub fn ready(&self) -> bool {
        self.pipeline.ready()
    }

    pub fn selection(&self) -> Selection {
        self.pipeline.selection()
    }

    pub fn rankings(&self) -> Arc<Rankings> {
        self.pipeline.rankings()
    }

    /// Builds a new generation from `config` (SIGHUP) and swaps it in whole; on error the old
    /// one stays.
    pub fn reload(&self, config: Config) -> anyhow::Result<()> {
        let client = (self.make_client)(&config, &self.metrics)?.with_gate(self.gate.clone());
        let schedule = config.schedule;
        let generation = Generation::new(config, client, true, self.pipeline.report())?;
        self.pipeline.swap(generation);
        self.metrics.schedule(&schedule);
        Ok(())
    }

    /// Every stage once, in order. Returns whether all succeeded.
    pub async fn cycle(&self) -> bool {
        self.pipeline.cycle().await
    }

    /// One job's stages once, in order, as [`cycle`](Self::cycle) runs each of the [`JOBS`]
    /// (`popsel demo`, which shows the reconcile plan before the reconcile job carries it out).
    /// Returns whether all succeeded.
    pub async fn run_job(&self, job: &[Stage]) -> bool {
        self.pipeline.run_job(job).await
    }

    /// What the reconcile stage would do now, as `popsel plan` shows it; nothing is written.
    pub async fn tunnel_plan(&self) -> Result<Plan, pipeline::StageError> {
        self.pipeline.tunnel_plan().await
    }

    /// The scheduled stages that have completed no run for 3 of their intervals (`/healthz`).
    /// None before [`run`] schedules them (`--once`, the demo).
    pub fn overdue(&self) -> Vec<Overdue> {
        self.liveness.overdue(Instant::now())
    }

    /// The interval the loop of `stage` waits, in the generation in use.
    fn interval(&self, stage: Stage) -> Duration {
        self.generation().config.schedule.interval(stage)
    }

    /// Runs `stages` in order, each a job of its own, noting each completed run, and telling
    /// systemd once the agent is ready. Returns whether one of them failed because the API
    /// could not be used.
    async fn run_stages(&self, stages: &[Stage]) -> bool {
        let mut api_unavailable = false;
        for &stage in stages {
            api_unavailable |= self.pipeline.run(&[stage]).await.api_unavailable;
            self.liveness
                .completed(stage, Instant::now(), self.interval(stage));
            if self.ready() {
                self.systemd.ready();
            }
        }
        api_unavailable
    }
}

/// How many of its intervals a stage may go without completing a run before `/healthz` says
/// the agent is stuck.
pub const OVERDUE_INTERVALS: u32 = 3;

/// When each scheduled stage last showed life: its last completed run, or when its first run
/// was due.
///
/// A run counts when it completes, failed or not: a stage whose API is down fails every run,
/// and that is for the alerts (`popsel_stage_failures_total`), not for a restart, which would
/// not bring the API back. What a restart does cure is a stage that stopped completing runs
/// (a hang nothing times out, a loop gone), so that is what `/healthz` reports. Every I/O of a
/// stage is bounded (API calls by the agent's retry budget, DNS and ICMP by their timeouts,
/// the hook by `on_change_timeout`), so a live stage completes a run well within the two
/// intervals the rule leaves it after its wait.
#[derive(Default)]
pub struct Liveness(Mutex<HashMap<Stage, Life>>);

#[derive(Debug, Clone, Copy)]
struct Life {
    since: Instant,
    /// The interval the stage's loop waits after `since`, as it was then: a reload that
    /// changes it applies from the loop's next run, and so to the rule.
    interval: Duration,
}

/// A stage that has completed no run for [`OVERDUE_INTERVALS`] of its intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    pub stage: Stage,
    /// Since its last completed run (or since its first run was due).
    pub silent: Duration,
    pub interval: Duration,
}

impl std::fmt::Display for Overdue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} has completed no run for {:.1}s, over {OVERDUE_INTERVALS} of its {} intervals",
            self.stage.as_str(),
            self.silent.as_secs_f64(),
            humantime::format_duration(self.interval)
        )
    }
}

impl Liveness {
    fn stages(&self) -> std::sync::MutexGuard<'_, HashMap<Stage, Life>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on `stage` is expected to complete a run every `interval`, the first one due
    /// at `due`. A stage that has completed a run already keeps that.
    pub fn expect(&self, stage: Stage, due: Instant, interval: Duration) {
        self.stages().entry(stage).or_insert(Life {
            since: due,
            interval,
        });
    }

    /// `stage` completed a run at `at`; its loop now waits `interval`.
    pub fn completed(&self, stage: Stage, at: Instant, interval: Duration) {
        self.stages().insert(
            stage,
            Life {
                since: at,
                interval,
            },
        );
    }

    /// `stage`'s loop, after its last completed run, waits `wait` (a backoff) rather than its
    /// interval: the rule gives it that much more time.
    pub fn waits(&self, stage: Stage, wait: Duration) {
        if let Some(life) = self.stages().get_mut(&stage) {
            life.interval = life.interval.max(wait);
        }
    }

    /// The expected stages silent for more than [`OVERDUE_INTERVALS`] of their intervals as
    /// of `now`, in the order of a cycle.
    pub fn overdue(&self, now: Instant) -> Vec<Overdue> {
        let stages = self.stages();
        Stage::ALL
            .into_iter()
            .filter_map(|stage| {
                let life = *stages.get(&stage)?;
                let silent = now.saturating_duration_since(life.since);
                (silent > life.interval.saturating_mul(OVERDUE_INTERVALS)).then_some(Overdue {
                    stage,
                    silent,
                    interval: life.interval,
                })
            })
            .collect()
    }
}

/// A job's loop: the first run after `first`, then one starting every interval of its first
/// stage, jittered, and backed off while its API calls fail ([`Schedule::wait`],
/// [`until_next`]; read afresh from the generation in use each time, so a reload applies),
/// until shutdown.
async fn every(
    agent: Arc<Agent>,
    job: &'static [Stage],
    first: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    for &stage in job {
        let interval = agent.interval(stage);
        agent
            .liveness
            .expect(stage, Instant::now() + first, interval);
    }
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = shutdown.changed() => return,
    }
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let api_unavailable = agent.run_stages(job).await;
        failures = if api_unavailable {
            failures.saturating_add(1)
        } else {
            0
        };
        let schedule = agent.generation().config.schedule;
        let (wait, interval) = next_wait(&agent, &schedule, job[0], failures);
        for &stage in job {
            agent.liveness.waits(stage, wait);
        }
        tokio::select! {
            _ = tokio::time::sleep(until_next(wait, interval, started.elapsed())) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How long after the start of a run of the job that starts with `stage` the next starts, and
/// the interval that stands for the job's pace ([`until_next`]): the schedule's, but for the
/// catalogue while the agent has none ([`Schedule::catalog_missing_wait`]).
fn next_wait(
    agent: &Agent,
    schedule: &Schedule,
    stage: Stage,
    failures: u32,
) -> (Duration, Duration) {
    if stage == Stage::Catalog && !agent.pipeline.has_catalog() {
        let wait = schedule.catalog_missing_wait(failures.max(1), fastrand::f64());
        return (wait, schedule.shortest_api_interval());
    }
    let wait = schedule.wait(stage, failures, fastrand::f64());
    (wait, schedule.interval(stage))
}

/// The wait before a job's next run, `wait` after the start of the last one: runs start on
/// their schedule, not a wait after the last one ended, so that the length of a probe round (3
/// requests and a timeout: 1.4 s by default) does not stretch the time it takes to notice a
/// dead PoP; but a run that took longer is followed by a tenth of its `interval`, never by the
/// next at once.
fn until_next(wait: Duration, interval: Duration, took: Duration) -> Duration {
    wait.saturating_sub(took).max(interval / 10)
}

/// Runs the agent until `shutdown` resolves (or, with `once`, for one cycle, which `shutdown`
/// cuts short too). A SIGHUP reloads the config; with `once` it is logged and ignored.
pub async fn run<S>(
    agent: Arc<Agent>,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = S>,
) -> anyhow::Result<Ended<S>> {
    tokio::pin!(shutdown);
    #[cfg(unix)]
    let hangups = options.hangups;
    #[cfg(not(unix))]
    let hangups = None;
    if options.once {
        return Ok(once(&agent, shutdown, hangups).await);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(every) = agent.systemd.watchdog_interval() {
        tokio::spawn(feed_watchdog(agent.clone(), every, stop_rx.clone()));
    }
    let reload = reload_on_hangup(agent.clone(), options.config_path.clone(), hangups);
    tokio::pin!(reload);
    // The catalogue comes first: the other stages need it. A fresh one in the cache will do;
    // otherwise it is fetched now, and a SIGHUP meanwhile reloads.
    let schedule = agent.generation().config.schedule;
    let interval = schedule.interval(Stage::Catalog);
    let refresh = match agent.pipeline.catalog_from_cache(interval) {
        Some(fetched) => {
            let due = fetched + schedule.wait(Stage::Catalog, 0, fastrand::f64());
            let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
            tracing::info!(
                fetched = %crate::timestamp::rfc3339(fetched),
                refresh_in_s = wait.as_secs(),
                "using the cached catalogue"
            );
            wait
        }
        None => {
            agent
                .liveness
                .expect(Stage::Catalog, Instant::now(), interval);
            tokio::select! {
                _ = agent.run_stages(&[Stage::Catalog]) => {}
                stop = &mut shutdown => {
                    agent.systemd.stopping();
                    return Ok(Ended::Stopped(stop));
                }
                never = &mut reload => match never {},
            }
            if agent.pipeline.has_catalog() {
                interval
            } else {
                schedule.catalog_missing_wait(1, fastrand::f64())
            }
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let urgent = agent.pipeline.tunnels_pending();
    for job in JOBS {
        let first = match job[0] {
            Stage::Catalog => refresh,
            stage => schedule.first_delay(stage, urgent, fastrand::f64()),
        };
        tasks.spawn(every(agent.clone(), job, first, stop_rx.clone()));
    }
    let stop = tokio::select! {
        stop = &mut shutdown => stop,
        never = &mut reload => match never {},
    };
    agent.systemd.stopping();
    tracing::info!("shutting down: stages under way get 5 s");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("abandoning stages still running after 5 s");
        tasks.abort_all();
    }
    Ok(Ended::Stopped(stop))
}

/// Tells systemd's watchdog the agent is alive every `every`, as long as no stage is overdue
/// (what `/healthz` says): a stage that stopped completing runs, or a process too stuck to run
/// this loop, is then restarted by systemd. Until shutdown.
async fn feed_watchdog(agent: Arc<Agent>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut withheld = false;
    loop {
        let overdue = agent.overdue();
        if overdue.is_empty() {
            agent.systemd.alive();
            if withheld {
                tracing::info!("every stage completes its runs again: watchdog pings resume");
                agent.systemd.status("running");
                withheld = false;
            }
        } else if !withheld {
            let stuck: Vec<String> = overdue.iter().map(Overdue::to_string).collect();
            tracing::error!(
                "{}: no more systemd watchdog pings, systemd will restart popsel",
                stuck.join("; ")
            );
            agent
                .systemd
                .status(&format!("stuck: {}", stuck.join("; ")));
            withheld = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// `--once`: one cycle, unless `shutdown` comes first (the stage under way is abandoned; what
/// it wrote is atomic). A SIGHUP is not a reason to stop, nor to reload mid-cycle.
async fn once<S>(
    agent: &Agent,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = S>>,
    mut hangups: Option<Hangups>,
) -> Ended<S> {
    let cycle = agent.cycle();
    tokio::pin!(cycle);
    loop {
        tokio::select! {
            ok = &mut cycle => return Ended::Cycle(ok),
            stop = &mut shutdown => return Ended::Stopped(stop),
            _ = next_hangup(&mut hangups) => tracing::warn!(
                "SIGHUP ignored: --once runs one cycle on the config it started with"
            ),
        }
    }
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = std::convert::Infallible;

/// The next SIGHUP; never, when there is no handler.
async fn next_hangup(hangups: &mut Option<Hangups>) {
    #[cfg(unix)]
    if let Some(hup) = hangups {
        if hup.recv().await.is_some() {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = hangups;
    std::future::pending::<()>().await
}

/// Reloads the config on every SIGHUP (one that came during start-up, once), between
/// RELOADING=1 and READY=1 to systemd; never returns.
async fn reload_on_hangup(
    agent: Arc<Agent>,
    path: Option<PathBuf>,
    mut hangups: Option<Hangups>,
) -> std::convert::Infallible {
    loop {
        next_hangup(&mut hangups).await;
        agent.systemd.reloading(
            || reload_from(&agent, path.as_deref()),
            |&reloaded| {
                if reloaded {
                    "running; config reloaded"
                } else {
                    "running; config not reloaded, the previous one kept (see the log)"
                }
            },
        );
    }
}

/// One reload of the config at `path`; whether the new one is in use.
fn reload_from(agent: &Agent, path: Option<&std::path::Path>) -> bool {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: no config file to reload");
        return false;
    };
    // A panic while reading or applying the new config (a bug, or a file nobody foresaw) is a
    // failed reload, like an invalid config, not the end of the agent.
    let reloaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Config::load(path)
            .map_err(anyhow::Error::from)
            .and_then(|c| agent.reload(c))
    }))
    .unwrap_or_else(|_| Err(anyhow::anyhow!("the reload panicked")));
    match reloaded {
        Ok(()) => {
            tracing::info!(path = %path.display(), "config reloaded");
            true
        }
        Err(e) => {
            tracing::error!("config not reloaded, keeping the old one: {e:#}");
            false
        }
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
