//! `[api]` of the config: how to reach the Atmos admin API.

use std::path::PathBuf;
use std::time::Duration;

use super::client::{
    DEFAULT_MAX_CATALOG_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT,
};
use super::origin::shown_url;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// None: `--api-url`, `POPSEL_API_URL`, else the default URL.
    pub base_url: Option<String>,
    /// A file holding the token; `POPSEL_API_TOKEN` wins over it.
    pub token_file: Option<PathBuf>,
    /// Per request, connection and body included.
    pub timeout: Duration,
    /// Objects per page when listing.
    pub page_size: u32,
    /// The largest answer read, but for the PoP catalogue's.
    pub max_response_bytes: usize,
    /// The largest PoP catalogue read.
    pub max_catalog_bytes: usize,
    /// Plain http to a host other than this machine is refused unless this is set.
    pub allow_insecure_http: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            token_file: None,
            timeout: DEFAULT_TIMEOUT,
            page_size: DEFAULT_PAGE_SIZE,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_catalog_bytes: DEFAULT_MAX_CATALOG_BYTES,
            allow_insecure_http: false,
        }
    }
}

/// By hand, so that credentials someone wrote into the URL never show.
impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSettings")
            .field("base_url", &self.base_url.as_deref().map(shown_url))
            .field("token_file", &self.token_file)
            .field("timeout", &self.timeout)
            .field("page_size", &self.page_size)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_catalog_bytes", &self.max_catalog_bytes)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}
