//! The `popsel` command line: argument definitions and dispatch. The work is in the library;
//! this only turns arguments into calls and results into output.

mod api;
mod check;
mod demo;
mod help;
mod manual;
mod progress;
mod provision;
mod rank;
mod rank_output;
mod report;
mod run;
mod table;
mod terminal;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::atmos::{
    self, Client, ClientConfig, DEFAULT_BASE_URL, Observer, RetryPolicy, TOKEN_ENV,
};
use crate::config::{CONFIG_ENV, Config, ConfigSource, DEFAULT_CONFIG_PATH, NoConfig};
use crate::sim::{self, Faults, Sim, SimOptions};

pub use progress::ProgressLine;
pub use report::StderrReport;
pub use table::Table;
pub use terminal::{NO_COLOR, colour, init_logs, stderr_colour};

/// The environment variable that gives the API base URL when `--api-url` does not.
pub const API_URL_ENV: &str = "POPSEL_API_URL";

#[derive(Debug, Parser)]
#[command(
    name = "popsel",
    version,
    about = "SD-WAN PoP selection and tunnel provisioning agent for Atmos Cloud",
    after_help = help::POPSEL
)]
pub struct Cli {
    #[command(flatten)]
    leading: Leading,
    #[command(subcommand)]
    pub command: Command,
}

/// The options earlier versions took anywhere, before the subcommand included
/// (`popsel --api-url URL tunnels list`), when they were global. Still taken there, so that
/// scripts written then keep working, but hidden: each command lists the options it uses, and
/// one given here to a command that does not use it is a usage error.
#[derive(Debug, Default, Args)]
struct Leading {
    #[arg(long = "api-url", id = "leading_api_url", hide = true)]
    api_url: Option<String>,
    #[arg(long = "token-file", id = "leading_token_file", hide = true)]
    token_file: Option<PathBuf>,
    #[arg(long = "config", id = "leading_config", hide = true)]
    config: Option<PathBuf>,
    #[arg(
        long = "log-format",
        id = "leading_log_format",
        hide = true,
        value_enum
    )]
    log_format: Option<LogFormat>,
}

impl Cli {
    /// The command line of this process, the options given before the subcommand moved to it.
    /// Exits with a usage error (2) as clap does.
    pub fn parse_args() -> Cli {
        Self::from_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// As [`Cli::parse_args`], from `args` (the program name first).
    pub fn from_args(
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> Result<Cli, clap::Error> {
        let mut cli = Cli::try_parse_from(args)?;
        let leading = std::mem::take(&mut cli.leading);
        leading.move_to(&mut cli.command).map_err(|message| {
            Cli::command().error(clap::error::ErrorKind::UnknownArgument, message)
        })?;
        Ok(cli)
    }

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

    /// How log lines are written (human for the commands without `--log-format`).
    pub fn log_format(&self) -> LogFormat {
        self.command
            .log()
            .and_then(|l| l.log_format)
            .unwrap_or_default()
    }
}

impl Leading {
    /// Each option into the command's own, unless given there too (the later one wins, as
    /// when an option is repeated). Err names an option the command does not take.
    fn move_to(self, command: &mut Command) -> Result<(), String> {
        let name = command.name();
        let refused = |option: &str| {
            format!("{option} is not an option of `popsel {name}` (see popsel {name} --help)")
        };
        let mut slots = command.slots();
        fill(
            self.api_url,
            slots.connection.as_mut().map(|c| &mut c.api_url),
        )
        .map_err(|()| refused("--api-url"))?;
        fill(
            self.token_file,
            slots.connection.as_mut().map(|c| &mut c.token_file),
        )
        .map_err(|()| refused("--token-file"))?;
        fill(self.config, slots.config).map_err(|()| refused("--config"))?;
        fill(self.log_format, slots.log.map(|l| &mut l.log_format))
            .map_err(|()| refused("--log-format"))?;
        Ok(())
    }
}

/// `value` into `slot` unless the slot has one; Err when there is a value and no slot.
fn fill<T>(value: Option<T>, slot: Option<&mut Option<T>>) -> Result<(), ()> {
    match (value, slot) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(()),
        (Some(value), Some(slot)) => {
            slot.get_or_insert(value);
            Ok(())
        }
    }
}

/// Where the API is and how to authenticate, for the commands that talk to it. The token
/// itself only comes from the environment or a file, never from the command line, where `ps`
/// would show it.
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// API base URL [env: POPSEL_API_URL] [default: the config's [api] base_url, else
    /// https://admin-api.axissecurity.com]
    #[arg(long, global = true, value_name = "URL", help_heading = "API")]
    pub api_url: Option<String>,
    /// File holding the API token (POPSEL_API_TOKEN wins over it) [default: the config's [api]
    /// token_file]
    #[arg(long, global = true, value_name = "FILE", help_heading = "API")]
    pub token_file: Option<PathBuf>,
}

