use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn catalog(v: Value) -> Catalog {
    Catalog::from_document(&serde_json::from_value(v).unwrap())
}

fn entry(city: &str, lat: Value, lon: Value, fqdn: Value) -> Value {
    json!({"city": city, "latitude": lat, "longitude": lon, "provider": "AWS", "fqdn": fqdn})
}

#[test]
fn good_entries_become_pops_with_parsed_numbers_and_addresses() {
    let c = catalog(json!({"ipSecLocations": [{"country": "DE", "locations": [
        entry("Frankfurt", json!("50.11"), json!(8.68), json!([
            {"name": "FRA-1.Pops.Example.", "ip": ["198.18.0.1", "not-an-ip"]},
            {"name": "fra-1.pops.example", "ip": ["198.18.0.2", "198.18.0.1"]},
            {"name": "fra-2.pops.example", "ip": []}
        ]))
    ]}]}));
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
    let p = &c.pops[0];
    assert_eq!(
        (p.country.as_str(), p.city.as_str(), p.provider.as_str()),
        ("DE", "Frankfurt", "AWS")
    );
    assert_eq!((p.latitude, p.longitude), (50.11, 8.68));
    // Names are compared as DNS compares them; duplicate names merge their addresses.
    assert_eq!(p.fqdns.len(), 2);
    assert_eq!(p.fqdns[0].name, "fra-1.pops.example");
    assert_eq!(
        p.fqdns[0].ips,
        [
            "198.18.0.1".parse::<IpAddr>().unwrap(),
            "198.18.0.2".parse().unwrap()
        ]
    );
    assert!(
        p.fqdns[1].ips.is_empty(),
        "a name without addresses still resolves through DNS"
    );
}

