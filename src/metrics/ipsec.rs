//! The hand-off stage's families when popsel drives charon: what the router's own IPsec stack
//! holds, beside what Atmos reports (`popsel_tunnel_up`), so that an alert can tell a tunnel
//! Atmos sees down from one this router has not brought up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounterVec, IntGaugeVec, Result};

use super::family::{Family, collector};
use crate::edge::charon::SaStatus;

const SA_UP: Family = Family {
    name: "popsel_ipsec_sa_up",
    help: "1 when the role's SA is up in the local charon: the primary's CHILD_SA installed (it carries the traffic), the secondary's IKE_SA established (hot standby).",
    labels: &["location", "role", "tunnel", "pop"],
};
const IKE_UP: Family = Family {
    name: "popsel_ipsec_ike_up",
    help: "1 when the tunnel's IKE_SA is established in the local charon (what Atmos should report as Connected).",
    labels: &["location", "tunnel"],
};
const BYTES: Family = Family {
    name: "popsel_ipsec_bytes_total",
    help: "Bytes through the primary's CHILD_SAs (direction in or out), summed over the SAs that carried them.",
    labels: &["location", "role", "direction"],
};
const ESTABLISHED: Family = Family {
    name: "popsel_ipsec_sa_established_seconds",
    help: "Seconds since the role's IKE_SA was established.",
    labels: &["location", "role"],
};

/// What the bytes counter last saw of a CHILD_SA: charon counts per SA, a counter must not
/// go back when the SA is replaced (rekey, failover).
type Seen = HashMap<(String, String, &'static str), (u32, u64)>;

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct IpsecCollector {
    sa_up: IntGaugeVec,
    ike_up: IntGaugeVec,
    bytes: IntCounterVec,
    established: IntGaugeVec,
    seen: Arc<Mutex<Seen>>,
}

collector!(IpsecCollector {
    sa_up,
    ike_up,
    bytes,
    established
});

impl IpsecCollector {
    pub const FAMILIES: [&'static str; 4] = [SA_UP.name, IKE_UP.name, BYTES.name, ESTABLISHED.name];

    pub fn new() -> Result<IpsecCollector> {
        Ok(IpsecCollector {
            sa_up: SA_UP.int_gauges()?,
            ike_up: IKE_UP.int_gauges()?,
            bytes: BYTES.counters()?,
            established: ESTABLISHED.int_gauges()?,
            seen: Arc::default(),
        })
    }

    /// The SAs after a hand-off; the gauges are rebuilt so that a tunnel that changed PoP or
    /// left the config loses its old series.
    pub fn observe(&self, sas: &[SaStatus]) {
        self.sa_up.reset();
        self.ike_up.reset();
        self.established.reset();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for sa in sas {
            let role = sa.role.as_str();
            self.sa_up
                .with_label_values(&[sa.location.as_str(), role, &sa.tunnel, &sa.pop])
                .set(i64::from(sa.up));
            self.ike_up
                .with_label_values(&[sa.location.as_str(), &sa.tunnel])
                .set(i64::from(sa.ike_up));
            if let Some(secs) = sa.established_secs {
                self.established
                    .with_label_values(&[sa.location.as_str(), role])
                    .set(i64::try_from(secs).unwrap_or(i64::MAX));
            }
            let Some(child) = sa.child_id else { continue };
            for (direction, bytes) in [("in", sa.bytes_in), ("out", sa.bytes_out)] {
                let Some(bytes) = bytes else { continue };
                let key = (sa.location.clone(), role.to_owned(), direction);
                // A new SA counts from zero: what the old one carried after the last look
                // is lost, at most one round's worth.
                let before = match seen.get(&key) {
                    Some(&(id, last)) if id == child && bytes >= last => last,
                    _ => 0,
                };
                self.bytes
                    .with_label_values(&[sa.location.as_str(), role, direction])
                    .inc_by(bytes - before);
                seen.insert(key, (child, bytes));
            }
        }
    }
}

#[cfg(test)]
#[path = "ipsec_tests.rs"]
mod tests;
