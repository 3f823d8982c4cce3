//! `popsel run`: the agent, with its metrics endpoint, until SIGTERM/SIGINT (or one cycle with
//! `--once`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

#[cfg(unix)]
use super::hangup_signal;
use super::{Connection, LogArgs, SiteArgs, client_from_config, shutdown_signal};
use crate::agent::{self, Agent, ClientFactory, Ended, RunOptions};
use crate::atmos::Observer;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// One cycle of every stage (catalogue, probe, select, reconcile, status), then exit
    #[arg(long)]
    pub once: bool,
    /// Do not probe: rank every location by distance
    #[arg(long)]
    pub no_probe: bool,
    /// Serve metrics here instead of the config's [metrics] listen
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Builds the client of a config, flags and environment winning, reporting to the metrics.
pub fn client_factory(connection: &Connection) -> ClientFactory {
    let connection = connection.clone();
    Box::new(move |config: &Config, metrics| {
        client_from_config(
            &connection,
            config,
            Observer(Some(metrics.clone())),
            agent::STAGE_RETRY,
        )
    })
}

/// Exit codes: 0 when stopped by SIGTERM/SIGINT (the agent's normal end); with `--once`, 0 when
/// every stage succeeded, 1 when one failed, 130/143 when SIGINT/SIGTERM cut the cycle short.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // The handlers before anything else, the config included: no signal may be fatal during
    // start-up. SIGTERM/SIGINT then stop the agent as soon as it gets to them; a SIGHUP stays
    // pending and reloads the config once the agent runs (the config read at start-up may
    // predate the change it announces).
    let shutdown = shutdown_signal();
    #[cfg(unix)]
    let hangups = Some(hangup_signal()?);
    let source = args.site.source()?;
    let config = source.load()?;
    let listen = args.metrics_listen.unwrap_or(config.metrics.listen);
    let agent = Agent::new(config, client_factory(&args.site.connection), args.no_probe)?;
    let (addr, server) = agent::serve_metrics(agent.clone(), listen).await?;
    tracing::info!("metrics on http://{addr}/metrics");
    let options = RunOptions {
        once: args.once,
        config_path: Some(source.path().to_owned()),
        #[cfg(unix)]
        hangups,
    };
    let ended = agent::run(Arc::clone(&agent), options, shutdown).await?;
    server.abort();
    Ok(match ended {
        Ended::Cycle(true) => ExitCode::SUCCESS,
        Ended::Cycle(false) => ExitCode::FAILURE,
        Ended::Stopped(_) if !args.once => ExitCode::SUCCESS,
        Ended::Stopped(stop) => {
            tracing::warn!("{stop}: the cycle was cut short");
            stop.exit_code()
        }
    })
}
