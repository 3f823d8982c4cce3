use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::catalog::{ListedFqdn, Name, Pop};
use crate::location::Site;
use crate::probe::{ProbeError, Probes};
use crate::rank::rank;
use crate::resolve::{Endpoint, Source};

#[test]
fn csv_quotes_only_when_needed() {
    assert_eq!(csv_field("Ashburn, Virginia"), "\"Ashburn, Virginia\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("Oslo"), "Oslo");
}

fn pop(city: &str, ip: &str) -> (Pop, Vec<Endpoint>) {
    let fqdn: Name = format!("{}.pops.test", city.to_lowercase()).into();
    let pop = Pop {
        country: "XX".into(),
        city: city.into(),
        provider: "AWS".into(),
        latitude: 41.0,
        longitude: -87.0,
        fqdns: vec![ListedFqdn {
            name: fqdn.clone(),
            ips: Default::default(),
        }],
    };
    let endpoint = Endpoint {
        fqdn,
        ip: ip.parse().unwrap(),
        source: Source::Catalog,
    };
    (pop, vec![endpoint])
}

/// A PoP that answered, one probed that never answered, one whose address had no socket (no
/// request sent) and one left out of probing.
fn mixed() -> Ranking {
    let pops = vec![
        pop("Answers", "192.0.2.1"),
        pop("Silent", "192.0.2.2"),
        pop("NoSocket", "2001:db8::3"),
        pop("Unprobed", "192.0.2.4"),
    ];
    let probes = Probes::from_iter([
        (
            "192.0.2.1".parse().unwrap(),
            Probe {
                sent: 4,
                received: 3,
                rtts: vec![Duration::from_millis(10); 3].into(),
                error: None,
            },
        ),
        (
            "192.0.2.2".parse().unwrap(),
            Probe {
                sent: 3,
                received: 0,
                rtts: Vec::new().into(),
                error: None,
            },
        ),
        (
            "2001:db8::3".parse().unwrap(),
            Probe {
                error: Some(ProbeError::NoSocket {
                    family: "IPv6",
                    detail: "no".into(),
                }),
                ..Probe::default()
            },
        ),
    ]);
    let site = Site {
        latitude: 41.0,
        longitude: -87.0,
    };
    rank(site, pops, Some(Arc::new(probes)), vec![])
}

fn by_city<'a>(doc: &'a serde_json::Value, city: &str) -> &'a serde_json::Value {
    doc["pops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["city"] == city)
        .unwrap()
}

#[test]
fn json_says_null_only_for_what_no_request_was_sent_to() {
    let doc: serde_json::Value = serde_json::from_str(&json(&mixed())).unwrap();
    let answers = by_city(&doc, "Answers");
    assert_eq!(answers["reachable"], true);
    assert_eq!(answers["loss"], 0.25);
    assert_eq!(answers["endpoints"][0]["loss"], 0.25);
    let silent = by_city(&doc, "Silent");
    assert_eq!(silent["reachable"], false, "{silent:#}");
    assert_eq!(silent["loss"], 1.0, "{silent:#}");
    assert_eq!(silent["endpoints"][0]["reachable"], false);
    assert_eq!(silent["endpoints"][0]["loss"], 1.0);
    for city in ["NoSocket", "Unprobed"] {
        let p = by_city(&doc, city);
        assert!(p["reachable"].is_null(), "{p:#}");
        assert!(p["loss"].is_null(), "{p:#}");
        assert!(p["endpoints"][0]["reachable"].is_null(), "{p:#}");
        assert!(p["endpoints"][0]["loss"].is_null(), "{p:#}");
    }
    assert_eq!(by_city(&doc, "NoSocket")["endpoints"][0]["sent"], 0);
}

#[test]
fn csv_leaves_unmeasured_fields_empty() {
    let text = csv(&mixed());
    let line = |city: &str| text.lines().find(|l| l.contains(city)).unwrap().to_owned();
    // reachable is the 7th field, loss the 10th.
    let fields = |city: &str| -> Vec<String> { line(city).split(',').map(String::from).collect() };
    assert_eq!(fields("Answers")[6], "true");
    assert_eq!(fields("Answers")[9], "0.25");
    assert_eq!(fields("Silent")[6], "false");
    assert_eq!(fields("Silent")[9], "1");
    for city in ["NoSocket", "Unprobed"] {
        assert_eq!(fields(city)[6], "", "{text}");
        assert_eq!(fields(city)[9], "", "{text}");
    }
}

#[test]
fn table_shows_a_dash_for_what_was_not_measured() {
    let ranking = mixed();
    let text = table(&ranking, &Counts::of(&ranking));
    let line = |city: &str| text.lines().find(|l| l.contains(city)).unwrap().to_owned();
    assert!(line("Answers").contains("25%"), "{text}");
    assert!(line("Silent").contains("100%"), "{text}");
    assert!(line("Silent").ends_with("unreachable"), "{text}");
    for city in ["NoSocket", "Unprobed"] {
        assert!(!line(city).contains('%'), "{text}");
        assert!(line(city).ends_with("not probed"), "{text}");
    }
    // The footer counts as unreachable only what was probed and never answered.
    assert!(
        text.contains("4 PoPs, 4 endpoints, 0 skipped, 1 unreachable, 2 not probed"),
        "{text}"
    );
}

#[test]
fn wrap_breaks_between_words_within_the_width() {
    assert_eq!(wrap("one two three", 7), "one two\nthree\n");
    assert_eq!(wrap("short", 80), "short\n");
    assert_eq!(
        wrap("averyveryverylongword x", 5),
        "averyveryverylongword\nx\n"
    );
}

#[test]
fn the_narrow_table_fits_80_columns_whatever_the_names_and_wide_keeps_them_whole() {
    let mut ranking = mixed();
    ranking.pops[0].pop.city = "Santa Cruz de la Sierra, Departamento de Santa Cruz".into();
    ranking.pops[1].pop.provider = "Amazon Web Services GovCloud".into();
    let counts = Counts::of(&ranking);
    let narrow = table(&ranking, &counts);
    for line in narrow.lines() {
        assert!(
            line.chars().count() <= NARROW_COLUMNS,
            "{line:?} in\n{narrow}"
        );
    }
    assert!(narrow.contains("Santa Cruz"), "{narrow}");
    assert!(narrow.contains('…'), "{narrow}");
    assert!(narrow.contains("unreachable"), "no number is cut: {narrow}");
    let wide = table_of_width(&ranking, &counts, Width::Wide);
    assert!(wide.contains("Departamento de Santa Cruz"), "{wide}");
    assert!(wide.contains("Amazon Web Services GovCloud"), "{wide}");
    assert!(
        wide.contains("JITTER ms") && wide.contains("192.0.2.1"),
        "{wide}"
    );
}
