//! `popsel check`: what `popsel run` would load, validated offline (no request, no lookup),
//! so that a service manager can refuse to start an agent with a broken config
//! (`ExecStartPre=`) and an operator can check an edit before `systemctl reload`.
//!
//! Each problem is one line on stdout, `key.path: message`, as `Config::load` collects them
//! (`locations[0].tunnels[1].psk_env: ...`); a summary naming the file goes to stderr. A PSK
//! or the token is never printed: the config's problems describe PSKs by length and source,
//! and the token's by its source.

use std::process::ExitCode;

use clap::Args;

use super::{Connection, SiteArgs, client_from_config};
use crate::atmos::{ClientBuildError, TokenError};
use crate::config::{CONFIG_ENV, Config, ConfigSource};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub site: SiteArgs,
}

/// Exit codes: 0 valid; 1 invalid, or no config found.
pub fn check(args: &CheckArgs) -> ExitCode {
    let source = match args.site.source() {
        Ok(source) => source,
        Err(none) => {
            eprintln!("popsel: error: {none}");
            return ExitCode::FAILURE;
        }
    };
    let shown = match &source {
        ConfigSource::Env(path) => format!("{} (from {CONFIG_ENV})", path.display()),
        other => other.path().display().to_string(),
    };
    match problems(&args.site.connection, &source) {
        Ok(config) => {
            eprintln!(
                "popsel: config {shown} is valid: {} location(s), {} tunnel(s)",
                config.locations.len(),
                config.tunnels().count()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                println!("{problem}");
            }
            eprintln!(
                "popsel: config {shown}: {} problem(s); popsel run would not start",
                problems.len()
            );
            ExitCode::FAILURE
        }
    }
}

/// The config, or everything wrong with what `popsel run` would start with: the config's
/// problems, each with its key path, then (the config being valid) the API client's, which
/// is built as run builds it (token, URL) and never used.
pub fn problems(connection: &Connection, source: &ConfigSource) -> Result<Config, Vec<String>> {
    // A file that cannot be read is one problem, named by its path (the load's would say only
    // what went wrong).
    if let Err(e) = std::fs::File::open(source.path()) {
        return Err(vec![format!("{}: {e}", source.path().display())]);
    }
    let config = source.load().map_err(|e| e.problems)?;
    match client_from_config(connection, &config, Default::default(), Default::default()) {
        Ok(_unused) => Ok(config),
        Err(e) => Err(vec![api_problem(connection, &e)]),
    }
}

/// The API client's failure under the key or flag that would fix it.
fn api_problem(connection: &Connection, e: &anyhow::Error) -> String {
    if let Some(token) = e.downcast_ref::<TokenError>() {
        let key = match connection.token_file {
            Some(_) => "--token-file",
            None => "api.token_file",
        };
        return format!("{key}: {token}");
    }
    if let Some(url @ ClientBuildError::BadUrl { .. }) = e.downcast_ref::<ClientBuildError>() {
        // The config's base_url was checked with the config: this one is the flag's or the
        // environment's.
        let key = match connection.api_url {
            Some(_) => "--api-url",
            None => super::API_URL_ENV,
        };
        return format!("{key}: {url}");
    }
    format!("api: {e:#}")
}