#[test]
fn bad_entries_are_skipped_with_country_city_and_reason() {
    let ok_fqdn = json!([{"name": "a.example", "ip": ["198.18.0.1"]}]);
    let c = catalog(json!({"ipSecLocations": [
        {"country": "US", "locations": [
            entry("Nowhere", json!("north"), json!("1"), ok_fqdn.clone()),
            entry("Pole", json!("91"), json!("1"), ok_fqdn.clone()),
            entry("Dateline", json!("1"), json!(-180.5), ok_fqdn.clone()),
            entry("NoLat", Value::Null, json!("1"), ok_fqdn.clone()),
            entry("Bare", json!("1"), json!("1"), json!([])),
            entry("Placeholder", json!("1"), json!("1"), json!([{"name": "<tunnel-name>.axisapps.io", "ip": []}])),
            entry("", json!("1"), json!("1"), ok_fqdn.clone()),
            json!(42),
            entry("Fine", json!("1"), json!("1"), ok_fqdn.clone()),
        ]},
        "garbage"
    ]}));
    let reasons: Vec<(String, String, String)> = c
        .skipped
        .iter()
        .map(|s| (s.country.clone(), s.city.clone(), s.reason.clone()))
        .collect();
    let expect = [
        ("US", "Nowhere", "latitude \"north\" is not a number"),
        ("US", "Pole", "latitude 91 is out of range (-90 to 90)"),
        (
            "US",
            "Dateline",
            "longitude -180.5 is out of range (-180 to 180)",
        ),
        ("US", "NoLat", "latitude is missing"),
        ("US", "Bare", "no usable FQDN"),
        ("US", "Placeholder", "no usable FQDN"),
        ("US", "", "city is missing"),
        (
            "US",
            "locations[7]",
            "entry does not have the documented shape",
        ),
        (
            "ipSecLocations[1]",
            "",
            "country entry does not have the documented shape",
        ),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((country, city, reason), (ec, ecity, ereason)) in reasons.iter().zip(expect) {
        assert_eq!((country.as_str(), city.as_str()), (ec, ecity));
        assert!(reason.starts_with(ereason), "{city}: {reason}");
    }
    assert_eq!(c.pops.len(), 1);
    assert_eq!(c.pops[0].city, "Fine");
}

#[test]
fn a_placeholder_name_with_listed_addresses_is_kept_for_its_addresses() {
    // The document's own sample: the FQDN is a placeholder, the addresses are real.
    let c = catalog(json!({"ipSecLocations": [{"country": "UAE", "locations": [
        entry("Dubai", json!("25.26"), json!("55.31"), json!([{"name": "<tunnel-name>.axisapps.io", "ip": ["20.233.16.163"]}]))
    ]}]}));
    assert_eq!(c.pops.len(), 1);
    assert!(!is_hostname(&c.pops[0].fqdns[0].name));
}

#[test]
fn a_pop_listed_twice_is_one_pop() {
    let c = catalog(json!({"ipSecLocations": [
        {"country": "DE", "locations": [entry("Frankfurt", json!("50.11"), json!("8.68"), json!([{"name": "a.example", "ip": ["198.18.0.1"]}]))]},
        {"country": "DE", "locations": [entry("Frankfurt", json!("50.2"), json!("8.7"), json!([{"name": "a.example", "ip": ["198.18.0.2"]}, {"name": "b.example", "ip": []}]))]}
    ]}));
    assert_eq!(c.pops.len(), 1);
    let p = &c.pops[0];
    assert_eq!(p.latitude, 50.11, "the first entry's coordinates stand");
    assert_eq!(p.fqdns.len(), 2);
    assert_eq!(p.fqdns[0].ips.len(), 2);
}

#[test]
fn the_sample_catalogue_parses_whole() {
    let c = Catalog::from_json(crate::sim::SAMPLE_CATALOG).unwrap();
    assert!(c.skipped.is_empty(), "{:?}", c.skipped);
    assert!(c.pops.len() >= 40);
}

#[test]
fn filter_keeps_allowed_countries_and_providers_and_drops_exclusions() {
    let c = Catalog::from_json(crate::sim::SAMPLE_CATALOG).unwrap();
    let f = Filter {
        countries: vec!["de".into()],
        ..Filter::default()
    };
    let de = f.apply(&c.pops);
    assert!(!de.is_empty() && de.iter().all(|p| p.country == "DE"));
    let f = Filter {
        providers: vec!["gcp".into()],
        exclude: vec!["frankfurt".into()],
        ..Filter::default()
    };
    let got = f.apply(&c.pops);
    assert!(
        got.iter()
            .all(|p| p.provider == "GCP" && p.city != "Frankfurt")
    );
    // Excluding one FQDN of a PoP keeps the PoP with the other.
    let first = &c.pops[0];
    let f = Filter {
        exclude: vec![first.fqdns[0].name.to_uppercase()],
        ..Filter::default()
    };
    let got = f.apply(&c.pops);
    let kept = got
        .iter()
        .find(|p| p.city == first.city && p.provider == first.provider)
        .unwrap();
    assert_eq!(kept.fqdns.len(), first.fqdns.len() - 1);
    assert_eq!(Filter::default().apply(&c.pops), c.pops);
}

/// A location entry, good or bad in one of many ways.
fn arb_entry() -> impl Strategy<Value = Value> {
    let coord = prop_oneof![
        (-200.0f64..200.0).prop_map(|v| json!(v.to_string())),
        (-200.0f64..200.0).prop_map(|v| json!(v)),
        Just(json!("north")),
        Just(Value::Null),
        Just(json!([1])),
    ];
    let fqdn = prop_oneof![
        Just(json!([{"name": "a.example", "ip": ["198.18.0.1"]}])),
        Just(json!([])),
        Just(json!([{"name": "", "ip": []}])),
        Just(json!("nope")),
    ];
    prop_oneof![
        4 => ("[A-Za-z ]{0,8}", coord.clone(), coord, fqdn).prop_map(|(city, lat, lon, f)| entry(&city, lat, lon, f)),
        1 => Just(json!(7)),
        1 => Just(json!(null)),
    ]
}

proptest! {
    /// Every entry ends up either a PoP or a skipped entry: nothing is lost, nothing invented.
    #[test]
    fn skipped_entries_are_reported_not_lost(countries in prop::collection::vec(prop::collection::vec(arb_entry(), 0..6), 0..5), bad_countries in 0usize..3) {
        let mut list: Vec<Value> = countries.iter().map(|locs| json!({"country": "XX", "locations": locs})).collect();
        list.extend(std::iter::repeat_n(json!("not a country"), bad_countries));
        let c = catalog(json!({"ipSecLocations": list}));
        let entries: usize = countries.iter().map(Vec::len).sum();
        prop_assert_eq!(c.pops.len() + c.skipped.len(), entries + bad_countries);
        for p in &c.pops {
            prop_assert!(p.latitude.abs() <= 90.0 && p.longitude.abs() <= 180.0 && !p.fqdns.is_empty());
        }
        for s in &c.skipped {
            prop_assert!(!s.reason.is_empty());
        }
    }
}
