//! The file as written: every key optional where a default exists, unknown keys rejected.
//! `validate` turns this into a `Config`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub probe: RawProbe,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub selection: RawSelection,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub locations: Vec<RawLocation>,
    #[serde(default)]
    pub edge: RawEdge,
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub connectors: RawConnectors,
}

/// `[api]`: how to reach the Atmos admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub base_url: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    pub page_size: Option<u32>,
    pub max_response_bytes: Option<u64>,
    pub max_catalog_bytes: Option<u64>,
    pub allow_insecure_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub count: Option<u16>,
    #[serde(default, deserialize_with = "duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    pub max_pps: Option<u32>,
    pub interface: Option<String>,
    pub bypass_xfrm: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub nameservers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelection {
    pub switch_min_improvement_ms: Option<f64>,
    pub switch_min_improvement_ratio: Option<f64>,
    pub switch_after_cycles: Option<u32>,
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    pub provider_margin_ms: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub name: Option<String>,
    pub location_id: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub local: Option<bool>,
    #[serde(default)]
    pub tunnels: Vec<RawTunnel>,
    #[serde(default)]
    pub local_ts: Vec<String>,
    #[serde(default)]
    pub remote_ts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTunnel {
    pub name: Option<String>,
    pub role: Option<String>,
    pub authentication_id: Option<String>,
    pub psk_file: Option<PathBuf>,
    pub psk_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    pub swanctl_dir: Option<PathBuf>,
    pub vici_socket: Option<PathBuf>,
    pub on_change: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub on_change_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    #[serde(default, deserialize_with = "duration")]
    pub catalog_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub probe_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub reconcile_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub status_interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub audit_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub rtt_histogram: Option<bool>,
    pub endpoint_series: Option<bool>,
    pub ranked_pops: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnectors {
    /// Connector ids to watch; absent or empty: none; `["*"]`: every connector of the account.
    #[serde(default)]
    pub watch: Vec<String>,
}

/// Durations written the way people write them: "15s", "200ms", "1m 30s".
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write e.g. \"15s\" or \"200ms\""
        ))
    })
}
