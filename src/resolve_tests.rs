use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fqdn(ips: &[&str]) -> ListedFqdn {
    ListedFqdn {
        name: "a.pops.test".into(),
        ips: ips.iter().map(|s| ip(s)).collect(),
    }
}

#[test]
fn merge_marks_sources_and_keeps_each_address_once() {
    let f = fqdn(&["198.18.0.1", "198.18.0.2"]);
    let answer = Answer::Addresses(vec![ip("198.18.0.2"), ip("198.18.0.9"), ip("198.18.0.9")]);
    let got: Vec<(IpAddr, Source)> = merge(&f, &answer)
        .into_iter()
        .map(|e| (e.ip, e.source))
        .collect();
    assert_eq!(
        got,
        [
            (ip("198.18.0.1"), Source::Catalog),
            (ip("198.18.0.2"), Source::Both),
            (ip("198.18.0.9"), Source::Dns)
        ]
    );
}

#[test]
fn failed_lookups_fall_back_to_the_listed_addresses() {
    let f = fqdn(&["198.18.0.1"]);
    for answer in [
        Answer::NxDomain,
        Answer::NoRecords,
        Answer::Failed("timeout".into()),
        Answer::NotAsked,
    ] {
        let got = merge(&f, &answer);
        assert_eq!(got.len(), 1, "{answer:?}");
        assert_eq!(
            (got[0].ip, got[0].source),
            (ip("198.18.0.1"), Source::Catalog)
        );
    }
}

#[test]
fn special_use_names_are_recognised() {
    for name in [
        "a.pops.popsel.test",
        "x.INVALID.",
        "example",
        "host.localhost",
    ] {
        assert!(is_special_use(name), "{name}");
    }
    for name in ["ipsec.axisapps.io", "testing.com", "mytest"] {
        assert!(!is_special_use(name), "{name}");
    }
}

#[test]
fn a_name_with_no_listed_address_lives_on_dns_alone() {
    let f = fqdn(&[]);
    assert!(merge(&f, &Answer::NxDomain).is_empty());
    let got = merge(&f, &Answer::Addresses(vec![ip("::1")]));
    assert_eq!((got[0].ip, got[0].source), (ip("::1"), Source::Dns));
}
