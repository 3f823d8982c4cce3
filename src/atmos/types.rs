//! Wire types of the Atmos Cloud admin API, as `../shared/atmos-api/` documents them.
//!
//! They follow the documents literally (camelCase names, `ID` suffixes, coordinates as strings)
//! and are liberal in what they accept: unknown fields are ignored, optional fields may be
//! missing, coordinates may be numbers, and one malformed PoP entry does not make the whole
//! catalogue unreadable (see [`Lenient`]).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::resource::{StateSet, state_set};

/// A tunnel as the API returns it. The PSK is write-only: the API never sends it back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "authenticationID", alias = "AuthenticationID", default)]
    pub authentication_id: String,
    #[serde(rename = "locationID", alias = "LocationID", default)]
    pub location_id: String,
}

/// What a new tunnel is made of. `Debug` never shows the PSK.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    pub name: String,
    pub authentication_id: String,
    pub psk: SecretString,
    pub location_id: String,
}

impl Serialize for TunnelSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            name: &'a str,
            #[serde(rename = "authenticationID")]
            authentication_id: &'a str,
            #[serde(rename = "authenticationPSK")]
            psk: &'a str,
            #[serde(rename = "locationID")]
            location_id: &'a str,
        }
        Wire {
            name: &self.name,
            authentication_id: &self.authentication_id,
            psk: self.psk.expose_secret(),
            location_id: &self.location_id,
        }
        .serialize(s)
    }
}

/// A tunnel update (`PUT`). Fields left `None` are not sent. The document spells the PSK field
/// `AuthenticationPSK` here, unlike create; we send it as documented.
#[derive(Debug, Clone, Default)]
pub struct TunnelUpdate {
    pub name: Option<String>,
    pub authentication_id: Option<String>,
    pub psk: Option<SecretString>,
    pub location_id: Option<String>,
}

impl TunnelUpdate {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.authentication_id.is_none()
            && self.psk.is_none()
            && self.location_id.is_none()
    }
}

impl Serialize for TunnelUpdate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(rename = "authenticationID", skip_serializing_if = "Option::is_none")]
            authentication_id: Option<&'a str>,
            #[serde(rename = "AuthenticationPSK", skip_serializing_if = "Option::is_none")]
            psk: Option<&'a str>,
            #[serde(rename = "locationID", skip_serializing_if = "Option::is_none")]
            location_id: Option<&'a str>,
        }
        Wire {
            name: self.name.as_deref(),
            authentication_id: self.authentication_id.as_deref(),
            psk: self.psk.as_ref().map(|p| p.expose_secret()),
            location_id: self.location_id.as_deref(),
        }
        .serialize(s)
    }
}

state_set! {
    /// The states the document lists for a tunnel, plus `Unknown` for anything else.
    TunnelState { Connected, Disconnected, Unknown }
}

state_set! {
    /// The states the document lists for regular and log-streaming connectors.
    ConnectorState {
        Pending,
        Available,
        Unavailable,
        AgentOnly,
        AgentlessOnly,
        TcpOnly,
        UdpOnly,
        Unknown,
    }
}

/// `GET /<collection>/{id}/status`. The connector document gives the body as `{"id","status"}`;
/// the tunnel document lists the states but not the body, so a bare JSON string is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceStatus<S> {
    pub id: String,
    pub status: S,
}

/// `GET /tunnels/{id}/status`.
pub type TunnelStatus = ResourceStatus<TunnelState>;

/// `GET /connectors/{id}/status`.
pub type ConnectorStatus = ResourceStatus<ConnectorState>;

#[derive(Deserialize)]
#[serde(untagged)]
enum StatusWire {
    Object {
        #[serde(default)]
        id: String,
        #[serde(default, alias = "Status", alias = "state")]
        status: String,
    },
    Bare(String),
}

impl<'de, S: StateSet> Deserialize<'de> for ResourceStatus<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (id, status) = match StatusWire::deserialize(d)? {
            StatusWire::Object { id, status } => (id, status),
            StatusWire::Bare(status) => (String::new(), status),
        };
        Ok(Self {
            id,
            status: S::parse(&status),
        })
    }
}

/// A connector as the API returns it. `command` (the installation command) only comes back
/// from create and regenerate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        rename = "connectorZoneID",
        alias = "ConnectorZoneID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_zone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorSpec {
    pub name: String,
    #[serde(
        rename = "connectorZoneID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_zone_id: Option<String>,
}

