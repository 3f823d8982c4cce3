//! Probe stage: ICMP echo to every endpoint address, and what the answers say.
//!
//! This module is the pure core: how to probe ([`ProbeSettings`]), what probing one address
//! found ([`Probe`]) and its statistics ([`rtt_stats`]). The engine that sends the packets is
//! [`icmp`].

pub mod adaptive;
pub mod icmp;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;
use smallvec::SmallVec;

/// How to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Echo requests per address.
    pub count: u16,
    /// Time between two requests to one address.
    pub interval: Duration,
    /// How long a request waits for its reply.
    pub timeout: Duration,
    /// Addresses probed at once.
    pub concurrency: usize,
    /// Echo requests per second, all addresses together.
    pub max_pps: u32,
    /// The network device the echo requests leave by (`IP_UNICAST_IF`; replies are taken from
    /// any device); none: wherever the routes say. On a router whose tunnels carry
    /// `0.0.0.0/0`, the WAN device keeps the probes out of the tunnel (with kernel-libipsec,
    /// whose routes go through its TUN device), so that they measure the PoPs, not the tunnel.
    pub interface: Option<String>,
    /// Give the ICMP sockets their own IPsec bypass policies (`IP_XFRM_POLICY`, as charon does
    /// for its IKE socket), so that kernel XFRM policies of the tunnels (kernel-netlink) never
    /// take the probes, whatever their selectors. Needs CAP_NET_ADMIN.
    pub bypass_xfrm: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            count: 5,
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(1),
            concurrency: 1000,
            max_pps: 2000,
            interface: None,
            bypass_xfrm: false,
        }
    }
}

/// A Linux network device name as `[probe] interface` and `--interface` take it: 1 to 15
/// bytes (IFNAMSIZ), no `/`, no whitespace.
pub fn interface_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "{name:?} is not a network device name (1 to 15 characters, e.g. \"eth0\")"
        ));
    }
    if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} is not a network device name (no '/' or spaces, e.g. \"eth0\")"
        ));
    }
    Ok(name.to_owned())
}

/// Round-trip statistics of one address.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttStats {
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
    /// Mean absolute difference of consecutive round trips (in send order).
    pub jitter: Duration,
}

/// Round trips sorted without allocating, up to this many (adaptive probing's cap is 20).
const STACK_RTTS: usize = 32;

/// Statistics of the replies, in send order. `None` when there is none.
pub fn rtt_stats(rtts: &[Duration]) -> Option<RttStats> {
    // Sorted in a copy on the stack when it fits (every probe but a long fixed one): the rank
    // core computes this for every endpoint of a 10,000-PoP catalogue. Only the round trips
    // are copied: an array of `STACK_RTTS` set to zero first was most of the time of this.
    let mut sorted: SmallVec<[Duration; STACK_RTTS]> = SmallVec::from_slice(rtts);
    sorted.sort_unstable();
    let (&min, &max) = (sorted.first()?, sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    };
    let jitter = if rtts.len() < 2 {
        Duration::ZERO
    } else {
        let total: Duration = rtts.windows(2).map(|w| w[0].abs_diff(w[1])).sum();
        total / (rtts.len() as u32 - 1)
    };
    Some(RttStats {
        min,
        median,
        max,
        jitter,
    })
}

/// What probing found, by address, in the order the addresses were probed (the order of the
/// survey's endpoints, where the rank core reads them in turn: see `rank::ProbeCursor`).
/// foldhash rather than std's SipHash for a lookup by address: 20,000 addresses for 10,000 PoPs
/// took 0.8 ms with SipHash, 0.2 ms with foldhash. Its seed is random per process, so a
/// catalogue cannot pick addresses that collide.
pub type Probes = IndexMap<IpAddr, Probe, foldhash::fast::RandomState>;

/// What probing one address found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    pub sent: u32,
    pub received: u32,
    /// Round trips of the replies, in send order. Shared, not copied, by every ranking that
    /// shows this address (one per location, and each endpoint of a 10,000-PoP rank).
    pub rtts: Arc<[Duration]>,
    /// Why the address could not be probed at all, or the first send error.
    pub error: Option<ProbeError>,
}

impl Probe {
    /// Share of requests without a reply; 1 when nothing could be sent.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            1.0
        } else {
            1.0 - f64::from(self.received) / f64::from(self.sent)
        }
    }

    pub fn reachable(&self) -> bool {
        self.received > 0
    }

    pub fn stats(&self) -> Option<RttStats> {
        rtt_stats(&self.rtts)
    }
}

/// Why an address could not be probed, or what went wrong sending to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// This host has no ICMP socket for the address's family.
    #[error("no {family} ICMP socket: {detail}")]
    NoSocket {
        family: &'static str,
        detail: String,
    },
    /// Sending failed (the ICMP engine's words).
    #[error("{0}")]
    Send(String),
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
