use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
fn every_form_of_ipv4_and_ipv6_with_and_without_a_port() {
    for (text, expected) in [
        ("192.0.2.53", addr("192.0.2.53", 53)),
        ("192.0.2.53:5353", addr("192.0.2.53", 5353)),
        ("127.0.0.1:53", addr("127.0.0.1", 53)),
        ("::1", addr("::1", 53)),
        ("[::1]", addr("::1", 53)),
        ("[::1]:5353", addr("::1", 5353)),
        ("2001:db8::53", addr("2001:db8::53", 53)),
        ("[2001:db8::53]:853", addr("2001:db8::53", 853)),
        ("::ffff:192.0.2.1", addr("::ffff:192.0.2.1", 53)),
        (" 192.0.2.53 ", addr("192.0.2.53", 53)),
    ] {
        assert_eq!(parse_nameserver(text), Ok(expected), "{text:?}");
    }
}

#[test]
fn a_port_after_a_bare_ipv6_address_is_part_of_the_address() {
    // RFC 5952 §6: without brackets the last group cannot be told from a port.
    assert_eq!(parse_nameserver("::1:5353"), Ok(addr("::1:5353", 53)));
}

#[test]
fn what_is_not_an_address_is_refused_saying_what_is_expected() {
    for text in [
        "",
        " ",
        "localhost",
        "dns.example:53",
        "192.0.2.53:",
        "192.0.2.53:65536",
        "192.0.2.53:-1",
        "192.0.2.53:x",
        "192.0.2",
        "256.0.0.1",
        "[192.0.2.53]:53",
        "[::1",
        "::1]",
        "[::1]:",
        "[[::1]]",
        "::1::2",
        "192.0.2.53 :53",
        "192.0.2.53:53:53",
    ] {
        let e = parse_nameserver(text).expect_err(text);
        assert!(e.contains("IP:PORT") || e.contains("port"), "{text:?}: {e}");
        assert!(e.contains(&format!("{text:?}")), "{text:?} quoted in {e}");
    }
}

#[test]
fn port_zero_is_refused() {
    for text in ["192.0.2.53:0", "[::1]:0"] {
        let e = parse_nameserver(text).expect_err(text);
        assert!(e.contains("port 0"), "{e}");
    }
}

proptest! {
    #[test]
    fn any_socket_address_as_written_comes_back(ip in any::<IpAddr>(), port in 1u16..) {
        let a = SocketAddr::new(ip, port);
        prop_assert_eq!(parse_nameserver(&a.to_string()), Ok(a));
    }

    #[test]
    fn any_bare_address_is_port_53(v4 in any::<Ipv4Addr>(), v6 in any::<Ipv6Addr>()) {
        prop_assert_eq!(parse_nameserver(&v4.to_string()), Ok(SocketAddr::new(v4.into(), 53)));
        prop_assert_eq!(parse_nameserver(&v6.to_string()), Ok(SocketAddr::new(v6.into(), 53)));
        prop_assert_eq!(parse_nameserver(&format!("[{v6}]")), Ok(SocketAddr::new(v6.into(), 53)));
    }

    #[test]
    fn no_text_panics(s in ".{0,64}") {
        let _ = parse_nameserver(&s);
    }
}
