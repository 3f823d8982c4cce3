//! `popsel run`: the agent, with its metrics endpoint, until SIGTERM/SIGINT (or one cycle with
//! `--once`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::{ApiArgs, client_from_config, shutdown_signal};
use crate::agent::{self, Agent, ClientFactory, RunOptions};
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
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Builds the client of a config, flags and environment winning, reporting to the metrics.
pub fn client_factory(api: &ApiArgs) -> ClientFactory {
    let api_url = api.api_url.clone();
    let token_file = api.token_file.clone();
    Box::new(move |config: &Config, metrics| {
        let args = ApiArgs {
            api_url: api_url.clone(),
            token_file: token_file.clone(),
            config: None,
        };
        client_from_config(
            &args,
            config,
            Observer(Some(metrics.clone())),
            agent::STAGE_RETRY,
        )
    })
}

pub async fn run(api: &ApiArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = api
        .config
        .clone()
        .context("popsel run needs --config FILE (see config/popsel.example.toml)")?;
    // Signals first: one that comes while the first catalogue is fetched must not be fatal.
    let shutdown = shutdown_signal();
    let config = Config::load(&path)?;
    let listen = args.metrics_listen.unwrap_or(config.metrics.listen);
    let agent = Agent::new(config, client_factory(api), args.no_probe)?;
    let (addr, server) = agent::serve_metrics(agent.clone(), listen).await?;
    tracing::info!("metrics on http://{addr}/metrics");
    let options = RunOptions {
        once: args.once,
        config_path: Some(path),
    };
    let ok = agent::run(Arc::clone(&agent), options, shutdown).await?;
    server.abort();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
