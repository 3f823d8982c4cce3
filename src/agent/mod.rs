//! `popsel run`: the agent. Catalogue refresh, probing (with selection right after), tunnel
//! reconciliation and status polling each run on their own interval, the first run of each
//! jittered so that a fleet of routers does not hit the API in the same second.
//!
//! A failed stage is counted and logged and never stops the others; the process never exits
//! on an API or DNS error. The last good catalogue is cached in the state dir and used when the
//! API is down. SIGTERM/SIGINT: stages under way get 5 s to finish, then are abandoned; state
//! is written as each stage ends, so nothing is lost. SIGHUP: the config is reloaded; an
//! invalid one is reported and the old one kept.

mod http;
mod stages;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::atmos::{Client, RetryPolicy};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::metrics::{Metrics, Stage};
use crate::probe::Prober;
use crate::rank::Ranking;
use crate::resolve::DnsResolver;
use crate::select::Selection;
use crate::state::StateDir;
use crate::survey::Survey;

pub use http::serve_metrics;

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
    /// Do not probe (rank by distance); the demo uses it.
    pub no_probe: bool,
}

/// What the stages share. Locks are held only to read or swap, never across a network call.
pub struct Agent {
    pub metrics: Arc<Metrics>,
    config: RwLock<Arc<Config>>,
    client: RwLock<Client>,
    state: RwLock<StateDir>,
    make_client: ClientFactory,
    /// Kept across rounds for its cache; rebuilt on reload.
    dns: RwLock<Option<DnsResolver>>,
    prober: Option<Prober>,
    catalog: Mutex<Option<(Catalog, SystemTime)>>,
    survey: Mutex<Option<Arc<Survey>>>,
    rankings: Mutex<Vec<(String, Ranking)>>,
    selection: Mutex<Selection>,
}

/// The resolver of a config; none (catalogue addresses only) when it cannot be set up.
fn resolver(config: &Config) -> Option<DnsResolver> {
    DnsResolver::new(config.dns.clone())
        .map_err(|e| tracing::warn!("{e}; using the catalogue's addresses only"))
        .ok()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Agent {
    /// Opens the state dir and the ICMP sockets, reads the previous selection.
    pub fn new(
        config: Config,
        make_client: ClientFactory,
        no_probe: bool,
    ) -> anyhow::Result<Arc<Agent>> {
        let metrics = Arc::new(Metrics::new());
        let client = make_client(&config, &metrics)?;
        let state = StateDir::open(&config.state_dir)?;
        let selection = state
            .read_json(crate::state::SELECTION_FILE)?
            .unwrap_or_default();
        let prober = if no_probe || !config.locations.iter().any(|l| l.local) {
            None
        } else {
            match Prober::new() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!("{e}; ranking by distance");
                    None
                }
            }
        };
        let dns = resolver(&config);
        Ok(Arc::new(Agent {
            metrics,
            dns: RwLock::new(dns),
            config: RwLock::new(Arc::new(config)),
            client: RwLock::new(client),
            state: RwLock::new(state),
            make_client,
            prober,
            catalog: Mutex::new(None),
            survey: Mutex::new(None),
            rankings: Mutex::new(Vec::new()),
            selection: Mutex::new(selection),
        }))
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn client(&self) -> Client {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn dns(&self) -> Option<DnsResolver> {
        self.dns.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn state(&self) -> StateDir {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Ready once a catalogue (fresh or cached) and one probe round exist.
    pub fn ready(&self) -> bool {
        lock(&self.catalog).is_some() && lock(&self.survey).is_some()
    }

    pub fn selection(&self) -> Selection {
        lock(&self.selection).clone()
    }

    pub fn rankings(&self) -> Vec<(String, Ranking)> {
        lock(&self.rankings).clone()
    }

    /// Swaps in a new config (SIGHUP). The state dir and client follow it.
    pub fn reload(&self, config: Config) -> anyhow::Result<()> {
        let client = (self.make_client)(&config, &self.metrics)?;
        let state = StateDir::open(&config.state_dir)?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        *self.dns.write().unwrap_or_else(|e| e.into_inner()) = resolver(&config);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// Runs one stage, counting it.
    pub async fn run_stage(&self, stage: Stage) -> bool {
        let result = match stage {
            Stage::Catalog => self.catalog_stage().await,
            Stage::Probe => self.probe_stage().await,
            Stage::Select => self.select_stage().await,
            Stage::Reconcile => self.reconcile_stage().await,
            Stage::Status => self.status_stage().await,
        };
        let ok = match &result {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(stage = stage.as_str(), "stage failed: {e:#}");
                false
            }
        };
        self.metrics.stage_ran(stage, ok, SystemTime::now());
        ok
    }

    /// One cycle of every stage, in order. Returns whether all succeeded.
    pub async fn cycle(&self) -> bool {
        let mut ok = true;
        for stage in Stage::ALL {
            ok &= self.run_stage(stage).await;
        }
        ok
    }
}

/// Which config setting paces a loop.
type Interval = fn(&Config) -> Duration;

/// A stage's loop: the first run after `first`, then every `interval` (read afresh each time,
/// so a reload applies), until shutdown.
async fn every(
    agent: Arc<Agent>,
    stages: &[Stage],
    interval: Interval,
    first: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = shutdown.changed() => return,
    }
    loop {
        for &stage in stages {
            agent.run_stage(stage).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval(&agent.config())) => {}
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
        _ = agent.run_stage(Stage::Catalog) => {}
        _ = &mut shutdown => return Ok(true),
    }
    let mut tasks = tokio::task::JoinSet::new();
    let loops: [(&'static [Stage], Interval); 4] = [
        (&[Stage::Catalog], |c| c.agent.catalog_interval),
        (&[Stage::Probe, Stage::Select], |c| c.agent.probe_interval),
        (&[Stage::Reconcile], |c| c.agent.reconcile_interval),
        (&[Stage::Status], |c| c.agent.status_interval),
    ];
    for (stages, interval) in loops {
        let every_ = interval(&agent.config());
        // Up to a tenth of the interval (at most 30 s) so that a fleet spreads out; the
        // catalogue stage has just run, so it waits a whole interval.
        let first = if stages == [Stage::Catalog] {
            every_
        } else {
            every_
                .mul_f64(0.1)
                .min(Duration::from_secs(30))
                .mul_f64(fastrand::f64())
        };
        tasks.spawn(every(
            agent.clone(),
            stages,
            interval,
            first,
            stop_rx.clone(),
        ));
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
