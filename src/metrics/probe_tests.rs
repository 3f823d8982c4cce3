use std::time::Duration;

use super::*;
use crate::metrics::fixtures::{exposition, sample, survey};
use crate::resolve::{Endpoint, Source};

/// The labels of the Frankfurt PoP of `survey(&["Frankfurt", …])`.
const FRANKFURT: [(&str, &str); 3] = [
    ("pop", "DE/Frankfurt/AWS"),
    ("country", "DE"),
    ("provider", "AWS"),
];

/// The labels of its endpoint.
const FRANKFURT_ENDPOINT: [(&str, &str); 5] = [
    ("pop", "DE/Frankfurt/AWS"),
    ("country", "DE"),
    ("provider", "AWS"),
    ("fqdn", "frankfurt.pops.test"),
    ("ip", "198.18.0.1"),
];

fn all_on() -> SeriesOptions {
    SeriesOptions {
        rtt_histogram: true,
        endpoints: true,
        ..SeriesOptions::default()
    }
}

/// The sample lines of `text` (its series).
fn series(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn probe_rounds_export_pop_series_and_drop_departed_pops() {
    let c = ProbeCollector::new(all_on()).unwrap();
    c.observe(&survey(&["Frankfurt", "Munich"]), &HashSet::new());
    let text = exposition(c.clone());
    let labels = FRANKFURT;
    assert_eq!(
        sample(&text, "popsel_pop_rtt_seconds", &labels),
        Some(0.004),
        "{text}"
    );
    assert_eq!(
        sample(&text, "popsel_pop_loss_ratio", &labels).map(|v| (v * 1000.0).round()),
        Some(333.0)
    );
    assert_eq!(sample(&text, "popsel_pop_up", &labels), Some(1.0));
    assert_eq!(
        sample(&text, "popsel_endpoint_up", &FRANKFURT_ENDPOINT),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "popsel_endpoint_rtt_seconds", &FRANKFURT_ENDPOINT),
        Some(0.004)
    );
    assert_eq!(sample(&text, "popsel_probe_requests_total", &[]), Some(6.0));
    assert_eq!(
        sample(&text, "popsel_probe_responses_total", &[]),
        Some(4.0)
    );
    assert_eq!(sample(&text, "popsel_probe_round_requests", &[]), Some(6.0));
    assert_eq!(
        sample(
            &text,
            "popsel_probe_rtt_seconds_count",
            &[("pop", "DE/Munich/AWS")]
        ),
        Some(2.0)
    );
    // Munich leaves the catalogue: every series of it goes.
    c.observe(&survey(&["Frankfurt"]), &HashSet::new());
    let text = exposition(c.clone());
    assert!(!text.contains("Munich"), "{text}");
    assert_eq!(
        sample(&text, "popsel_probe_requests_total", &[]),
        Some(9.0),
        "counters accumulate"
    );
    assert_eq!(sample(&text, "popsel_probe_round_requests", &[]), Some(3.0));
}

#[test]
fn by_default_a_pop_costs_three_series_whatever_its_addresses() {
    let cities: Vec<String> = (0..45).map(|i| format!("City{i}")).collect();
    let cities: Vec<&str> = cities.iter().map(String::as_str).collect();
    let mut round = survey(&cities);
    // A second address for every PoP, answering too.
    let probes = Arc::make_mut(round.probes.as_mut().unwrap());
    for (i, (pop, endpoints)) in round.pops.iter_mut().enumerate() {
        let ip: IpAddr = format!("198.19.0.{}", i + 1).parse().unwrap();
        endpoints.push(Endpoint {
            fqdn: pop.fqdns[0].name.clone(),
            ip,
            source: Source::Dns,
        });
        probes.insert(ip, probes[&endpoints[0].ip].clone());
    }
    let default = ProbeCollector::new(SeriesOptions::default()).unwrap();
    default.observe(&round, &HashSet::new());
    let text = exposition(default.clone());
    assert_eq!(series(&text), 3 * 45 + 3, "{text}");
    assert!(
        !text.contains("ip=\"") && !text.contains("_bucket"),
        "{text}"
    );

    let all = ProbeCollector::new(all_on()).unwrap();
    all.observe(&round, &HashSet::new());
    let text = exposition(all.clone());
    assert_eq!(
        series(&text),
        3 * 45 + 3 + 3 * 90 + 19 * 45,
        "per endpoint 3 series, the histogram 16 buckets, +Inf, sum and count a PoP"
    );
}

