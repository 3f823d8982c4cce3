use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::catalog::{ListedFqdn, Pop};
use crate::probe::Probe;
use crate::resolve::{Endpoint, Source};
use crate::status::{ConnectorStatusRow, TunnelStatusRow};

fn pop(city: &str) -> Pop {
    Pop {
        country: "DE".into(),
        city: city.into(),
        provider: "AWS".into(),
        latitude: 50.0,
        longitude: 8.0,
        fqdns: vec![ListedFqdn {
            name: format!("{}.pops.test", city.to_lowercase()),
            ips: vec![],
        }],
    }
}

fn survey(cities: &[&str]) -> Survey {
    let mut pops = Vec::new();
    let mut probes = HashMap::new();
    for (i, city) in cities.iter().enumerate() {
        let ip = format!("198.18.0.{}", i + 1).parse().unwrap();
        pops.push((
            pop(city),
            vec![Endpoint {
                fqdn: format!("{}.pops.test", city.to_lowercase()),
                ip,
                source: Source::Catalog,
            }],
        ));
        let rtts = vec![Duration::from_millis(3), Duration::from_millis(5)];
        probes.insert(
            ip,
            Probe {
                sent: 3,
                received: 2,
                rtts,
                error: None,
            },
        );
    }
    Survey {
        pops,
        answers: HashMap::new(),
        probes: Some(probes),
    }
}

/// The value of the series `name{labels}` (labels in any order), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let labels: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn probe_rounds_export_endpoint_series_and_drop_departed_pops() {
    let m = Metrics::new();
    m.observe_probes(&survey(&["Frankfurt", "Munich"]));
    let text = m.encode();
    let labels = [
        ("pop", "DE/Frankfurt/AWS"),
        ("country", "DE"),
        ("provider", "AWS"),
        ("fqdn", "frankfurt.pops.test"),
        ("ip", "198.18.0.1"),
    ];
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
    m.observe_probes(&survey(&["Frankfurt"]));
    let text = m.encode();
    assert!(!text.contains("Munich"), "{text}");
    assert_eq!(
        sample(&text, "popsel_probe_requests_total", &labels),
        Some(6.0),
        "counters accumulate"
    );
}

#[test]
fn state_sets_emit_every_state() {
    let m = Metrics::new();
    m.observe_tunnels(&[TunnelStatusRow {
        location: "chicago".into(),
        tunnel: "Chicago IPSec1".into(),
        state: TunnelState::Connected,
    }]);
    m.observe_connectors(&[ConnectorStatusRow {
        connector: "conn-1".into(),
        state: ConnectorState::AgentOnly,
    }]);
    let text = m.encode();
    for (state, v) in [("Connected", 1.0), ("Disconnected", 0.0), ("Unknown", 0.0)] {
        let labels = [
            ("location", "chicago"),
            ("tunnel", "Chicago IPSec1"),
            ("state", state),
        ];
        assert_eq!(
            sample(&text, "popsel_tunnel_status", &labels),
            Some(v),
            "{state}\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "popsel_tunnel_up",
            &[("location", "chicago"), ("tunnel", "Chicago IPSec1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("popsel_connector_status{"))
            .count(),
        8
    );
    assert_eq!(
        sample(
            &text,
            "popsel_connector_status",
            &[("connector", "conn-1"), ("state", "AgentOnly")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "popsel_connector_status",
            &[("connector", "conn-1"), ("state", "Available")]
        ),
        Some(0.0)
    );
}

#[test]
fn api_calls_are_counted_with_bounded_labels() {
    let m = Metrics::new();
    m.observe(
        "/api/v1/tunnels/{id}",
        "GET",
        "200",
        Duration::from_millis(12),
    );
    assert_eq!(sample(&m.encode(), "popsel_api_up", &[]), Some(1.0));
    m.observe("/api/v1/tunnels", "POST", "500", Duration::from_millis(30));
    let text = m.encode();
    assert_eq!(sample(&text, "popsel_api_up", &[]), Some(0.0));
    let labels = [
        ("endpoint", "/api/v1/tunnels"),
        ("method", "POST"),
        ("code", "500"),
    ];
    assert_eq!(
        sample(&text, "popsel_api_requests_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "popsel_api_request_duration_seconds_count",
            &[("endpoint", "/api/v1/tunnels/{id}")]
        ),
        Some(1.0)
    );
    m.observe(
        "/api/v1/tunnels/{id}",
        "GET",
        "404",
        Duration::from_millis(12),
    );
    assert_eq!(
        sample(&m.encode(), "popsel_api_up", &[]),
        Some(1.0),
        "a 404 is an answer"
    );
}

#[test]
fn stages_and_build_info_are_always_there() {
    let m = Metrics::new();
    let text = m.encode();
    for stage in Stage::ALL {
        assert_eq!(
            sample(
                &text,
                "popsel_stage_runs_total",
                &[("stage", stage.as_str())]
            ),
            Some(0.0)
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("popsel_build_info{") && l.ends_with(" 1"))
    );
    m.stage_ran(
        Stage::Probe,
        false,
        SystemTime::UNIX_EPOCH + Duration::from_secs(100),
    );
    m.stage_ran(
        Stage::Probe,
        true,
        SystemTime::UNIX_EPOCH + Duration::from_secs(200),
    );
    let text = m.encode();
    assert_eq!(
        sample(&text, "popsel_stage_runs_total", &[("stage", "probe")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "popsel_stage_failures_total", &[("stage", "probe")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "popsel_stage_last_success_timestamp_seconds",
            &[("stage", "probe")]
        ),
        Some(200.0)
    );
}
