use super::*;
use crate::metrics::fixtures::{exposition, sample, survey};

/// The labels of the Frankfurt endpoint of `survey(&["Frankfurt", …])`.
const FRANKFURT: [(&str, &str); 5] = [
    ("pop", "DE/Frankfurt/AWS"),
    ("country", "DE"),
    ("provider", "AWS"),
    ("fqdn", "frankfurt.pops.test"),
    ("ip", "198.18.0.1"),
];

#[test]
fn probe_rounds_export_endpoint_series_and_drop_departed_pops() {
    let c = ProbeCollector::new().unwrap();
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
    assert_eq!(
        sample(&text, "popsel_probe_requests_total", &labels),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "popsel_probe_responses_total", &labels),
        Some(2.0)
    );
    assert_eq!(sample(&text, "popsel_pop_up", &labels), Some(1.0));
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
        sample(&text, "popsel_probe_requests_total", &labels),
        Some(6.0),
        "counters accumulate"
    );
}

#[test]
fn a_round_without_probes_leaves_the_last_one_standing() {
    let c = ProbeCollector::new().unwrap();
    c.observe(&survey(&["Frankfurt"]), &HashSet::new());
    let before = exposition(c.clone());
    let mut unprobed = survey(&["Munich"]);
    unprobed.probes = None;
    c.observe(&unprobed, &HashSet::new());
    assert_eq!(exposition(c.clone()), before);
}

#[test]
fn a_carried_over_probe_keeps_its_gauges_and_is_not_counted_again() {
    let c = ProbeCollector::new().unwrap();
    let round = survey(&["Frankfurt"]);
    c.observe(&round, &HashSet::new());
    let ip: IpAddr = "198.18.0.1".parse().unwrap();
    c.observe(&round, &HashSet::from([ip]));
    let text = exposition(c.clone());
    let labels = FRANKFURT;
    assert_eq!(
        sample(&text, "popsel_probe_requests_total", &labels),
        Some(3.0),
        "3 requests, counted once"
    );
    assert_eq!(sample(&text, "popsel_pop_up", &labels), Some(1.0));
    assert_eq!(
        sample(&text, "popsel_pop_rtt_seconds", &labels),
        Some(0.004)
    );
}
