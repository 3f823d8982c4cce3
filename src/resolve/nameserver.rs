//! A name server as the operator writes it, on the command line (`popsel rank --nameserver`) or
//! in the config (`[dns] nameservers`): one parser for both, so that what one accepts the other
//! does too.

use std::net::{IpAddr, SocketAddr};

/// The DNS port, for a server written without one.
pub const DNS_PORT: u16 = 53;

/// `IP`, `IP:PORT`, `[IPv6]` or `[IPv6]:PORT`, IPv4 or IPv6 (`192.0.2.53`, `192.0.2.53:5353`,
/// `::1`, `[::1]`, `[::1]:5353`); port 53 when none is given. A bare IPv6 address takes no
/// port: `::1:5353` is the address `::1:5353`, so a port after an IPv6 address needs brackets.
/// Names are refused: a name server named by a name would need a name server to be found.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    let text = s.trim();
    let addr = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| (ip, DNS_PORT).into()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            let ip = inner.parse::<std::net::Ipv6Addr>().ok()?;
            Some((IpAddr::V6(ip), DNS_PORT).into())
        })
        .ok_or_else(|| {
            format!(
                "{s:?} is not IP or IP:PORT (e.g. 192.0.2.53, 192.0.2.53:5353, ::1 or [::1]:5353)"
            )
        })?;
    if addr.port() == 0 {
        return Err(format!(
            "{s:?}: port 0 is no server's port (leave the port out for 53)"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
#[path = "nameserver_tests.rs"]
mod tests;
