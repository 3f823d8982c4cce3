use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use secrecy::SecretString;

use super::*;
use crate::config::{Role, TunnelConfig};
use crate::rank::Site;
use crate::select::{Choice, PopKey, RoleState};
use crate::state::rfc3339;

const PSK: &str = "s3cret\"quote\\psk";

fn location() -> Location {
    Location {
        name: "chicago hq".into(),
        location_id: "loc-1".into(),
        site: Site {
            latitude: 41.88,
            longitude: -87.63,
        },
        local: true,
        tunnels: vec![
            TunnelConfig {
                name: "Chicago IPSec1".into(),
                role: Role::Primary,
                authentication_id: "chi-1@branch.example".into(),
                psk: SecretString::from(PSK.to_owned()),
            },
            TunnelConfig {
                name: "Chicago IPSec2".into(),
                role: Role::Secondary,
                authentication_id: "203.0.113.7".into(),
                psk: SecretString::from("other-psk-123".to_owned()),
            },
        ],
    }
}

fn choice(city: &str, fqdn: &str) -> Choice {
    Choice {
        pop: PopKey {
            country: "US".into(),
            city: city.into(),
            provider: "AWS".into(),
        },
        fqdn: fqdn.into(),
        ip: "198.18.0.1".parse().unwrap(),
        score: Some(2.0),
        rtt_ms: Some(2.0),
        since: rfc3339(SystemTime::UNIX_EPOCH),
        since_unix: 0,
    }
}

fn selection() -> LocationSelection {
    LocationSelection {
        primary: RoleState {
            choice: Some(choice("Chicago", "ipsec-chi-1.pops.popsel.test")),
            ..Default::default()
        },
        secondary: RoleState {
            choice: Some(choice("Toronto", "ipsec-tor-1.pops.popsel.test")),
            ..Default::default()
        },
    }
}

#[test]
fn connections_point_each_role_at_its_pop_and_carry_no_psk() {
    let files = render_swanctl(&location(), &selection());
    let c = &files.connections;
    assert!(c.contains("popsel-chicago_hq-primary {"), "{c}");
    assert!(c.contains("remote_addrs = \"ipsec-chi-1.pops.popsel.test\""));
    assert!(c.contains("remote_addrs = \"ipsec-tor-1.pops.popsel.test\""));
    assert!(c.contains("id = \"chi-1@branch.example\""));
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

#[test]
fn files_are_written_only_on_change_and_secrets_are_private() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_swanctl(dir.path(), &location(), &selection()).unwrap());
    assert!(
        !write_swanctl(dir.path(), &location(), &selection()).unwrap(),
        "same content: no write"
    );
    let (conf, secrets) = swanctl_paths(dir.path(), &location());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o600);
    assert_eq!(mode(&conf), 0o644);
    let mut moved = selection();
    moved.primary.choice = Some(choice("Dallas", "ipsec-dal-1.pops.popsel.test"));
    assert!(write_swanctl(dir.path(), &location(), &moved).unwrap());
    assert!(
        std::fs::read_to_string(conf)
            .unwrap()
            .contains("ipsec-dal-1")
    );
}

fn change() -> Change {
    Change {
        location: "chicago".into(),
        role: Role::Primary,
        old: Some(choice("Chicago", "old.pops.test")),
        new: Some(choice("Dallas", "$(reboot).pops.test")),
        reason: "test".into(),
    }
}

#[tokio::test]
async fn on_change_gets_the_change_in_its_environment_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    // A hook that writes its environment to a file.
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, format!("#!/bin/sh\nenv > {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    run_on_change(
        &[script.display().to_string()],
        &change(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains("POPSEL_LOCATION=chicago"));
    assert!(env.contains("POPSEL_ROLE=primary"));
    assert!(env.contains("POPSEL_OLD_FQDN=old.pops.test"));
    assert!(
        env.contains("POPSEL_NEW_FQDN=$(reboot).pops.test"),
        "passed as data, not run"
    );
    assert!(env.contains("POPSEL_NEW_IP=198.18.0.1"));
}

#[tokio::test]
async fn on_change_is_bounded_in_time_and_failures_are_reported() {
    let e = run_on_change(
        &["/bin/sleep".into(), "5".into()],
        &change(),
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("killed"), "{e}");
    let e = run_on_change(&["/bin/false".into()], &change(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exited with"), "{e}");
    let e = run_on_change(
        &["/nonexistent/hook".into()],
        &change(),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}
