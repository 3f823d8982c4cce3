//! One generation of configuration: the config, the API client built from it, and what is
//! derived from them. Immutable once built; a reload builds a new one and swaps it in whole,
//! so that a stage run reads one generation from start to end and never mixes an old config
//! with a new client.

use crate::atmos::Client;
use crate::config::Config;
use crate::resolve::dns::DnsResolver;
use crate::state::{StateDir, StateError};

use super::measure::resolver;
use super::notice::Report;

pub struct Generation {
    pub config: Config,
    pub client: Client,
    pub state: StateDir,
    /// `None`: the catalogue's addresses only (DNS off, or it could not be set up). Kept for
    /// the generation's life for its cache.
    pub dns: Option<DnsResolver>,
}

impl Generation {
    /// Opens the config's state dir and sets up its resolver (`dns: false`: none).
    pub fn new(
        config: Config,
        client: Client,
        dns: bool,
        report: &dyn Report,
    ) -> Result<Generation, StateError> {
        let state = StateDir::open(&config.state_dir)?;
        let dns = dns.then(|| resolver(config.dns.clone(), report)).flatten();
        Ok(Generation {
            config,
            client,
            state,
            dns,
        })
    }
}
