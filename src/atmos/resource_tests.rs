use super::*;

#[test]
fn states_parse_case_insensitively_and_anything_else_is_unknown() {
    assert_eq!(
        <TunnelState as StateSet>::parse(" connected "),
        TunnelState::Connected
    );
    assert_eq!(TunnelState::parse("Degraded"), TunnelState::Unknown);
    assert_eq!(
        ConnectorState::parse("agentlessonly"),
        ConnectorState::AgentlessOnly
    );
    assert_eq!(ConnectorState::parse(""), ConnectorState::Unknown);
    for state in ConnectorState::ALL {
        assert_eq!(ConnectorState::parse(state.as_str()), state);
        assert_eq!(state.to_string(), state.as_str());
    }
    assert_eq!(
        TunnelState::ALL.map(TunnelState::as_str),
        ["Connected", "Disconnected", "Unknown"]
    );
    assert_eq!(
        <ConnectorState as StateSet>::ALL.len(),
        ConnectorState::ALL.len()
    );
}

#[test]
fn the_list_key_is_the_id_or_else_the_name() {
    let mut c = Connector {
        name: "edge-1".into(),
        ..Default::default()
    };
    assert_eq!(c.list_key(), "edge-1");
    c.set_id("c1".into());
    assert_eq!((c.list_key(), c.id()), ("c1", "c1"));
    let t = Tunnel {
        id: "t1".into(),
        name: "Chicago IPSec1".into(),
        ..Default::default()
    };
    assert_eq!((t.list_key(), t.name()), ("t1", "Chicago IPSec1"));
}

#[test]
fn endpoint_templates_are_the_documented_paths() {
    assert_eq!(
        endpoint_template(IPSEC_POPS, false, None),
        "/api/v1/pops/ipsec"
    );
    assert_eq!(
        endpoint_template(Tunnel::COLLECTION, false, None),
        "/api/v1/tunnels"
    );
    assert_eq!(
        endpoint_template(Connector::COLLECTION, true, Some("regenerate")),
        "/api/v1/connectors/{id}/regenerate"
    );
}
