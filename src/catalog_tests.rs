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
        (&*p.country, &*p.city, &*p.provider),
        ("DE", "Frankfurt", "AWS")
    );
    assert_eq!((p.latitude, p.longitude), (50.11, 8.68));
    // Names are compared as DNS compares them; duplicate names merge their addresses.
    assert_eq!(p.fqdns.len(), 2);
    assert_eq!(&*p.fqdns[0].name, "fra-1.pops.example");
    assert_eq!(
        p.fqdns[0].ips.as_slice(),
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
    assert_eq!(&*c.pops[0].city, "Fine");
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
fn a_countrys_names_are_one_allocation_up_to_a_block() {
    // 3,000 entries of about 80 bytes of names: more than a block in one country, with an entry
    // skipped (its city laid out, then taken back) every 7th.
    let locations: Vec<Value> = (0..3000)
        .map(|i| {
            let fqdn = if i % 7 == 3 {
                json!([{"name": "not a name", "ip": []}])
            } else {
                json!([{"name": format!("IPSEC-{i}.Pops.Example."), "ip": ["198.18.0.1"]},
                       {"name": format!("ipsec-{i}-b.pops.example"), "ip": []}])
            };
            entry(&format!("City {i}"), json!("1"), json!("2"), fqdn)
        })
        .collect();
    let text = json!({"ipSecLocations": [{"country": "DE", "locations": locations}]}).to_string();
    let c = Catalog::from_json(&text).unwrap();
    assert_eq!(c, catalog(serde_json::from_str(&text).unwrap()));
    let kept: Vec<usize> = (0..3000).filter(|i| i % 7 != 3).collect();
    assert_eq!(c.pops.len(), kept.len());
    assert_eq!(c.skipped.len(), 3000 - kept.len());
    for (pop, i) in c.pops.iter().zip(&kept) {
        let names: Vec<&str> = pop.fqdns.iter().map(|f| &*f.name).collect();
        assert_eq!(&*pop.city, format!("City {i}"));
        assert_eq!(
            names,
            [
                format!("ipsec-{i}.pops.example"),
                format!("ipsec-{i}-b.pops.example")
            ]
        );
        assert!(
            pop.fqdns
                .iter()
                .all(|f| ArcStr::ptr_eq(f.name.parent(), pop.city.parent()))
        );
    }
    let mut blocks: Vec<&ArcStr> = c.pops.iter().map(|p| p.city.parent()).collect();
    blocks.dedup_by(|a, b| ArcStr::ptr_eq(a, b));
    assert!((3..=5).contains(&blocks.len()), "{} blocks", blocks.len());
    assert!(blocks.iter().all(|b| b.len() < Names::BLOCK + 100));
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
    assert!(!de.is_empty() && de.iter().all(|p| &*p.country == "DE"));
    let f = Filter {
        providers: vec!["gcp".into()],
        exclude: vec!["frankfurt".into()],
        ..Filter::default()
    };
    let got = f.apply(&c.pops);
    assert!(
        got.iter()
            .all(|p| &*p.provider == "GCP" && &*p.city != "Frankfurt")
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

// ---- the one-pass reader (`Catalog::from_json`) against the document (`from_document`) ----

/// The catalogue of `text` read through [`PopDocument`], as the API client and the cache do.
pub(super) fn through_document(text: &str) -> Result<Catalog, String> {
    serde_json::from_str::<PopDocument>(text)
        .map(|doc| Catalog::from_document(&doc))
        .map_err(|e| e.to_string())
}

pub(super) fn straight(text: &str) -> Result<Catalog, String> {
    Catalog::from_json(text).map_err(|e| e.to_string())
}

/// A JSON object from keys and value texts, in that order, duplicates kept.
fn object(fields: &[(String, String)]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn array(elements: &[String]) -> String {
    format!("[{}]", elements.join(","))
}

/// Values of every kind but the usual: out-of-range numbers and deep nesting make the whole
/// document unreadable, wherever they are.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("-0".to_owned()),
        Just("-7".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("1.5e1".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        Just(r#"{"a": [1, {"b": null}]}"#.to_owned()),
        Just(r#""M\u00fcnchen""#.to_owned()),
        Just("1e400".to_owned()),
        Just(format!("{}{}", "[".repeat(130), "]".repeat(130))),
    ]
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just(r#""Frankfurt""#.to_owned()),
            Just(r#"" Fra ""#.to_owned()),
            Just(r#""""#.to_owned()),
            Just(r#""S\u00e3o Paulo""#.to_owned()),
            Just(r#""AWS""#.to_owned()),
        ],
        1 => odd_value(),
    ]
}

fn coordinate_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-200.0f64..200.0).prop_map(|v| format!("\"{v}\"")),
        3 => (-200.0f64..200.0).prop_map(|v| v.to_string()),
        1 => (-200i64..200).prop_map(|v| v.to_string()),
        1 => prop_oneof![
            Just(r#""north""#.to_owned()),
            Just(r#""NaN""#.to_owned()),
            Just(r#"" -70.64 ""#.to_owned()),
            Just(r#""""#.to_owned()),
        ],
        1 => odd_value(),
    ]
}

fn address_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""198.18.0.1""#.to_owned()),
        Just(r#"["198.18.0.1", " 198.18.0.2 "]"#.to_owned()),
        Just(r#"["2001:db8::1", "198.18.0.1", "nope"]"#.to_owned()),
        Just("[]".to_owned()),
        Just("null".to_owned()),
        Just(r#"["198.18.0.3", 5]"#.to_owned()),
        Just("7".to_owned()),
        Just("{}".to_owned()),
    ]
}

fn name_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just(r#""a.pops.example""#.to_owned()),
            Just(r#""A.Pops.Example.""#.to_owned()),
            Just(r#""b.pops.example""#.to_owned()),
            Just(r#""<tunnel-name>.axisapps.io""#.to_owned()),
            Just(r#""""#.to_owned()),
        ],
        1 => odd_value(),
    ]
}

/// An element of `fqdn`: an object (keys in any order, repeated or unknown), an array of its
/// fields, or anything else.
fn fqdn_element() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        name_value().prop_map(|v| ("name".to_owned(), v)),
        address_value().prop_map(|v| ("ip".to_owned(), v)),
        odd_value().prop_map(|v| ("other".to_owned(), v)),
    ];
    prop_oneof![
        6 => prop::collection::vec(field, 0..4).prop_map(|f: Vec<(String, String)>| object(&f)),
        1 => (name_value(), address_value(), prop::collection::vec(odd_value(), 0..2))
            .prop_map(|(n, a, extra)| array(&[vec![n, a], extra].concat())),
        1 => odd_value(),
    ]
}

fn fqdn_list() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(fqdn_element(), 0..4).prop_map(|e| array(&e)),
        1 => odd_value(),
    ]
}

/// A location entry: an object (keys in any order, repeated or unknown), an array of its
/// fields, or anything else.
fn entry_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        3 => text_value().prop_map(|v| ("city".to_owned(), v)),
        3 => coordinate_value().prop_map(|v| ("latitude".to_owned(), v)),
        3 => coordinate_value().prop_map(|v| ("longitude".to_owned(), v)),
        2 => text_value().prop_map(|v| ("provider".to_owned(), v)),
        3 => fqdn_list().prop_map(|v| ("fqdn".to_owned(), v)),
        1 => odd_value().prop_map(|v| ("extra".to_owned(), v)),
    ];
    let fields = (
        text_value(),
        coordinate_value(),
        coordinate_value(),
        text_value(),
        fqdn_list(),
    );
    prop_oneof![
        8 => prop::collection::vec(field, 0..9).prop_map(|f: Vec<(String, String)>| object(&f)),
        1 => (fields, 0usize..7, prop::collection::vec(odd_value(), 0..2)).prop_map(
            |((c, la, lo, p, f), n, extra)| {
                let all = [vec![c, la, lo, p, f], extra].concat();
                array(&all[..n.min(all.len())])
            }
        ),
        1 => odd_value(),
    ]
}

fn country_code() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![
            Just(r#""DE""#.to_owned()),
            Just(r#"" us ""#.to_owned()),
            Just(r#""""#.to_owned()),
        ],
        1 => odd_value(),
    ]
}

fn locations_list() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(entry_text(), 0..5).prop_map(|e| array(&e)),
        1 => odd_value(),
    ]
}

fn country_text() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        2 => country_code().prop_map(|v| ("country".to_owned(), v)),
        3 => locations_list().prop_map(|v| ("locations".to_owned(), v)),
        1 => odd_value().prop_map(|v| ("extra".to_owned(), v)),
    ];
    prop_oneof![
        8 => prop::collection::vec(field, 0..4).prop_map(|f: Vec<(String, String)>| object(&f)),
        1 => (country_code(), locations_list(), prop::collection::vec(odd_value(), 0..2))
            .prop_map(|(c, l, extra)| array(&[vec![c, l], extra].concat())),
        1 => odd_value(),
    ]
}

fn countries_list() -> impl Strategy<Value = String> {
    prop::collection::vec(country_text(), 0..4).prop_map(|c| array(&c))
}

/// A catalogue document, mostly of the documented shape, sometimes not at all.
fn document_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("ipSecLocations".to_owned()),
        Just("IpSecLocations".to_owned()),
        Just("other".to_owned()),
    ];
    prop_oneof![
        8 => prop::collection::vec((key, countries_list()), 1..3)
            .prop_map(|f: Vec<(String, String)>| object(&f)),
        1 => countries_list().prop_map(|c| format!("[{c}]")),
        1 => odd_value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The one pass reads what the document reads: the same PoPs, the same entries skipped
    /// with the same reasons, the same error when the text is not a catalogue.
    #[test]
    fn reading_straight_is_reading_the_document(text in document_text()) {
        prop_assert_eq!(straight(&text), through_document(&text), "{}", text);
    }
}

#[test]
fn reading_straight_is_reading_the_document_on_the_hard_cases() {
    let entry = r#"{"city": "Fra", "latitude": "50.1", "longitude": "8.6", "fqdn": [{"name": "a.example"}]}"#;
    let cases = [
        // A key given twice: its last value, at its first place.
        r#"{"ipSecLocations": [{"country": "DE", "locations": [{"city": 5, "latitude": "1", "longitude": "1", "city": "Fra", "fqdn": [{"name": "a.example"}]}]}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"country": "DE", "locations": [{"city": "Fra", "latitude": [1], "longitude": true, "latitude": "1"}]}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"locations": 5, "country": "DE", "locations": []}]}"#.to_owned(),
        format!(r#"{{"ipSecLocations": [{{"locations": [{entry}], "country": "DE", "locations": [{entry}, {entry}]}}]}}"#),
        // The first wrong field in key order is the one reported; a key given again keeps
        // its first place.
        r#"{"ipSecLocations": [{"country": "DE", "locations": [{"city": 5, "latitude": true, "city": 6}]}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"locations": 5, "country": 7, "locations": 6}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"country": "DE", "locations": [{"fqdn": "x", "city": 5, "latitude": true}]}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"locations": 1, "country": 2}, {"country": 2, "locations": 1}]}"#.to_owned(),
        // Structs as arrays of their fields.
        r#"{"ipSecLocations": [["DE", [["Fra", "50.1", 8.6, null, [["a.example", "198.18.0.1"]]]]]]}"#.to_owned(),
        r#"{"ipSecLocations": [["DE", [["Fra", "50.1", 8.6, null, [], 1]], 3]]}"#.to_owned(),
        r#"[[{"country": "DE", "locations": []}]]"#.to_owned(),
        r#"[[], 1]"#.to_owned(),
        // Whole-document errors.
        r#"{"ipSecLocations": [], "IpSecLocations": []}"#.to_owned(),
        r#"{"ipSecLocations": null}"#.to_owned(),
        r#"{"ipSecLocations": [{"country": "DE", "x": 1e400}]}"#.to_owned(),
        format!(r#"{{"ipSecLocations": [{{"country": "DE", "x": {}{}}}]}}"#, "[".repeat(200), "]".repeat(200)),
        format!(r#"{{"x": {}{}, "ipSecLocations": []}}"#, "[".repeat(200), "]".repeat(200)),
        r#"{"ipSecLocations": [{"country": "DE", "locations": [{"city": "Fra\ud800"}]}]}"#.to_owned(),
        r#"{"ipSecLocations": []} x"#.to_owned(),
        r#"{"ipSecLocations": [}"#.to_owned(),
        "7".to_owned(),
        String::new(),
    ];
    for text in &cases {
        assert_eq!(straight(text), through_document(text), "{text}");
    }
}

#[test]
fn an_entry_of_the_wrong_shape_is_reported_in_serde_json_words() {
    let c = Catalog::from_json(
        r#"{"ipSecLocations": [{"country": "US", "locations": [42, {"city": "X", "latitude": [1]}, ["X", 1, 1, "AWS", [], 0]]}, "garbage"]}"#,
    )
    .unwrap();
    let reasons: Vec<&str> = c.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "entry does not have the documented shape: invalid type: integer `42`, expected struct PopEntry",
            "entry does not have the documented shape: data did not match any variant of untagged enum Coordinate",
            "entry does not have the documented shape: invalid length 6, expected fewer elements in array",
            "country entry does not have the documented shape: invalid type: string \"garbage\", expected struct PopCountry",
        ]
    );
}

/// The merge of PoPs listed twice, the plain way: a scan for each entry.
fn merged_by_scan(pops: Vec<Pop>) -> Vec<Pop> {
    let mut out: Vec<Pop> = Vec::new();
    for pop in pops {
        match out
            .iter_mut()
            .find(|p| p.country == pop.country && p.city == pop.city && p.provider == pop.provider)
        {
            Some(first) => {
                for fqdn in pop.fqdns {
                    match first.fqdns.iter_mut().find(|f| f.name == fqdn.name) {
                        Some(f) => {
                            for ip in fqdn.ips {
                                if !f.ips.contains(&ip) {
                                    f.ips.push(ip);
                                }
                            }
                        }
                        None => first.fqdns.push(fqdn),
                    }
                }
            }
            None => out.push(pop),
        }
    }
    out
}

proptest! {
    /// PoPs listed twice, or more, anywhere in the document merge into their first entry as a
    /// scan would merge them.
    #[test]
    fn pops_listed_again_merge_into_their_first_entry(
        listed in prop::collection::vec((0u8..3, 0u8..3, 0u8..2, 0u8..3, 0u8..4, -80i32..80), 0..40)
    ) {
        let pops: Vec<Pop> = listed
            .iter()
            .map(|&(country, city, provider, name, ip, lat)| Pop {
                country: format!("C{country}").into(),
                city: format!("City {city}").into(),
                provider: ["AWS", "GCP"][usize::from(provider)].into(),
                latitude: f64::from(lat),
                longitude: 0.0,
                fqdns: vec![ListedFqdn {
                    name: format!("n{name}.example").into(),
                    ips: [IpAddr::from([198, 18, 0, ip])].into(),
                }],
            })
            .collect();
        let document = json!({"ipSecLocations": pops.iter().map(|p| json!({
            "country": p.country,
            "locations": [{
                "city": p.city, "latitude": p.latitude, "longitude": p.longitude,
                "provider": p.provider,
                "fqdn": p.fqdns.iter().map(|f| json!({"name": f.name, "ip": f.ips})).collect::<Vec<_>>(),
            }],
        })).collect::<Vec<_>>()});
        let c = Catalog::from_json(&document.to_string()).unwrap();
        prop_assert!(c.skipped.is_empty());
        prop_assert_eq!(c.pops, merged_by_scan(pops));
    }
}
