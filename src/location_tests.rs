use super::*;

#[test]
fn traffic_selectors_parse_subnets_hosts_and_both_families() {
    for (text, shown) in [
        ("10.1.0.0/24", "10.1.0.0/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        (" 192.0.2.7 ", "192.0.2.7/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::/0", "::/0"),
        ("2001:db8::1", "2001:db8::1/128"),
    ] {
        let ts = TrafficSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ts.to_string(), shown);
    }
}

#[test]
fn traffic_selectors_refuse_what_charon_would_read_otherwise() {
    for (text, says) in [
        ("10.1.0.5/24", "the subnet is 10.1.0.0/24"),
        ("10.1.0.0/33", "0 to 32"),
        ("2001:db8::/129", "0 to 128"),
        ("10.1.0.0/-1", "0 to 32"),
        ("10.1.0/24", "ADDRESS/PREFIX"),
        ("dynamic", "ADDRESS/PREFIX"),
        ("", "ADDRESS/PREFIX"),
    ] {
        let e = TrafficSelector::parse(text).unwrap_err();
        assert!(e.contains(says), "{text}: {e}");
    }
}
