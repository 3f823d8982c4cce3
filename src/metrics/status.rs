//! The status stage's families: state sets in the manner of node_exporter's
//! `node_systemd_unit_state`, every state always present and 1 for the current one, so that a
//! query needs no `absent()`.

use prometheus::{IntGaugeVec, Result};

use super::family::{Family, collector};
use crate::atmos::{ConnectorState, TunnelState};
use crate::status::{ConnectorStatusRow, TunnelStatusRow};

const TUNNEL_STATUS: Family = Family {
    name: "popsel_tunnel_status",
    help: "Tunnel status as reported by Atmos: 1 for the current state, 0 for the others.",
    labels: &["location", "tunnel", "state"],
};
const TUNNEL_UP: Family = Family {
    name: "popsel_tunnel_up",
    help: "1 if Atmos reports the tunnel Connected.",
    labels: &["location", "tunnel"],
};
const CONNECTOR_STATUS: Family = Family {
    name: "popsel_connector_status",
    help: "Connector status as reported by Atmos: 1 for the current state, 0 for the others.",
    labels: &["connector", "state"],
};

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct StatusCollector {
    tunnel_status: IntGaugeVec,
    tunnel_up: IntGaugeVec,
    connector_status: IntGaugeVec,
}

collector!(StatusCollector {
    tunnel_status,
    tunnel_up,
    connector_status
});

impl StatusCollector {
    pub const FAMILIES: [&'static str; 3] =
        [TUNNEL_STATUS.name, TUNNEL_UP.name, CONNECTOR_STATUS.name];

    pub fn new() -> Result<StatusCollector> {
        Ok(StatusCollector {
            tunnel_status: TUNNEL_STATUS.int_gauges()?,
            tunnel_up: TUNNEL_UP.int_gauges()?,
            connector_status: CONNECTOR_STATUS.int_gauges()?,
        })
    }

    /// Every configured tunnel's status; rebuilt so that removed tunnels lose their series.
    pub fn observe_tunnels(&self, statuses: &[TunnelStatusRow]) {
        self.tunnel_status.reset();
        self.tunnel_up.reset();
        for row in statuses {
            for s in TunnelState::ALL {
                self.tunnel_status
                    .with_label_values(&[row.location.as_str(), &row.tunnel, s.as_str()])
                    .set(i64::from(s == row.state));
            }
            self.tunnel_up
                .with_label_values(&[row.location.as_str(), &row.tunnel])
                .set(i64::from(row.state == TunnelState::Connected));
        }
    }

    /// Every watched connector's status; rebuilt so that removed connectors lose their series.
    pub fn observe_connectors(&self, statuses: &[ConnectorStatusRow]) {
        self.connector_status.reset();
        for row in statuses {
            for s in ConnectorState::ALL {
                self.connector_status
                    .with_label_values(&[row.connector.as_str(), s.as_str()])
                    .set(i64::from(s == row.state));
            }
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
