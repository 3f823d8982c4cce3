use super::*;
use crate::metrics::fixtures::{exposition, sample};

#[test]
fn state_sets_emit_every_state() {
    let c = StatusCollector::new().unwrap();
    c.observe_tunnels(&[TunnelStatusRow {
        location: "chicago".into(),
        tunnel: "Chicago IPSec1".into(),
        state: TunnelState::Connected,
    }]);
    c.observe_connectors(&[ConnectorStatusRow {
        connector: "conn-1".into(),
        state: ConnectorState::AgentOnly,
    }]);
    let text = exposition(c.clone());
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
