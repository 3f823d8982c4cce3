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
