//! `[probe] bypass_xfrm`: probes past the kernel's IPsec policies. On a router whose IPsec is in
//! the kernel (charon's kernel-netlink), a tunnel is an XFRM policy, and a policy whose selectors
//! cover a PoP's address takes popsel's probes to it, whatever the routes. These kernels have
//! no ESP transform, so the test needs none: a policy that requires ESP toward the peer and no
//! SA to do it drops the packets (as a tunnel whose SA is down would), and the probe socket's
//! own bypass policy gets past it.
//!
//! Two namespaces joined by a veth, 198.18.201.0/24. Root only: skips elsewhere, fails under
//! CI=true.

use crate::support;
use crate::support::netns::{self, NetNs};

use std::net::IpAddr;
use std::time::Duration;

use popsel::probe::ProbeSettings;
use popsel::probe::icmp::Prober;

/// Namespaces `popsel-xfrm-<pid>-…`.
const PREFIX: &str = "popsel-xfrm-";
const HERE: &str = "198.18.201.1";
const PEER: &str = "198.18.201.2";

/// A namespace pair, `here` holding a policy that requires ESP for everything to `PEER`.
fn world() -> Result<(NetNs, NetNs), String> {
    netns::sweep_stale(PREFIX);
    let here = NetNs::create(PREFIX, "here")?;
    let peer = NetNs::create(PREFIX, "peer")?;
    netns::ip(&[
        "link",
        "add",
        "xh",
        "netns",
        here.name(),
        "type",
        "veth",
        "peer",
        "name",
        "xp",
        "netns",
        peer.name(),
    ])?;
    here.ip(&["addr", "add", &format!("{HERE}/24"), "dev", "xh"])?;
    here.ip(&["link", "set", "xh", "up"])?;
    peer.ip(&["addr", "add", &format!("{PEER}/24"), "dev", "xp"])?;
    peer.ip(&["link", "set", "xp", "up"])?;
    here.ip(&[
        "xfrm",
        "policy",
        "add",
        "src",
        "0.0.0.0/0",
        "dst",
        &format!("{PEER}/32"),
        "dir",
        "out",
        "tmpl",
        "src",
        HERE,
        "dst",
        PEER,
        "proto",
        "esp",
        "mode",
        "tunnel",
    ])?;
    Ok((here, peer))
}

/// Replies to `count` echo requests to PEER from a prober made in `ns` with `settings`.
fn replies(ns: &NetNs, settings: ProbeSettings) -> Result<u32, String> {
    let name = ns.name().to_owned();
    std::thread::spawn(move || -> Result<u32, String> {
        netns::enter(&name)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let prober = Prober::new(&settings).map_err(|e| e.to_string())?;
            let peer: IpAddr = PEER.parse().expect("address");
            let results = prober
                .probe(&[peer], &settings, &popsel::progress::Progress::default())
                .await;
            Ok(results.get(&peer).map_or(0, |p| p.received))
        })
    })
    .join()
    .map_err(|_| "the probing thread panicked".to_owned())?
}

#[test]
fn probes_with_bypass_policies_pass_a_tunnel_policy_that_takes_the_others() {
    if !support::can_run_privileged(support::ipsec::available()) {
        return;
    }
    let (here, _peer) = world().unwrap_or_else(|e| panic!("set up the namespaces: {e}"));
    let settings = ProbeSettings {
        count: 3,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..ProbeSettings::default()
    };
    let taken = replies(&here, settings.clone()).expect("probe without bypass");
    assert_eq!(taken, 0, "the policy takes the probes (no SA: dropped)");
    let bypassed = replies(
        &here,
        ProbeSettings {
            bypass_xfrm: true,
            ..settings
        },
    )
    .expect("probe with bypass");
    assert_eq!(bypassed, 3, "the socket's own policies get past it");
}
