//! The configuration file (TOML; `config/popsel.example.toml` documents every key).
//!
//! Parsed from `&str` so that tests feed strings. Unknown keys are errors, so a typo never
//! silently falls back to a default. Loading validates everything before any network call and
//! reports every problem at once, each with its key path
//! (`locations[1].tunnels[0].authentication_id: "bob@" is neither an email nor an IP address`).
//! PSKs are read (from files or the environment) during validation and held as secrets.
//!
//! Config only parses, validates and assembles: each section's settings type belongs to the
//! stage it configures (`[probe]` to `probe`, `[selection]` to `select`, `[edge]` to `edge`…).

mod raw;
mod validate;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::atmos::ApiSettings;
use crate::edge::EdgeSettings;
use crate::location::{Location, TunnelConfig};
use crate::metrics::MetricsSettings;
use crate::probe::ProbeSettings;
use crate::resolve::dns::DnsSettings;
use crate::schedule::Schedule;
use crate::select::SelectionSettings;
use crate::status::StatusSettings;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/popsel";
/// The environment variable that names the config when `--config` does not.
pub const CONFIG_ENV: &str = "POPSEL_CONFIG";
/// Where the commands that need a config look last (the path the packages install it at).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/popsel/popsel.toml";

/// Where a command's config file comes from: the first of `--config`, `POPSEL_CONFIG` and, for
/// the commands that need one, [`DEFAULT_CONFIG_PATH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Flag(PathBuf),
    Env(PathBuf),
    Default(PathBuf),
}

/// None of the places a config is looked for has one; the message names them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no config: give --config FILE, set {CONFIG_ENV}=FILE, or install one as {} \
     (config/popsel.example.toml documents every key)",
    .default.display()
)]
pub struct NoConfig {
    pub default: PathBuf,
}

impl ConfigSource {
    /// The config the operator named: `--config` (`flag`), else `POPSEL_CONFIG` (`env`, its
    /// value; empty counts as unset). For the commands that work without a config, which never
    /// read one the operator did not name.
    pub fn given(flag: Option<&Path>, env: Option<&OsStr>) -> Option<ConfigSource> {
        if let Some(path) = flag {
            return Some(ConfigSource::Flag(path.to_owned()));
        }
        env.filter(|v| !v.is_empty())
            .map(|v| ConfigSource::Env(PathBuf::from(v)))
    }

    /// The config of a command that needs one: as [`ConfigSource::given`], else `default` when
    /// there is something at that path (or it cannot be told, so that the load says why).
    pub fn find(
        flag: Option<&Path>,
        env: Option<&OsStr>,
        default: &Path,
    ) -> Result<ConfigSource, NoConfig> {
        if let Some(given) = Self::given(flag, env) {
            return Ok(given);
        }
        if default.try_exists().unwrap_or(true) {
            return Ok(ConfigSource::Default(default.to_owned()));
        }
        Err(NoConfig {
            default: default.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Default(p) => p,
        }
    }

    /// Loads the config, an error saying where its path came from when the environment named
    /// it (the operator may not know it is set).
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.path()).map_err(|mut e| {
            if let ConfigSource::Env(_) = self {
                e.origin = format!("{} (from {CONFIG_ENV})", e.origin);
            }
            e
        })
    }
}

/// A validated configuration: each stage's settings, assembled.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiSettings,
    pub probe: ProbeSettings,
    pub dns: DnsSettings,
    pub selection: SelectionSettings,
    pub state_dir: PathBuf,
    pub locations: Vec<Location>,
    pub edge: EdgeSettings,
    /// `[agent]`: how often each stage runs.
    pub schedule: Schedule,
    pub metrics: MetricsSettings,
    /// `[connectors]`: which connectors' status is watched.
    pub status: StatusSettings,
}

/// Everything wrong with a config file, each problem with its key path.
#[derive(Debug, thiserror::Error)]
#[error("config {origin}: {}", .problems.join("; "))]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<String>,
}

impl Config {
    /// An API-only config (no locations), for the operator commands.
    pub fn api_only(api: ApiSettings) -> Config {
        Config {
            api,
            probe: ProbeSettings::default(),
            dns: DnsSettings::default(),
            selection: SelectionSettings::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            locations: Vec::new(),
            edge: EdgeSettings::default(),
            schedule: Schedule::default(),
            metrics: MetricsSettings::default(),
            status: StatusSettings::default(),
        }
    }

    /// Parses and validates `text`. `origin` names it in errors; relative paths (PSK files,
    /// token file, state dir) are taken from `base_dir`; `env` reads environment variables.
    pub fn parse_with(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            origin: origin.to_owned(),
            problems: vec![syntax_problem(text, &e)],
        })?;
        validate::validate(raw, base_dir, env).map_err(|problems| ConfigError {
            origin: origin.to_owned(),
            problems,
        })
    }

    /// Parses `text` with the process environment and the current directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse_with(text, origin, Path::new("."), &|k| std::env::var(k).ok())
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![e.to_string()],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, &origin, base, &|k| std::env::var(k).ok())
    }

    /// Every tunnel of every location, with its location.
    pub fn tunnels(&self) -> impl Iterator<Item = (&Location, &TunnelConfig)> {
        crate::location::tunnels(&self.locations)
    }
}

/// A TOML error as `line L, column C: message`. toml's own Display quotes the offending source
/// line, which could be a secret written where it does not belong (`psk = "..."`), so it is
/// never used.
fn syntax_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            // The span is the parser's; cut at a character boundary whatever it says.
            let mut end = span.start.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let before = &text[..end];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
