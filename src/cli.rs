//! The `popsel` command line: argument definitions and dispatch. The work is in the library;
//! this only turns arguments into calls and results into output.

mod api;
mod demo;
mod provision;
mod rank;
mod rank_output;
mod report;
mod run;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::atmos::{
    self, Client, ClientConfig, DEFAULT_BASE_URL, Observer, RetryPolicy, TOKEN_ENV,
};
use crate::config::Config;
use crate::sim::{self, Faults, Sim, SimOptions};

pub use report::StderrReport;
pub use table::Table;

#[derive(Debug, Parser)]
#[command(
    name = "popsel",
    version,
    about = "SD-WAN PoP selection and tunnel provisioning agent for Atmos Cloud"
)]
pub struct Cli {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Log lines for people (human) or collectors (json), on stderr
    #[arg(long, global = true, value_enum, default_value_t)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Tokio worker threads for this command; `None` keeps tokio's default of one per core.
    /// The daemon is I/O-bound (well under 1% of a core) and every worker thread costs a glibc
    /// malloc arena of about 2.5 MiB resident (`benches/agent_resources.py`, 10 min at 300
    /// addresses: 20.9 MiB with two workers, 18.5 MiB with one), so on a many-core router the
    /// agent would grow with the cores and gain nothing.
    pub fn worker_threads(&self) -> Option<usize> {
        match self.command {
            Command::Run(_) => Some(1),
            _ => None,
        }
    }
}

/// Where the API is and how to authenticate. The token itself only comes from the environment
/// or a file, never from the command line, where `ps` would show it.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// API base URL [default: the config's, else https://admin-api.axissecurity.com]
    #[arg(long, env = "POPSEL_API_URL", global = true)]
    pub api_url: Option<String>,
    /// File holding the API token (POPSEL_API_TOKEN wins over it)
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Configuration file (TOML); its [api] section is used
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage Atmos IPsec tunnels
    Tunnels {
        #[arg(long, global = true, value_enum, default_value_t)]
        output: Output,
        #[command(subcommand)]
        command: api::TunnelCommand,
    },
    /// Manage Atmos connectors
    Connectors {
        #[arg(long, global = true, value_enum, default_value_t)]
        output: Output,
        #[command(subcommand)]
        command: api::ConnectorCommand,
    },
    /// Rank the PoPs from a site: DNS, ICMP latency, distance
    Rank(rank::RankArgs),
    /// Show the IPsec PoP catalogue
    Pops {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show each location's PoP selection and what apply would change on the API
    Plan(provision::PlanArgs),
    /// Carry the plan out: create or update the locations' tunnels, write the hand-off
    Apply(provision::ApplyArgs),
    /// Run the agent: probe, select, reconcile, poll status, serve metrics
    Run(run::RunArgs),
    /// Run the Atmos API emulator
    Sim(SimArgs),
    /// The agent against an in-process emulator with the sample catalogue: no account needed
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (port 0: the kernel picks one; the URL is printed)
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Bearer token the emulator accepts
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// PoP catalogue file (JSON, as GET /api/v1/pops/ipsec returns) [default: the built-in sample]
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Share of API requests answered with HTTP 500 (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of API requests answered with HTTP 429 and Retry-After (0 to 1)
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Delay added to every API request (e.g. 50ms)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub delay: Duration,
    /// Retry-After of the injected 429s, in seconds
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Serve each tunnel's stored PSK at GET /_sim/tunnels/{id}/psk (token required). For the
    /// IPsec lab's PoP responders only; off by default, as Atmos never returns a PSK
    #[arg(long)]
    pub expose_psks_for_lab: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Tunnels { output, command } => {
            api::tunnels(&client(&cli.api)?, command, output).await?
        }
        Command::Connectors { output, command } => {
            api::connectors(&client(&cli.api)?, command, output).await?
        }
        Command::Pops { output } => api::pops(&client(&cli.api)?, output).await?,
        Command::Rank(args) => return Ok(rank::run(args, &cli.api).await),
        Command::Plan(args) => return provision::plan(&cli.api, args).await,
        Command::Apply(args) => return provision::apply(&cli.api, args).await,
        Command::Run(args) => return run::run(&cli.api, args).await,
        Command::Sim(args) => serve_sim(args).await?,
        Command::Demo(args) => return demo::run(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The API client from flags, environment and config, in that order of precedence.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::api_only(Default::default()),
    };
    client_from_config(args, &config, Observer::default(), RetryPolicy::default())
}

pub fn client_from_config(
    args: &ApiArgs,
    config: &Config,
    observer: Observer,
    retry: RetryPolicy,
) -> anyhow::Result<Client> {
    let base_url = args
        .api_url
        .clone()
        .or(config.api.base_url.clone())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    let token_file = args
        .token_file
        .as_deref()
        .or(config.api.token_file.as_deref());
    let token = atmos::load_token(std::env::var(TOKEN_ENV).ok(), token_file)?;
    let mut cc = ClientConfig::new(base_url, token);
    cc.timeout = config.api.timeout;
    cc.page_size = config.api.page_size;
    cc.max_response_bytes = config.api.max_response_bytes;
    cc.max_catalog_bytes = config.api.max_catalog_bytes;
    cc.allow_insecure_http = config.api.allow_insecure_http;
    cc.observer = observer;
    cc.retry = retry;
    Ok(Client::new(cc)?)
}

async fn serve_sim(args: SimArgs) -> anyhow::Result<()> {
    // Before anything else: a Ctrl-C or SIGTERM during start-up stops the emulator cleanly.
    let shutdown = shutdown_signal();
    let token = args
        .token
        .filter(|t| !t.trim().is_empty())
        .with_context(|| format!("the emulator needs a token: give --token or set {TOKEN_ENV}"))?;
    let catalog = match &args.catalog {
        Some(path) => sim::load_catalog(path)?,
        None => sim::sample_catalog(),
    };
    let faults = Faults {
        fail_rate: args.fail_rate,
        throttle_rate: args.throttle_rate,
        delay_ms: args.delay.as_millis() as u64,
        retry_after_secs: args.retry_after,
    };
    faults.validate().map_err(anyhow::Error::msg)?;
    let sim = Sim::start(SimOptions {
        listen: args.listen,
        token: SecretString::from(token),
        catalog,
        faults,
        expose_psks_for_lab: args.expose_psks_for_lab,
    })
    .await?;
    // Tests and scripts read this line to learn the port.
    println!("popsel sim listening on {}", sim.url());
    tokio::select! {
        r = sim.wait() => r?,
        _ = shutdown => {}
    }
    Ok(())
}

/// The signal that asked popsel to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    /// The exit code of a command this signal cut short: 128 + the signal's number, as a shell
    /// reports a process the signal ended (130 for SIGINT, 143 for SIGTERM), so that a script
    /// tells it from a failure (1).
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        })
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        })
    }
}

/// Ctrl-C or SIGTERM, whichever comes first. The handlers are installed when this is called,
/// not when the future is first polled, so that a signal arriving during start-up is caught
/// (and acted on once the command gets to it) rather than fatal.
pub fn shutdown_signal() -> impl std::future::Future<Output = Stop> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams =
            signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
        async move {
            match streams {
                Ok((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => Stop::Terminate,
                        _ = int.recv() => Stop::Interrupt,
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    Stop::Interrupt
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        Stop::Interrupt
    }
}

/// SIGHUP, its handler installed now: from here on a SIGHUP is caught, never fatal, and waits
/// in the returned stream until it is read.
#[cfg(unix)]
pub fn hangup_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
