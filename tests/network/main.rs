//! popsel on the network, as the kernel and a name server see it: ICMP probes over loopback and
//! in network namespaces (`probe_icmp`), DNS to a real server on loopback (`resolve_dns`),
//! `popsel rank` in the latency lab (`lab_rank`), `popsel demo` measuring in a lab of its own
//! (`demo_lab`), the IPsec lab of real strongSwan charons (`ipsec_lab`), and popsel's
//! files-mode hand-off and probes in it (`ipsec_files`). One test binary, so that the crate and
//! the labs' dependencies (hickory-server) are linked once for all of them.
//!
//! Most of these tests need root (raw sockets, namespaces, TUN): they skip elsewhere and fail
//! under CI=true (`support::can_run_privileged`).

#[path = "../support/mod.rs"]
mod support;

// The latency lab's test side and its DNS server (which the resolve tests also use), at the
// crate root as in `examples/lab.rs`, which includes them too; there they find the namespace
// guard and the bounded commands of `support` as `crate::netns`, `crate::bounded`.
#[allow(dead_code)]
#[path = "../support/dns.rs"]
mod dns;
#[allow(dead_code)]
#[path = "../support/lab.rs"]
mod lab;
use support::{bounded, netns};

mod demo_lab;
mod ipsec_files;
mod ipsec_lab;
mod ipsec_vici;
mod lab_agent;
mod lab_rank;
mod metrics_fleet;
mod probe_icmp;
mod probe_xfrm;
mod resolve_dns;