#[test]
fn a_pop_is_its_best_answering_endpoint() {
    let mut round = survey(&["Frankfurt"]);
    let probes = Arc::make_mut(round.probes.as_mut().unwrap());
    let slow: IpAddr = "198.19.0.1".parse().unwrap();
    let silent: IpAddr = "198.19.0.2".parse().unwrap();
    let fast: IpAddr = "198.19.0.3".parse().unwrap();
    let probe = |ms: &[u64], sent| Probe {
        sent,
        received: ms.len() as u32,
        rtts: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
        error: None,
    };
    probes.clear();
    probes.insert(silent, probe(&[], 3));
    probes.insert(slow, probe(&[30, 30, 30], 3));
    probes.insert(fast, probe(&[10, 10], 3));
    round.pops[0].1 = [silent, slow, fast]
        .into_iter()
        .map(|ip| Endpoint {
            fqdn: "frankfurt.pops.test".into(),
            ip,
            source: Source::Catalog,
        })
        .collect();
    let c = ProbeCollector::new(SeriesOptions::default()).unwrap();
    c.observe(&round, &HashSet::new());
    let text = exposition(c.clone());
    // The fast address loses a third: 10 ms + 500 ms × 1/3 = 177 against a clean 30 ms.
    assert_eq!(
        sample(&text, "popsel_pop_rtt_seconds", &FRANKFURT),
        Some(0.03),
        "{text}"
    );
    assert_eq!(
        sample(&text, "popsel_pop_loss_ratio", &FRANKFURT),
        Some(0.0)
    );
    assert_eq!(sample(&text, "popsel_pop_up", &FRANKFURT), Some(1.0));

    // Nothing answers: down, loss 1, no RTT.
    for p in probes_mut(&mut round) {
        *p = probe(&[], 3);
    }
    c.observe(&round, &HashSet::new());
    let text = exposition(c.clone());
    assert_eq!(sample(&text, "popsel_pop_up", &FRANKFURT), Some(0.0));
    assert_eq!(
        sample(&text, "popsel_pop_loss_ratio", &FRANKFURT),
        Some(1.0)
    );
    assert_eq!(sample(&text, "popsel_pop_rtt_seconds", &FRANKFURT), None);
}

fn probes_mut(round: &mut Survey) -> impl Iterator<Item = &mut Probe> {
    Arc::make_mut(round.probes.as_mut().unwrap()).values_mut()
}

#[test]
fn the_socket_gauge_and_counters_exist_before_any_round() {
    let c = ProbeCollector::new(SeriesOptions::default()).unwrap();
    assert_eq!(series(&exposition(c.clone())), 0, "nothing until told");
    c.socket(false);
    let text = exposition(c.clone());
    assert_eq!(sample(&text, "popsel_probe_socket_up", &[]), Some(0.0));
    assert_eq!(sample(&text, "popsel_probe_requests_total", &[]), Some(0.0));
    assert_eq!(sample(&text, "popsel_probe_round_requests", &[]), Some(0.0));
    c.socket(true);
    let text = exposition(c.clone());
    assert_eq!(sample(&text, "popsel_probe_socket_up", &[]), Some(1.0));
}

#[test]
fn a_round_without_probes_leaves_the_last_one_standing() {
    let c = ProbeCollector::new(all_on()).unwrap();
    c.observe(&survey(&["Frankfurt"]), &HashSet::new());
    let before = exposition(c.clone());
    let mut unprobed = survey(&["Munich"]);
    unprobed.probes = None;
    c.observe(&unprobed, &HashSet::new());
    assert_eq!(exposition(c.clone()), before);
}

#[test]
fn a_carried_over_probe_keeps_its_gauges_and_is_not_counted_again() {
    let c = ProbeCollector::new(all_on()).unwrap();
    let round = survey(&["Frankfurt"]);
    c.observe(&round, &HashSet::new());
    let ip: IpAddr = "198.18.0.1".parse().unwrap();
    c.observe(&round, &HashSet::from([ip]));
    let text = exposition(c.clone());
    assert_eq!(
        sample(&text, "popsel_probe_requests_total", &[]),
        Some(3.0),
        "3 requests, counted once"
    );
    assert_eq!(sample(&text, "popsel_probe_round_requests", &[]), Some(0.0));
    assert_eq!(
        sample(
            &text,
            "popsel_probe_rtt_seconds_count",
            &[("pop", "DE/Frankfurt/AWS")]
        ),
        Some(2.0),
        "replies observed once"
    );
    assert_eq!(sample(&text, "popsel_pop_up", &FRANKFURT), Some(1.0));
    assert_eq!(
        sample(&text, "popsel_pop_rtt_seconds", &FRANKFURT),
        Some(0.004)
    );
}
