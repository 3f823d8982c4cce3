//! The configuration file (TOML; `config/popsel.example.toml` documents every key).
//!
//! Parsed from `&str` so that tests feed strings. Unknown keys are errors, so a typo never
//! silently falls back to a default. Loading validates everything before any network call and
//! reports every problem at once, each with its key path
//! (`locations[1].tunnels[0].authentication_id: "bob@" is neither an email nor an IP address`).
//! PSKs are read (from files or the environment) during validation and held as secrets.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use crate::catalog::Filter;
use crate::probe::ProbeSettings;
use crate::rank::Site;
use crate::resolve::DnsSettings;

pub use raw::ApiSection;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/popsel";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9469";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiSection,
    pub probe: ProbeSettings,
    pub dns: DnsSettings,
    pub selection: SelectionSettings,
    pub state_dir: PathBuf,
    pub locations: Vec<Location>,
    pub edge: EdgeSettings,
    pub agent: AgentSettings,
    pub metrics: MetricsSettings,
    /// Connector ids whose status is watched; empty: all connectors.
    pub connectors: Vec<String>,
}

/// When a selection may change, and among which PoPs.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionSettings {
    /// A challenger must be at least this much faster (ms)…
    pub switch_min_improvement_ms: f64,
    /// …and at least this share faster…
    pub switch_min_improvement_ratio: f64,
    /// …for this many consecutive cycles.
    pub switch_after_cycles: u32,
    /// Allowed countries, excluded cities or FQDNs.
    pub filter: Filter,
    /// Providers in order of preference: among PoPs scoring within `provider_margin_ms` of the
    /// best, the preferred provider wins. The secondary prefers a provider other than the
    /// primary's within the same margin.
    pub providers: Vec<String>,
    pub provider_margin_ms: f64,
}

impl Default for SelectionSettings {
    fn default() -> Self {
        Self {
            switch_min_improvement_ms: 10.0,
            switch_min_improvement_ratio: 0.2,
            switch_after_cycles: 3,
            filter: Filter::default(),
            providers: Vec::new(),
            provider_margin_ms: 5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A site whose tunnels popsel manages.
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub location_id: String,
    pub site: Site,
    /// Latency measured from this host applies (true), or PoPs are ranked by distance (false).
    pub local: bool,
    pub tunnels: Vec<TunnelConfig>,
}

/// A tunnel as the config wants it. `Debug` never shows the PSK.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub name: String,
    pub role: Role,
    pub authentication_id: String,
    pub psk: SecretString,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Where to write strongSwan swanctl files; none: no rendering.
    pub swanctl_dir: Option<PathBuf>,
    /// Program and arguments run when a selection changes; no shell is involved.
    pub on_change: Option<Vec<String>>,
    pub on_change_timeout: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            swanctl_dir: None,
            on_change: None,
            on_change_timeout: Duration::from_secs(30),
        }
    }
}

/// How often each stage of the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentSettings {
    pub catalog_interval: Duration,
    pub probe_interval: Duration,
    pub reconcile_interval: Duration,
    pub status_interval: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            catalog_interval: Duration::from_secs(3600),
            probe_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            status_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9469)),
        }
    }
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
    pub fn api_only(api: ApiSection) -> Config {
        Config {
            api,
            probe: ProbeSettings::default(),
            dns: DnsSettings::default(),
            selection: SelectionSettings::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            locations: Vec::new(),
            edge: EdgeSettings::default(),
            agent: AgentSettings::default(),
            metrics: MetricsSettings::default(),
            connectors: Vec::new(),
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
        self.locations
            .iter()
            .flat_map(|l| l.tunnels.iter().map(move |t| (l, t)))
    }
}

/// A TOML error as `line L, column C: message`. toml's own Display quotes the offending source
/// line, which could be a secret written where it does not belong (`psk = "..."`), so it is
/// never used.
fn syntax_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests;
