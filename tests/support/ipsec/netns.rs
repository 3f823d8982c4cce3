//! The IPsec lab's network namespaces: `popsel-ipsec-<pid>-<lab>-<role>`, guards of the shared
//! [`NetNs`] (`tests/support/netns.rs`, which also sweeps what a killed lab left), with IPv6
//! turned off.

use std::time::Duration;

pub use super::super::netns::{NetNs, enter};

pub const PREFIX: &str = "popsel-ipsec-";
/// Turning IPv6 off is immediate; this only bounds a hung shell.
const SYSCTL_LIMIT: Duration = Duration::from_secs(10);

/// Creates `popsel-ipsec-<pid>-<lab>-<role>` with its loopback up and no IPv6.
pub fn create(lab: usize, role: &str) -> Result<NetNs, String> {
    let ns = NetNs::create(PREFIX, &format!("{lab}-{role}"))?;
    // No IPv6 in the lab: its link-local addresses' duplicate detection ends seconds after a
    // link comes up, and charon takes each such event as a reason to re-check its paths.
    // Best effort: a kernel without IPv6 has nothing to turn off.
    let _ = ns.exec(
        &[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ],
        SYSCTL_LIMIT,
    );
    Ok(ns)
}

/// Names of the IPsec lab namespaces that exist now.
pub fn existing() -> Vec<String> {
    super::super::netns::existing(PREFIX)
}

/// Deletes the IPsec lab namespaces of killed test processes, and what still runs in them.
pub fn sweep_stale() {
    super::super::netns::sweep_stale(PREFIX);
}
