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
    /// Opens the config's state dir as its one writer (the agent, `popsel apply`; fails,
    /// naming the holder, when another process has it) and sets up its resolver (`dns:
    /// false`: none). A reload opens the same dir again and shares this process's lock; a
    /// reload to another dir takes that one's lock (or fails, and the old generation stays)
    /// and the old one is released when the last stage using it ends.
    pub fn new(
        config: Config,
        client: Client,
        dns: bool,
        report: &dyn Report,
    ) -> Result<Generation, StateError> {
        let state = StateDir::open(&config.state_dir)?;
        Ok(Self::with_state(config, client, dns, report, state))
    }

    /// As [`new`](Self::new), reading the state dir beside its writer without a lock and
    /// writing nothing to it but a missing fingerprint key (`popsel plan`).
    pub fn read_only(
        config: Config,
        client: Client,
        dns: bool,
        report: &dyn Report,
    ) -> Result<Generation, StateError> {
        let state = StateDir::open_read_only(&config.state_dir)?;
        Ok(Self::with_state(config, client, dns, report, state))
    }

    fn with_state(
        config: Config,
        client: Client,
        dns: bool,
        report: &dyn Report,
        state: StateDir,
    ) -> Generation {
        let dns = dns.then(|| resolver(config.dns.clone(), report)).flatten();
        Generation {
            config,
            client,
            state,
            dns,
        }
    }
}
