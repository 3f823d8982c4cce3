//! A location and its selection, shared by the edge stage's unit tests.

use std::time::SystemTime;

use secrecy::SecretString;

use crate::catalog::PopId;
use crate::location::{Location, Role, Site, TunnelConfig};
use crate::select::{Change, Choice, LocationSelection, RoleState};
use crate::timestamp::rfc3339;

pub const PSK: &str = "s3cret\"quote\\psk";

pub fn location() -> Location {
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

pub fn choice(city: &str, fqdn: &str) -> Choice {
    Choice {
        pop: PopId {
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

pub fn selection() -> LocationSelection {
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

pub fn change() -> Change {
    Change {
        location: "chicago".into(),
        role: Role::Primary,
        old: Some(choice("Chicago", "old.pops.test")),
        new: Some(choice("Dallas", "$(reboot).pops.test")),
        reason: "test".into(),
    }
}
