//! A location and its selection, shared by the edge stage's unit tests.

use std::path::Path;
use std::time::SystemTime;

use crate::catalog::PopId;
use crate::config::Config;
use crate::fixtures::{CHICAGO, CHICAGO_2, SiteToml};
pub use crate::fixtures::{CHICAGO_1, CHICAGO_AUTH_1};
use crate::location::{Location, Role};
use crate::select::{Change, Choice, LocationSelection, RoleState};
use crate::timestamp::rfc3339;

pub const PSK: &str = "s3cret\"quote\\psk";
pub const OTHER_PSK: &str = "other-psk-123";

/// The demo site's Chicago, its secondary authenticated by an IP address, under a name with a
/// space (which swanctl section names must not have). The primary's PSK is [`PSK`], full of
/// characters that would need quoting.
pub fn location() -> Location {
    let site = SiteToml::demo()
        .only(CHICAGO)
        .set(CHICAGO_2, "authentication_id", "203.0.113.7")
        .psk_env(CHICAGO_1, "PSK_1")
        .psk_env(CHICAGO_2, "PSK_2");
    let env = |var: &str| match var {
        "PSK_1" => Some(PSK.to_owned()),
        "PSK_2" => Some(OTHER_PSK.to_owned()),
        _ => None,
    };
    let config = Config::parse_with(&site.render(), "edge", Path::new("/"), &env)
        .expect("the demo site is a valid config");
    let mut chicago = config.locations[0].clone();
    chicago.name = "chicago hq".into();
    chicago
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
            choice: Some(Choice {
                ip: "198.18.0.2".parse().unwrap(),
                ..choice("Toronto", "ipsec-tor-1.pops.popsel.test")
            }),
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