/// A connector update (`POST /connectors/{id}`). Fields left `None` are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        rename = "connectorZoneID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub connector_zone_id: Option<String>,
}

/// `POST /connectors/{id}/regenerate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallCommand {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub command: String,
}

/// One page of a list endpoint. Page URLs are informative only: the client pages by number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    #[serde(default)]
    pub page_number: u32,
    #[serde(default)]
    pub page_size: u32,
    #[serde(default)]
    pub first_page: Option<String>,
    #[serde(default)]
    pub last_page: Option<String>,
    #[serde(default)]
    pub total_pages: u32,
    #[serde(default)]
    pub total_records: u64,
    #[serde(default)]
    pub next_page: Option<String>,
    #[serde(default)]
    pub previous_page: Option<String>,
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
}

/// `GET /api/v1/pops/ipsec`: the IPsec PoP catalogue as sent. Turning it into a validated
/// catalogue (numbers, ranges, skipping bad entries) is the `catalog` stage's job.
///
/// `Catalog::from_json` reads the same text straight into the catalogue, without this type,
/// and must accept, refuse and report exactly what it does: a change to the shape of these
/// types is a change there too (the catalogue's tests compare the two on generated documents).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopDocument {
    #[serde(rename = "ipSecLocations", alias = "IpSecLocations", default)]
    pub ip_sec_locations: Vec<Lenient<PopCountry>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopCountry {
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub locations: Vec<Lenient<PopEntry>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopEntry {
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub latitude: Option<Coordinate>,
    #[serde(default)]
    pub longitude: Option<Coordinate>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub fqdn: Vec<Lenient<PopFqdn>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PopFqdn {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub ip: OneOrMany,
}

/// A coordinate as sent: the document says string, some producers send a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Coordinate {
    Text(String),
    Number(f64),
}

impl Coordinate {
    /// The value in degrees, or `None` when the text is not a finite number.
    pub fn degrees(&self) -> Option<f64> {
        self.as_borrowed().degrees()
    }

    pub fn as_borrowed(&self) -> CoordinateRef<'_> {
        match self {
            Coordinate::Text(t) => CoordinateRef::Text(t),
            Coordinate::Number(n) => CoordinateRef::Number(*n),
        }
    }
}

impl fmt::Display for Coordinate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_borrowed().fmt(f)
    }
}

/// A [`Coordinate`] whose text is borrowed: the catalogue reads coordinates straight from the
/// document's text without a copy of each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CoordinateRef<'a> {
    Text(&'a str),
    Number(f64),
}

impl CoordinateRef<'_> {
    /// The value in degrees, or `None` when the text is not a finite number.
    pub fn degrees(self) -> Option<f64> {
        let v = match self {
            CoordinateRef::Text(t) => t.trim().parse::<f64>().ok()?,
            CoordinateRef::Number(n) => n,
        };
        v.is_finite().then_some(v)
    }
}

impl fmt::Display for CoordinateRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinateRef::Text(t) => write!(f, "{t:?}"),
            CoordinateRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The `ip` field of an FQDN: documented as an array, accepted as a lone string too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            One(String),
            Many(Vec<String>),
            Null(()),
        }
        Ok(OneOrMany(match Wire::deserialize(d)? {
            Wire::One(s) => vec![s],
            Wire::Many(v) => v,
            Wire::Null(()) => Vec::new(),
        }))
    }
}

/// An element that is kept even when it does not have the expected shape, so that one bad
/// entry is reported with its raw text instead of making the whole document unreadable.
#[derive(Debug, Clone, PartialEq)]
pub enum Lenient<T> {
    Valid(T),
    Invalid {
        raw: serde_json::Value,
        error: String,
    },
}

impl<T> Lenient<T> {
    pub fn valid(&self) -> Option<&T> {
        match self {
            Lenient::Valid(t) => Some(t),
            Lenient::Invalid { .. } => None,
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        Ok(match T::deserialize(&raw) {
            Ok(t) => Lenient::Valid(t),
            Err(e) => Lenient::Invalid {
                raw,
                error: e.to_string(),
            },
        })
    }
}

impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lenient::Valid(t) => t.serialize(s),
            Lenient::Invalid { raw, .. } => raw.serialize(s),
        }
    }
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