impl Connection {
    /// `--api-url`, else `POPSEL_API_URL` (empty counts as unset), else the config's, else
    /// Atmos.
    fn base_url(&self, config: &Config) -> String {
        self.api_url
            .clone()
            .or_else(|| std::env::var(API_URL_ENV).ok().filter(|v| !v.is_empty()))
            .or(config.api.base_url.clone())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
    }
}

/// The API options of the commands that work without a config (`tunnels`, `connectors`,
/// `pops`, `rank`): a config is read only when named, for its `[api]` section.
#[derive(Debug, Clone, Default, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Config file whose [api] section to use [env: POPSEL_CONFIG] [default: none]
    #[arg(long, global = true, value_name = "FILE", help_heading = "API")]
    pub config: Option<PathBuf>,
}

/// The config and API options of the commands that need a config (`run`, `plan`, `apply`,
/// `check`).
#[derive(Debug, Clone, Default, Args)]
pub struct SiteArgs {
    /// Config file [default: $POPSEL_CONFIG, else /etc/popsel/popsel.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}

impl SiteArgs {
    /// `--config`, else `POPSEL_CONFIG`, else /etc/popsel/popsel.toml if there is one.
    pub fn source(&self) -> Result<ConfigSource, NoConfig> {
        ConfigSource::find(
            self.config.as_deref(),
            std::env::var_os(CONFIG_ENV).as_deref(),
            Path::new(DEFAULT_CONFIG_PATH),
        )
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Log lines on stderr for people (human) or collectors (json) [default: human]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
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
    #[command(after_help = help::TUNNELS)]
    Tunnels {
        /// Output format
        #[arg(long, short, global = true, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(subcommand)]
        command: api::TunnelCommand,
    },
    /// Manage Atmos connectors
    #[command(after_help = help::CONNECTORS)]
    Connectors {
        /// Output format
        #[arg(long, short, global = true, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(subcommand)]
        command: api::ConnectorCommand,
    },
    /// Rank the PoPs from a site: DNS, ICMP latency, distance
    #[command(after_help = help::RANK)]
    Rank {
        #[command(flatten)]
        args: rank::RankArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Show the IPsec PoP catalogue
    #[command(after_help = help::POPS)]
    Pops {
        /// Output format
        #[arg(long, short, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Show each location's PoP selection and what apply would change on the API
    #[command(after_help = help::PLAN)]
    Plan(provision::PlanArgs),
    /// Carry the plan out: create or update the locations' tunnels, write the hand-off
    #[command(after_help = help::APPLY)]
    Apply(provision::ApplyArgs),
    /// Run the agent: probe, select, reconcile, poll status, serve metrics
    #[command(after_help = help::RUN)]
    Run(run::RunArgs),
    /// Check a config offline, as `popsel run` would load it: one problem per line
    #[command(after_help = help::CHECK)]
    Check(check::CheckArgs),
    /// Run the Atmos API emulator
    #[command(after_help = help::SIM)]
    Sim(SimArgs),
    /// The agent against an in-process emulator with the sample catalogue: no account needed
    #[command(after_help = help::DEMO)]
    Demo {
        #[command(flatten)]
        args: demo::DemoArgs,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Print a shell completion script
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: manual::Shell,
    },
    /// Print the manual page (roff)
    #[command(after_help = help::MAN)]
    Man {
        /// The command whose page to print, e.g. `plan` or `tunnels create` [default: popsel's]
        command: Vec<String>,
    },
}

/// Where a command keeps the options that [`Leading`] may fill.
#[derive(Default)]
struct Slots<'a> {
    connection: Option<&'a mut Connection>,
    config: Option<&'a mut Option<PathBuf>>,
    log: Option<&'a mut LogArgs>,
}

impl Slots<'_> {
    fn api<'a>(api: &'a mut ApiArgs, log: Option<&'a mut LogArgs>) -> Slots<'a> {
        Slots {
            connection: Some(&mut api.connection),
            config: Some(&mut api.config),
            log,
        }
    }

    fn site<'a>(site: &'a mut SiteArgs, log: Option<&'a mut LogArgs>) -> Slots<'a> {
        Slots {
            connection: Some(&mut site.connection),
            config: Some(&mut site.config),
            log,
        }
    }
}

impl Command {
    /// The name the command is called by.
    fn name(&self) -> &'static str {
        match self {
            Command::Tunnels { .. } => "tunnels",
            Command::Connectors { .. } => "connectors",
            Command::Rank { .. } => "rank",
            Command::Pops { .. } => "pops",
            Command::Plan(_) => "plan",
            Command::Apply(_) => "apply",
            Command::Run(_) => "run",
            Command::Check(_) => "check",
            Command::Sim(_) => "sim",
            Command::Demo { .. } => "demo",
            Command::Completions { .. } => "completions",
            Command::Man { .. } => "man",
        }
    }

