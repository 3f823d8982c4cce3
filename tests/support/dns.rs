//! A real authoritative DNS server for tests: hickory-server on 127.0.0.1, UDP and TCP on one
//! port (so one `IP:PORT` serves both, as `--nameserver` expects), for one zone of A and AAAA
//! records. Any other name under the zone is NXDOMAIN. Declared with `#[path]` by the network
//! test binary (its `resolve_dns` tests, and the latency lab's test side, `lab.rs`, which runs it
//! inside the lab's namespace, where 127.0.0.1 is the namespace's loopback) and by
//! `examples/lab.rs`; binaries without DNS tests do not compile it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// A running server: serves until dropped (or its runtime ends).
pub struct DnsServer {
    pub addr: SocketAddr,
    _server: Server<Catalog>,
}

/// An absolute DNS name (a trailing dot is added when missing).
pub fn name(text: &str) -> Result<Name, String> {
    let fqdn = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(&fqdn).map_err(|e| format!("DNS name {fqdn:?}: {e}"))
}

/// Binds UDP on 127.0.0.1 port 0 and TCP on the same port, retrying when that TCP port is
/// taken.
pub async fn bind_udp_and_tcp() -> Result<(UdpSocket, TcpListener, SocketAddr), String> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind UDP 127.0.0.1:0 for DNS: {e}"))?;
        let addr = udp.local_addr().map_err(|e| e.to_string())?;
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return Ok((udp, tcp, addr));
        }
    }
    Err("no port free for both UDP and TCP on 127.0.0.1".into())
}

/// Starts a server for `origin` with `zone` (owner name -> addresses). Must run inside a tokio
/// runtime.
pub async fn start(
    origin: &str,
    zone: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<DnsServer, String> {
    let origin = name(origin)?;
    let serial = 1;
    let mut handler: InMemoryZoneHandler =
        InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        name(&format!("ns.{origin}"))?,
        name(&format!("hostmaster.{origin}"))?,
        serial,
        3600,
        600,
        86400,
        60,
    );
    handler.upsert_mut(
        Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)),
        serial,
    );
    for (owner, addresses) in zone {
        let owner = name(owner)?;
        for ip in addresses {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            if !handler.upsert_mut(Record::from_rdata(owner.clone(), 60, rdata), serial) {
                return Err(format!("zone {origin}: could not add {owner} {ip}"));
            }
        }
    }
    let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![handler]);
    let (udp, tcp, addr) = bind_udp_and_tcp().await?;
    let mut server = Server::new(catalog);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 64);
    Ok(DnsServer {
        addr,
        _server: server,
    })
}
