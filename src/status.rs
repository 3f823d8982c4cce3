//! Status stage: what Atmos says of the configured tunnels and of the watched connectors. The
//! export stage turns it into state-set metrics; a status that cannot be read is `Unknown`.

use crate::atmos::{ApiError, Client, Connector, ConnectorState, Tunnel, TunnelState};
use crate::location::{Location, tunnels};
use crate::reconcile::ManagedTunnels;

/// `[connectors]` of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSettings {
    pub watch: Watched,
}

/// The connectors whose status is exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// These, each read by its id (none: no connector is watched).
    Ids(Vec<String>),
    /// Every connector of the account (`watch = ["*"]`): the account's connectors are listed
    /// at each poll, so each agent costs the API in proportion to the account, not to its
    /// site. For one site, not for a fleet.
    All,
}

impl Default for Watched {
    fn default() -> Self {
        Watched::Ids(Vec::new())
    }
}

/// A configured tunnel's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelStatusRow {
    pub location: String,
    pub tunnel: String,
    pub state: TunnelState,
}

/// A watched connector's status, by name (its id when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatusRow {
    pub connector: String,
    pub state: ConnectorState,
}

/// The result of the status stage.
#[derive(Debug, Default)]
pub struct Statuses {
    pub tunnels: Vec<TunnelStatusRow>,
    pub connectors: Vec<ConnectorStatusRow>,
    /// Calls that failed; what they were about shows as `Unknown`.
    pub failures: Vec<ApiError>,
}

/// Every configured tunnel's status (`Unknown` for one popsel does not manage yet) and every
/// watched connector's.
pub async fn poll(
    client: &Client,
    locations: &[Location],
    managed: &ManagedTunnels,
    settings: &StatusSettings,
) -> Statuses {
    let mut out = Statuses::default();
    for (loc, t) in tunnels(locations) {
        let state = match managed.id_of(&t.name) {
            None => TunnelState::Unknown,
            Some(id) => match client.status::<Tunnel>(id).await {
                Ok(s) => s.status,
                Err(e) => {
                    out.failures.push(e);
                    TunnelState::Unknown
                }
            },
        };
        out.tunnels.push(TunnelStatusRow {
            location: loc.name.clone(),
            tunnel: t.name.clone(),
            state,
        });
    }
    match connectors(client, &settings.watch).await {
        Ok(rows) => out.connectors = rows,
        Err(e) => out.failures.push(e),
    }
    out
}

/// The watched connectors. A connector whose status cannot be read is `Unknown`; only
/// failing to find the connectors fails.
async fn connectors(client: &Client, watch: &Watched) -> Result<Vec<ConnectorStatusRow>, ApiError> {
    let connectors = match watch {
        Watched::All => client.list::<Connector>().await?,
        Watched::Ids(ids) => {
            let mut out = Vec::new();
            for id in ids {
                out.push(client.get::<Connector>(id).await?);
            }
            out
        }
    };
    let mut rows = Vec::new();
    for c in connectors {
        let state = client
            .status::<Connector>(&c.id)
            .await
            .map(|s| s.status)
            .unwrap_or(ConnectorState::Unknown);
        let connector = if c.name.is_empty() { c.id } else { c.name };
        rows.push(ConnectorStatusRow { connector, state });
    }
    Ok(rows)
}
