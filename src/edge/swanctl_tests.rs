use super::*;
use crate::edge::fixtures::*;
use crate::select::RoleState;

/// The text of connection `name` in `conf`, up to the next connection.
fn connection<'a>(conf: &'a str, name: &str) -> &'a str {
    let start = conf
        .find(&format!("  {name} {{"))
        .unwrap_or_else(|| panic!("no {name} in {conf}"));
    let rest = &conf[start + 1..];
    let end = rest.find("\n  popsel-").map_or(rest.len(), |i| i + 1);
    &conf[start..start + 1 + end]
}

#[test]
fn connections_point_each_role_at_the_measured_address_and_carry_no_psk() {
    let files = render_swanctl(&location(), &selection());
    let c = &files.connections;
    let primary = connection(c, "popsel-chicago_hq-primary");
    let secondary = connection(c, "popsel-chicago_hq-secondary");
    // The address popsel measured, not a name charon would resolve on its own.
    assert!(
        primary.contains("remote_addrs = \"198.18.0.1\""),
        "{primary}"
    );
    assert!(
        secondary.contains("remote_addrs = \"198.18.0.2\""),
        "{secondary}"
    );
    assert!(!c.contains("remote_addrs = \"ipsec-"), "{c}");
    assert!(
        primary.contains("(ipsec-chi-1.pops.popsel.test)"),
        "kept as a comment"
    );
    assert!(primary.contains(&format!("id = \"{CHICAGO_AUTH_1}\"")));
    assert!(c.contains("version = 2") && c.contains("auth = psk"));
    assert!(!c.contains("s3cret") && !c.contains("other-psk"));
}

#[test]
fn only_the_primary_starts_so_that_two_children_never_compete_for_one_policy() {
    let files = render_swanctl(&location(), &selection());
    let primary = connection(&files.connections, "popsel-chicago_hq-primary");
    let secondary = connection(&files.connections, "popsel-chicago_hq-secondary");
    assert!(primary.contains("start_action = start"), "{primary}");
    assert!(primary.contains("close_action = start"), "{primary}");
    assert!(secondary.contains("start_action = none"), "{secondary}");
    assert!(secondary.contains("close_action = none"), "{secondary}");
}

#[test]
fn traffic_selectors_are_the_locations_or_everything_for_the_pop_to_narrow() {
    let files = render_swanctl(&location(), &selection());
    assert!(files.connections.contains("local_ts = 0.0.0.0/0\n"));
    assert!(files.connections.contains("remote_ts = 0.0.0.0/0\n"));

    let mut loc = location();
    loc.local_ts = vec![
        TrafficSelector::parse("10.1.0.0/24").unwrap(),
        TrafficSelector::parse("2001:db8:1::/48").unwrap(),
    ];
    loc.remote_ts = vec![TrafficSelector::parse("10.0.0.0/8").unwrap()];
    let files = render_swanctl(&loc, &selection());
    let primary = connection(&files.connections, "popsel-chicago_hq-primary");
    assert!(
        primary.contains("local_ts = 10.1.0.0/24, 2001:db8:1::/48\n"),
        "{primary}"
    );
    assert!(primary.contains("remote_ts = 10.0.0.0/8\n"), "{primary}");
}

#[test]
fn secrets_hold_the_psk_hex_encoded() {
    let files = render_swanctl(&location(), &selection());
    let hex: String = PSK.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        files.secrets.contains(&format!("secret = 0x{hex}")),
        "{}",
        files.secrets
    );
    assert!(files.secrets.contains("ike-popsel-chicago_hq-secondary {"));
    assert!(
        !files.secrets.contains("s3cret"),
        "never in clear, even here"
    );
}

#[test]
fn a_role_without_a_choice_gets_no_connection() {
    let mut sel = selection();
    sel.secondary = RoleState::default();
    let files = render_swanctl(&location(), &sel);
    assert!(!files.connections.contains("secondary"));
    assert!(!files.secrets.contains("secondary"));
}
