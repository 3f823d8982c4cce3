use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::catalog::tests::{straight, through_document};

/// Whether the text is read by hand (the lenient reader reads it otherwise).
fn taken(text: &str) -> bool {
    read(text, |_, _, _| {})
}

#[test]
fn the_sample_and_the_emulators_answer_are_read_by_hand() {
    let sample = crate::sim::sample_catalog();
    let served = serde_json::to_string(&sample).unwrap();
    for text in [crate::sim::SAMPLE_CATALOG, served.as_str()] {
        assert!(taken(text), "{text}");
        let catalog = straight(text).unwrap();
        assert!(catalog.pops.len() >= 40 && catalog.skipped.is_empty());
        assert_eq!(Ok(catalog), through_document(text));
    }
}

#[test]
fn each_country_comes_with_its_entries_names_and_addresses_borrowed() {
    let text = r#" {"IpSecLocations": [
        {"locations": [{"fqdn": [{"ip": ["198.18.0.1", "bad", " 198.18.0.2 "], "name": "a.example"},
                                 {"name": "b.example", "ip": []}],
                        "provider": "AWS", "longitude": "8.68", "latitude": " 50.11", "city": "Frankfurt, Hesse"},
                       {"city": "", "latitude": "x", "longitude": "", "provider": "", "fqdn": []}],
         "country": "DE"},
        {"country": "FR", "locations": []}
    ]}
    "#;
    let mut seen = Vec::new();
    let taken = read(text, |i, code, country| {
        for entry in country.entries() {
            let entry = entry.unwrap();
            let fqdns: Vec<(Option<&str>, Vec<IpAddr>)> =
                entry.fqdns.map(|(n, ips)| (n, ips.collect())).collect();
            seen.push(format!(
                "{i} {code:?} {:?} {:?} {:?} {:?} {fqdns:?}",
                entry.city, entry.latitude, entry.longitude, entry.provider
            ));
        }
        if country.entries.is_empty() {
            seen.push(format!("{i} {code:?} none"));
        }
        assert!(country.entries.iter().flatten().all(|e| matches!(
            (&e.city, &e.provider),
            (Some(Cow::Borrowed(_)), Some(Cow::Borrowed(_)))
        )));
    });
    assert!(taken);
    assert_eq!(
        seen,
        [
            r#"0 Ok("DE") Some("Frankfurt, Hesse") Some(Text(" 50.11")) Some(Text("8.68")) Some("AWS") [(Some("a.example"), [198.18.0.1, 198.18.0.2]), (Some("b.example"), [])]"#,
            r#"0 Ok("DE") Some("") Some(Text("x")) Some(Text("")) Some("") []"#,
            r#"1 Ok("FR") none"#,
        ]
    );
}