    fn slots(&mut self) -> Slots<'_> {
        match self {
            Command::Tunnels { api, log, .. }
            | Command::Connectors { api, log, .. }
            | Command::Rank { api, log, .. }
            | Command::Pops { api, log, .. } => Slots::api(api, Some(log)),
            Command::Plan(args) => Slots::site(&mut args.site, Some(&mut args.log)),
            Command::Apply(args) => Slots::site(&mut args.site, Some(&mut args.log)),
            Command::Run(args) => Slots::site(&mut args.site, Some(&mut args.log)),
            Command::Check(args) => Slots::site(&mut args.site, None),
            Command::Sim(args) => Slots {
                log: Some(&mut args.log),
                ..Slots::default()
            },
            Command::Demo { log, .. } => Slots {
                log: Some(log),
                ..Slots::default()
            },
            Command::Completions { .. } | Command::Man { .. } => Slots::default(),
        }
    }

    fn log(&self) -> Option<&LogArgs> {
        match self {
            Command::Tunnels { log, .. }
            | Command::Connectors { log, .. }
            | Command::Rank { log, .. }
            | Command::Pops { log, .. }
            | Command::Demo { log, .. } => Some(log),
            Command::Plan(args) => Some(&args.log),
            Command::Apply(args) => Some(&args.log),
            Command::Run(args) => Some(&args.log),
            Command::Sim(args) => Some(&args.log),
            Command::Check(_) | Command::Completions { .. } | Command::Man { .. } => None,
        }
    }
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
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Tunnels {
            output,
            api,
            command,
            ..
        } => api::tunnels(&client(&api)?, command, output).await?,
        Command::Connectors {
            output,
            api,
            command,
            ..
        } => api::connectors(&client(&api)?, command, output).await?,
        Command::Pops { output, api, .. } => {
            // A spinner while the catalogue comes, saying so when the API is retried.
            let waiting = ProgressLine::on_stderr(Default::default(), true);
            let client = client_observed(&api, waiting.api_observer())?;
            api::pops(&client, output, &waiting).await?
        }
        Command::Rank { args, api, .. } => return Ok(rank::run(args, &api).await),
        Command::Plan(args) => return provision::plan(args).await,
        Command::Apply(args) => return provision::apply(args).await,
        Command::Run(args) => return run::run(args).await,
        Command::Check(args) => return Ok(check::check(&args)),
        Command::Sim(args) => serve_sim(args).await?,
        Command::Demo { args, .. } => return demo::run(args).await,
        Command::Completions { shell } => manual::completions(shell)?,
        Command::Man { command } => manual::man(&command)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The API client of a command that works without a config: flags, environment, and the
/// config only when `--config` or `POPSEL_CONFIG` names one.
pub fn client(args: &ApiArgs) -> anyhow::Result<Client> {
    client_observed(args, Observer::default())
}

/// [`client`], its calls told to `observer`.
pub fn client_observed(args: &ApiArgs, observer: Observer) -> anyhow::Result<Client> {
    let named = ConfigSource::given(
        args.config.as_deref(),
        std::env::var_os(CONFIG_ENV).as_deref(),
    );
    let config = match named {
        Some(source) => source.load()?,
        None => Config::api_only(Default::default()),
    };
    client_from_config(&args.connection, &config, observer, RetryPolicy::default())
}

/// The API client from flags, environment and config, in that order of precedence. Builds it
/// only: no request is made.
pub fn client_from_config(
    args: &Connection,
    config: &Config,
    observer: Observer,
    retry: RetryPolicy,
) -> anyhow::Result<Client> {
    let base_url = args.base_url(config);
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

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
