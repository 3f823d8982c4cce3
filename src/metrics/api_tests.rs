use super::*;
use crate::metrics::fixtures::{exposition, sample};

#[test]
fn api_calls_are_counted_with_bounded_labels() {
    let c = ApiCollector::new().unwrap();
    c.observe(
        "/api/v1/tunnels/{id}",
        "GET",
        "200",
        Duration::from_millis(12),
    );
    assert_eq!(
        sample(&exposition(c.clone()), "popsel_api_up", &[]),
        Some(1.0)
    );
    c.observe("/api/v1/tunnels", "POST", "500", Duration::from_millis(30));
    let text = exposition(c.clone());
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
    c.observe(
        "/api/v1/tunnels/{id}",
        "GET",
        "404",
        Duration::from_millis(12),
    );
    assert_eq!(
        sample(&exposition(c.clone()), "popsel_api_up", &[]),
        Some(1.0),
        "a 404 is an answer"
    );
}

#[test]
fn calls_held_back_are_counted_by_reason_and_throttling_shows_until_lifted() {
    let c = ApiCollector::new().unwrap();
    c.throttled(true);
    c.held(true);
    c.held(true);
    c.held(false);
    let text = exposition(c.clone());
    assert_eq!(sample(&text, "popsel_api_throttled", &[]), Some(1.0));
    let held =
        |text: &str, reason| sample(text, "popsel_api_held_back_total", &[("reason", reason)]);
    assert_eq!(held(&text, "throttled"), Some(2.0));
    assert_eq!(held(&text, "failing"), Some(1.0));
    c.throttled(false);
    assert_eq!(
        sample(&exposition(c.clone()), "popsel_api_throttled", &[]),
        Some(0.0)
    );
}
