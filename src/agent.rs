//! `popsel run`: the agent. The pipeline's stages each run on their own interval (catalogue
//! refresh; probing with selection and hand-off right after; tunnel reconciliation; status
//! polling), the first run of each jittered so that a fleet of routers does not hit the API in
//! the same second.
//!
//! A failed stage is counted and logged and never stops the others; the process never exits
//! on an API or DNS error. The last good catalogue is cached in the state dir and used when the
//! API is down. SIGTERM/SIGINT: stages under way get 5 s to finish, then are abandoned; state
//! is written as each stage ends, so nothing is lost. SIGHUP: the config is reloaded as a new
//! generation, swapped in whole; an invalid one is reported and the old one kept.

mod http;
mod log;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::atmos::{Client, RetryPolicy};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{self, Generation, JOBS, Mode, Pipeline};
use crate::rank::Rankings;
use crate::schedule::Stage;
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
}

/// The pipeline, scheduled.
pub struct Agent {
    pub metrics: Arc<Metrics>,
    pipeline: Pipeline,
    make_client: ClientFactory,
}

impl Agent {
    /// Opens the state dir and the ICMP sockets (unless `no_probe`, or no location is local),
    /// reads the previous selection.
    pub fn new(
        config: Config,
        make_client: ClientFactory,
        no_probe: bool,
    ) -> anyhow::Result<Arc<Agent>> {
        let metrics = Arc::new(Metrics::new());
        let report = Box::new(LogReport);
        let client = make_client(&config, &metrics)?;
        let prober = pipeline::prober(&config.locations, no_probe, &*report);
        let generation = Generation::new(config, client, true, &*report)?;
        let pipeline = Pipeline::new(generation, prober, Mode::Agent(metrics.clone()), report)?;
        Ok(Arc::new(Agent {
            metrics,
            pipeline,
            make_client,
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
        let client = (self.make_client)(&config, &self.metrics)?;
        let generation = Generation::new(config, client, true, self.pipeline.report())?;
        self.pipeline.swap(generation);
        Ok(())
    }

    /// Every stage once, in order. Returns whether all succeeded.
    pub async fn cycle(&self) -> bool {
        self.pipeline.cycle().await
    }
}

/// A job's loop: the first run after `first`, then every interval of its first stage (read
/// afresh from the generation in use each time, so a reload applies), until shutdown.
async fn every(
    agent: Arc<Agent>,
    job: &'static [Stage],
    first: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = shutdown.changed() => return,
    }
    loop {
        agent.pipeline.run_job(job).await;
        let interval = agent.generation().config.schedule.interval(job[0]);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs the agent until `shutdown` resolves (or, with `once`, for one cycle).
pub async fn run(
    agent: Arc<Agent>,
    options: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<bool> {
    if options.once {
        return Ok(agent.cycle().await);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    // Installed now, so that a SIGHUP during the first catalogue fetch is caught, not fatal.
    let reload = reload_signals(agent.clone(), options.config_path.clone());
    tokio::pin!(reload);
    // The catalogue comes first: the other stages need it.
    tokio::select! {
        _ = agent.pipeline.run_job(&[Stage::Catalog]) => {}
        _ = &mut shutdown => return Ok(true),
    }
    let mut tasks = tokio::task::JoinSet::new();
    let schedule = agent.generation().config.schedule;
    for job in JOBS {
        let first = schedule.first_delay(job[0], fastrand::f64());
        tasks.spawn(every(agent.clone(), job, first, stop_rx.clone()));
    }
    tokio::select! {
        _ = &mut shutdown => {}
        _ = &mut reload => {}
    }
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
    Ok(true)
}

/// Reloads the config on every SIGHUP; never returns. The handler is installed when this is
/// called, before the returned future is first polled.
fn reload_signals(
    agent: Arc<Agent>,
    path: Option<PathBuf>,
) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        if let Ok(mut hup) = hup {
            while hup.recv().await.is_some() {
                let Some(path) = &path else {
                    tracing::warn!("SIGHUP: no config file to reload");
                    continue;
                };
                match Config::load(path)
                    .map_err(anyhow::Error::from)
                    .and_then(|c| agent.reload(c))
                {
                    Ok(()) => tracing::info!(path = %path.display(), "config reloaded"),
                    Err(e) => tracing::error!("config not reloaded, keeping the old one: {e:#}"),
                }
            }
        }
        std::future::pending::<()>().await
    }
}