#[test]
fn anything_but_the_documented_shape_is_left_to_the_lenient_reader() {
    let fqdn = r#"{"name": "a.example", "ip": ["198.18.0.1"]}"#;
    let entry = format!(
        r#"{{"city": "Fra", "latitude": "50.1", "longitude": "8.6", "provider": "AWS", "fqdn": [{fqdn}]}}"#
    );
    let document = |entry: &str| {
        format!(r#"{{"ipSecLocations": [{{"country": "DE", "locations": [{entry}]}}]}}"#)
    };
    assert!(taken(&document(&entry)));
    let changed = |from: &str, to: &str| {
        assert!(entry.contains(from));
        document(&entry.replacen(from, to, 1))
    };
    let cases = [
        changed(r#""Fra""#, r#""Fr\u00e4""#),
        changed(r#""Fra""#, r#""Fr\"a""#),
        changed(r#""Fra""#, "\"Fr\ta\""),
        changed(r#""city""#, r#""cit\u0079""#),
        changed(r#""50.1""#, "50.1"),
        changed(r#""50.1""#, "null"),
        changed(r#""AWS""#, "null"),
        changed(r#""AWS""#, r#"["AWS"]"#),
        changed(r#"["198.18.0.1"]"#, r#""198.18.0.1""#),
        changed(r#"["198.18.0.1"]"#, "null"),
        changed(r#"["198.18.0.1"]"#, "[5]"),
        changed(r#""provider": "AWS", "#, ""),
        changed(
            r#""provider": "AWS", "#,
            r#""provider": "AWS", "provider": "GCP", "#,
        ),
        changed(
            r#""provider": "AWS", "#,
            r#""provider": "AWS", "other": "x", "#,
        ),
        changed(r#""name": "a.example", "#, ""),
        changed(fqdn, r#"["a.example", ["198.18.0.1"]]"#),
        changed(fqdn, "7"),
        document(r#"["Fra", "50.1", "8.6", "AWS", []]"#),
        document(&format!("{entry},")),
        r#"{"ipSecLocations": [{"country": "DE"}]}"#.to_owned(),
        r#"{"ipSecLocations": [{"country": "DE", "locations": [], "x": 1e400}]}"#.to_owned(),
        r#"{"ipSecLocations": [], "IpSecLocations": []}"#.to_owned(),
        r#"{"ipSecLocations": [], "other": 1}"#.to_owned(),
        r#"{"other": 1, "ipSecLocations": []}"#.to_owned(),
        r#"{"ipSecLocations": null}"#.to_owned(),
        r#"[[]]"#.to_owned(),
        format!("{} x", document(&entry)),
        format!("\u{feff}{}", document(&entry)),
        document(&entry).replacen(']', "", 1),
        String::new(),
    ];
    for text in &cases {
        assert!(!taken(text), "{text}");
        assert_eq!(straight(text), through_document(text), "{text}");
    }
}

/// A JSON text, and whether it has exactly the documented shape.
type Text = (String, bool);

fn join(texts: &[Text], separator: &str) -> Text {
    let joined: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
    (joined.join(separator), texts.iter().all(|(_, d)| *d))
}

/// Whitespace as JSON has it, between any two tokens.
fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", " ", "\n    ", "\t", "\r\n"][..])
}

/// Another kind of value than a string or a list.
fn odd() -> impl Strategy<Value = Text> {
    prop::sample::select(&["null", "7", "-1.5", "1e400", "{}", "true"][..])
        .prop_map(|v| (v.to_owned(), false))
}

/// A string among `choices` (as JSON text: one with an escape is not taken by hand), or
/// sometimes another kind of value.
fn string(choices: &'static [&'static str]) -> BoxedStrategy<Text> {
    prop_oneof![
        12 => prop::sample::select(choices).prop_map(|s| (format!("\"{s}\""), !s.contains('\\'))),
        1 => odd(),
        1 => Just((r#"["x"]"#.to_owned(), false)),
    ]
    .boxed()
}

fn list(item: BoxedStrategy<Text>, most: usize) -> BoxedStrategy<Text> {
    prop_oneof![
        12 => (prop::collection::vec(item, 0..most), space()).prop_map(|(items, s)| {
            let (items, documented) = join(&items, &format!("{s},{s}"));
            (format!("[{s}{items}{s}]"), documented)
        }),
        1 => odd(),
    ]
    .boxed()
}

/// An object of `fields` in any order; sometimes one is left out, given twice or joined by
/// another, or its name escaped.
fn object(fields: Vec<(&'static str, BoxedStrategy<Text>)>) -> BoxedStrategy<Text> {
    let count = fields.len();
    let members: Vec<BoxedStrategy<Text>> = fields
        .into_iter()
        .map(|(name, value)| {
            (value, space())
                .prop_map(move |((v, d), s)| (format!("\"{name}\"{s}:{s}{v}"), d))
                .boxed()
        })
        .collect();
    let order = Just((0..count).collect::<Vec<usize>>()).prop_shuffle();
    (members, order, 0..16u8, space())
        .prop_map(|(members, order, change, s)| {
            let mut members: Vec<Text> = order.iter().map(|&i| members[i].clone()).collect();
            match change {
                0 => drop(members.pop()),
                1 => members.push(members[0].clone()),
                2 => members.insert(0, ("\"other\":\"x\"".to_owned(), true)),
                3 => {
                    let escaped = format!("\\u{:04x}", members[0].0.as_bytes()[1]);
                    members[0].0.replace_range(1..2, &escaped);
                }
                _ => {}
            }
            let (members, documented) = join(&members, &format!("{s},{s}"));
            (format!("{{{s}{members}{s}}}"), documented && change > 3)
        })
        .boxed()
}

const CITIES: &[&str] = &[
    "Frankfurt",
    "Ashburn, Virginia",
    " Fra ",
    "",
    "São Paulo",
    r"S\u00e3o Paulo",
    r#"Fr\"a"#,
];
const COORDINATES: &[&str] = &[
    "50.11", "-70.64", " 8.6 ", "", "north", "NaN", "1e3", "200", r"5\u0030",
];
const PROVIDERS: &[&str] = &["AWS", "GCP", "", " Azure ", r"A\/WS"];
const NAMES: &[&str] = &[
    "a.pops.example",
    "A.Pops.Example.",
    "b.pops.example",
    "<tunnel-name>.axisapps.io",
    "",
    r"a\n",
];
const ADDRESSES: &[&str] = &[
    "198.18.0.1",
    " 198.18.0.2 ",
    "2001:db8::1",
    "nope",
    "",
    r"198.18.0.\u0033",
];
const CODES: &[&str] = &["DE", " us ", "", r"D\u0045"];

fn documented_fqdn() -> BoxedStrategy<Text> {
    object(vec![
        ("name", string(NAMES)),
        ("ip", list(string(ADDRESSES), 3)),
    ])
}

fn documented_entry() -> BoxedStrategy<Text> {
    object(vec![
        ("city", string(CITIES)),
        ("latitude", string(COORDINATES)),
        ("longitude", string(COORDINATES)),
        ("provider", string(PROVIDERS)),
        ("fqdn", list(documented_fqdn(), 4)),
    ])
}

fn documented_country() -> BoxedStrategy<Text> {
    object(vec![
        ("country", string(CODES)),
        ("locations", list(documented_entry(), 5)),
    ])
}

/// A catalogue document of the documented shape, but for a change here and there.
fn documented_text() -> impl Strategy<Value = Text> {
    let key = prop_oneof![
        4 => Just(("ipSecLocations", true)),
        4 => Just(("IpSecLocations", true)),
        1 => Just(("ipseclocations", false)),
    ];
    let end = prop_oneof![
        8 => Just(("", true)),
        2 => Just(("\n", true)),
        1 => Just((" x", false)),
    ];
    (key, space(), list(documented_country(), 4), end).prop_map(
        |((key, k), s, (countries, c), (end, e))| {
            (
                format!("{s}{{{s}\"{key}\"{s}:{s}{countries}{s}}}{end}"),
                k && c && e,
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The hand reader takes a text exactly when it has the documented shape, and what it
    /// reads is what the document reads.
    #[test]
    fn the_documented_shape_is_read_by_hand_and_as_the_document_reads_it(
        (text, documented) in documented_text()
    ) {
        prop_assert_eq!(taken(&text), documented, "{}", text);
        prop_assert_eq!(straight(&text), through_document(&text), "{}", text);
    }
}

proptest! {
    /// Eight bytes at a time, the end of a string is found where a byte at a time finds it.
    #[test]
    fn a_string_ends_where_a_byte_at_a_time_finds_it(
        bytes in prop::collection::vec(prop_oneof![
            8 => 0x20u8..0x7f,
            1 => Just(b'"'),
            1 => Just(b'\\'),
            1 => 0u8..0x20,
            1 => 0x7fu8..=0xff,
        ], 0..40)
    ) {
        let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
        prop_assert_eq!(string_end(&bytes), expected);
    }
}
