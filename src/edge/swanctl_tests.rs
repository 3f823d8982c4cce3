use super::*;
use crate::edge::fixtures::*;
use crate::select::RoleState;

#[test]
fn connections_point_each_role_at_its_pop_and_carry_no_psk() {
    let files = render_swanctl(&location(), &selection());
    let c = &files.connections;
    assert!(c.contains("popsel-chicago_hq-primary {"), "{c}");
    assert!(c.contains("remote_addrs = \"ipsec-chi-1.pops.popsel.test\""));
    assert!(c.contains("remote_addrs = \"ipsec-tor-1.pops.popsel.test\""));
    assert!(c.contains(&format!("id = \"{CHICAGO_AUTH_1}\"")));
    assert!(c.contains("version = 2") && c.contains("auth = psk"));
    assert!(!c.contains("s3cret") && !c.contains("other-psk"));
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
