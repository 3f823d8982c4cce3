use super::*;

#[test]
fn entries_borrow_their_strings_from_the_text() {
    let text = r#"{"ipSecLocations": [{"country": "DE", "locations": [
        {"city": "Frankfurt", "latitude": "50.11", "longitude": 8.68, "provider": "AWS",
         "fqdn": [{"name": "a.example", "ip": ["198.18.0.1", "bad"]}, 7, {"name": "b.example", "ip": "198.18.0.2"}]},
        {"city": "M\u00fcnchen", "fqdn": []}
    ]}]}"#;
    let mut seen = Vec::new();
    read(text, |i, code, country| {
        assert_eq!((i, code), (0, Ok("DE")));
        for entry in &country.entries {
            let entry = entry.as_ref().unwrap();
            let borrowed = matches!(entry.city, Some(Cow::Borrowed(_)));
            seen.push((entry.city.as_deref().unwrap().to_owned(), borrowed));
        }
        let first = country.entries().next().unwrap().unwrap();
        let fqdns: Vec<(Option<&str>, Vec<IpAddr>)> =
            first.fqdns.map(|(n, ips)| (n, ips.collect())).collect();
        assert_eq!(
            fqdns,
            [
                (Some("a.example"), vec![IpAddr::from([198, 18, 0, 1])]),
                (Some("b.example"), vec![IpAddr::from([198, 18, 0, 2])]),
            ]
        );
    })
    .unwrap();
    // Only a string with an escape is copied.
    assert_eq!(
        seen,
        [
            ("Frankfurt".to_owned(), true),
            ("München".to_owned(), false)
        ]
    );
}

proptest::proptest! {
    /// The quick read of an IPv4 address takes nothing the standard parser does not read the
    /// same way, and takes the addresses as the API writes them.
    #[test]
    fn a_dotted_quad_is_read_as_the_standard_parser_reads_it(
        text in "[0-9. ]{0,17}|([12]?[0-9]{1,2}\\.){3}[0-9]{1,3}"
    ) {
        let quick = dotted_quad(text.as_bytes());
        if let Some(v4) = quick {
            proptest::prop_assert_eq!(text.parse::<Ipv4Addr>().ok(), Some(v4));
        }
        proptest::prop_assert_eq!(address(&text), text.trim().parse::<IpAddr>().ok());
    }
}

#[test]
fn dotted_quads_the_api_writes_are_read_quickly() {
    for text in [
        "198.18.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "20.233.16.163",
        "9.99.100.249",
    ] {
        assert_eq!(
            dotted_quad(text.as_bytes()),
            Some(text.parse().unwrap()),
            "{text}"
        );
    }
    for text in [
        "01.2.3.4",
        "1.2.3.256",
        "1.2.3",
        "1.2.3.4.",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1..3.4",
        "1.2.3.0004",
        "",
    ] {
        assert_eq!(dotted_quad(text.as_bytes()), None, "{text}");
    }
}
