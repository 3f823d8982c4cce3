//! The configuration file (TOML). Parsed from `&str` so that tests feed strings; unknown keys
//! are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::atmos::{DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub api: ApiSection,
}

/// `[api]`: how to reach the Atmos admin API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub base_url: Option<String>,
    /// A file holding the token; `POPSEL_API_TOKEN` wins over it.
    pub token_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
    pub page_size: Option<u32>,
}

impl ApiSection {
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(DEFAULT_PAGE_SIZE)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("config {path}: {detail}")]
pub struct ConfigError {
    pub path: String,
    pub detail: String,
}

impl Config {
    /// `origin` names the text in errors (a path, or `<string>`).
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: origin.to_owned(),
            detail: e.to_string().trim_end().to_owned(),
        })?;
        config.check(origin)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: origin.clone(),
            detail: e.to_string(),
        })?;
        Self::parse(&text, &origin)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let problem = |detail: String| ConfigError {
            path: origin.to_owned(),
            detail,
        };
        if let Some(size) = self.api.page_size {
            if !(1..=1000).contains(&size) {
                return Err(problem(format!(
                    "api.page_size: {size} is out of range; use 1 to 1000"
                )));
            }
        }
        if self.api.timeout == Some(Duration::ZERO) {
            return Err(problem("api.timeout: must be more than 0s".into()));
        }
        Ok(())
    }
}

/// Durations written the way people write them: "15s", "200ms", "1m 30s".
pub mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"15s\" or \"200ms\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_section() {
        let c = Config::parse(
            "[api]\nbase_url = \"http://127.0.0.1:9\"\ntimeout = \"3s\"\npage_size = 20\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.api.base_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(c.api.timeout(), Duration::from_secs(3));
        assert_eq!(c.api.page_size(), 20);
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = Config::parse("[api]\nbase_ulr = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config t.toml:") && e.contains("base_ulr"),
            "{e}"
        );
        let e = Config::parse("[api]\ntimeout = \"soon\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        let e = Config::parse("[api]\npage_size = 0\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api.page_size: 0 is out of range"), "{e}");
    }
}
