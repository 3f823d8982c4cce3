//! The sites popsel serves: where a location is, whether this host measures for it, and the
//! tunnels it wants. A leaf: every stage may use these types, and they use no stage.

use secrecy::SecretString;
use serde::Serialize;

/// A point on the earth, in degrees: where a ranking is made from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Site {
    pub latitude: f64,
    pub longitude: f64,
}

impl Site {
    /// Parses `LAT,LON` in degrees.
    pub fn parse(text: &str) -> Result<Site, String> {
        let (lat, lon) = text
            .split_once(',')
            .ok_or_else(|| format!("{text:?} is not LAT,LON (e.g. 41.88,-87.63)"))?;
        let number = |s: &str, name: &str, limit: f64| {
            let v: f64 = s
                .trim()
                .parse()
                .map_err(|_| format!("{name} {s:?} is not a number"))?;
            if !v.is_finite() || v.abs() > limit {
                return Err(format!("{name} {v} is out of range (-{limit} to {limit})"));
            }
            Ok(v)
        };
        Ok(Site {
            latitude: number(lat, "latitude", 90.0)?,
            longitude: number(lon, "longitude", 180.0)?,
        })
    }
}

/// The part a tunnel plays for its location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Primary, Role::Secondary];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A site whose tunnels popsel manages.
#[derive(Debug, Clone)]
pub struct Location {
    pub name: String,
    pub location_id: String,
    pub site: Site,
    /// Latency measured from this host applies (true), or PoPs are ranked by distance (false).
    pub local: bool,
    pub tunnels: Vec<TunnelConfig>,
}

impl Location {
    /// The location's tunnel of `role`, if it has one.
    pub fn tunnel(&self, role: Role) -> Option<&TunnelConfig> {
        self.tunnels.iter().find(|t| t.role == role)
    }
}

/// A tunnel as the config wants it. `Debug` never shows the PSK.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub name: String,
    pub role: Role,
    pub authentication_id: String,
    pub psk: SecretString,
}

/// Every tunnel of `locations`, with its location.
pub fn tunnels(locations: &[Location]) -> impl Iterator<Item = (&Location, &TunnelConfig)> {
    locations
        .iter()
        .flat_map(|l| l.tunnels.iter().map(move |t| (l, t)))
}
