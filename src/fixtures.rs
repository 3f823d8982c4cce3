//! The demo site (`config/demo-site.toml`) as tests use it: its names and values as constants,
//! and [`SiteToml`], which derives the configs tests need from it (one location, no secondary,
//! other PSK sources, more sections) so that no test writes a site's TOML again.
//!
//! The unit tests use this module as `crate::fixtures`; the integration tests include this same
//! file (`tests/support/site.rs`), since they cannot see the library's test-only code. That is
//! why it needs nothing but std and the toml crate.

// Each side uses only part of it.
#![allow(dead_code)]

use toml::{Table, Value};

/// The demo's locations, `[[locations]]` only.
pub const DEMO_SITE: &str = include_str!("../config/demo-site.toml");

// The file's values that tests assert on; `SiteToml::demo` checks them against the file.
pub const CHICAGO: &str = "chicago";
pub const CHICAGO_LOCATION_ID: &str = "d88fc23a-59a1-476a-a62e-a51ff3543fe7";
pub const CHICAGO_LATITUDE: f64 = 41.88;
pub const CHICAGO_LONGITUDE: f64 = -87.63;
/// Chicago's primary tunnel, and its authentication ID.
pub const CHICAGO_1: &str = "Chicago IPSec1";
pub const CHICAGO_AUTH_1: &str = "chicago-primary@branch.example";
/// Chicago's secondary tunnel, and its authentication ID.
pub const CHICAGO_2: &str = "Chicago IPSec2";
pub const CHICAGO_AUTH_2: &str = "chicago-secondary@branch.example";
pub const FRANKFURT: &str = "frankfurt";
pub const FRANKFURT_LOCATION_ID: &str = "5b0c7a4e-1f5e-4d4a-9d0e-0f7f2a7c1e11";
/// Frankfurt's only tunnel, a primary.
pub const FRANKFURT_1: &str = "Frankfurt IPSec1";

/// A config as a TOML table, built from the demo site. Each edit panics when what it names is
/// not there, so that a fixture that changes under a test fails loudly.
#[derive(Debug, Clone)]
pub struct SiteToml(Table);

impl SiteToml {
    /// The demo site as the file has it.
    pub fn demo() -> SiteToml {
        let doc: Table = DEMO_SITE.parse().expect("config/demo-site.toml is TOML");
        let site = SiteToml(doc);
        site.assert_constants();
        site
    }

    /// Only `location`; the other locations are gone.
    pub fn only(mut self, location: &str) -> SiteToml {
        self.location(location);
        self.locations()
            .retain(|l| l["name"].as_str() == Some(location));
        self
    }

    pub fn without_tunnel(mut self, tunnel: &str) -> SiteToml {
        self.tunnel(tunnel);
        for location in self.locations() {
            if let Some(Value::Array(tunnels)) = location.get_mut("tunnels") {
                tunnels.retain(|t| t["name"].as_str() != Some(tunnel));
            }
        }
        self
    }

    /// Sets `key` of the tunnel named `tunnel` (a rename too: later edits use the new name).
    pub fn set(mut self, tunnel: &str, key: &str, value: impl Into<Value>) -> SiteToml {
        self.tunnel(tunnel).insert(key.to_owned(), value.into());
        self
    }

    /// The tunnel's PSK from the environment variable `var`, instead of where it came from.
    pub fn psk_env(mut self, tunnel: &str, var: &str) -> SiteToml {
        self.tunnel(tunnel).remove("psk_file");
        self.set(tunnel, "psk_env", var)
    }

    /// The tunnel's PSK from `file` (relative to the config's directory), instead of where it
    /// came from.
    pub fn psk_file(mut self, tunnel: &str, file: &str) -> SiteToml {
        self.tunnel(tunnel).remove("psk_env");
        self.set(tunnel, "psk_file", file)
    }

    /// Adds a tunnel, given as the TOML of its keys, to `location`.
    pub fn add_tunnel(mut self, location: &str, tunnel: &str) -> SiteToml {
        let tunnel: Table = tunnel.parse().expect("the added tunnel is TOML");
        match self.location(location).get_mut("tunnels") {
            Some(Value::Array(tunnels)) => tunnels.push(Value::Table(tunnel)),
            _ => panic!("location {location:?} has no tunnels"),
        }
        self
    }

    /// Merges `toml` into the config: its tables into the config's tables of the same name,
    /// key by key (`[api]`, `[edge]`, ...); any other value replaces the config's.
    pub fn with(mut self, toml: &str) -> SiteToml {
        let more: Table = toml.parse().expect("the added sections are TOML");
        merge(&mut self.0, more);
        self
    }

    /// The config file's text.
    pub fn render(&self) -> String {
        toml::to_string(&self.0).expect("a TOML table renders")
    }

    fn locations(&mut self) -> &mut Vec<Value> {
        match self.0.get_mut("locations") {
            Some(Value::Array(locations)) => locations,
            _ => panic!("the site has no [[locations]]"),
        }
    }

    fn location(&mut self, name: &str) -> &mut Table {
        self.locations()
            .iter_mut()
            .filter_map(Value::as_table_mut)
            .find(|l| l["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no location {name:?} in the site"))
    }

    fn tunnel(&mut self, name: &str) -> &mut Table {
        self.locations()
            .iter_mut()
            .filter_map(|l| l.get_mut("tunnels")?.as_array_mut())
            .flatten()
            .filter_map(Value::as_table_mut)
            .find(|t| t["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no tunnel {name:?} in the site"))
    }

    /// The constants above are the file's.
    fn assert_constants(&self) {
        let mut site = self.clone();
        for (name, id) in [
            (CHICAGO, CHICAGO_LOCATION_ID),
            (FRANKFURT, FRANKFURT_LOCATION_ID),
        ] {
            assert_eq!(site.location(name)["location_id"].as_str(), Some(id));
        }
        let chicago = site.location(CHICAGO);
        assert_eq!(
            (
                chicago["latitude"].as_float(),
                chicago["longitude"].as_float()
            ),
            (Some(CHICAGO_LATITUDE), Some(CHICAGO_LONGITUDE))
        );
        for (name, auth) in [(CHICAGO_1, CHICAGO_AUTH_1), (CHICAGO_2, CHICAGO_AUTH_2)] {
            assert_eq!(site.tunnel(name)["authentication_id"].as_str(), Some(auth));
        }
        site.tunnel(FRANKFURT_1);
    }
}

fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(mine)), Value::Table(theirs)) => merge(mine, theirs),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}
