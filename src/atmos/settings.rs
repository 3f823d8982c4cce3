//! `[api]` of the config: how to reach the Atmos admin API.

use std::path::PathBuf;
use std::time::Duration;

use super::client::{DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// None: `--api-url`, `POPSEL_API_URL`, else the default URL.
    pub base_url: Option<String>,
    /// A file holding the token; `POPSEL_API_TOKEN` wins over it.
    pub token_file: Option<PathBuf>,
    /// Per request, connection included.
    pub timeout: Duration,
    /// Objects per page when listing.
    pub page_size: u32,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            token_file: None,
            timeout: DEFAULT_TIMEOUT,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}
