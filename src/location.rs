//! The sites popsel serves: where a location is, whether this host measures for it, and the
//! tunnels it wants. A leaf: every stage may use these types, and they use no stage.

use std::net::IpAddr;

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
    /// What the location's tunnels carry, this side and the PoP's side; empty: everything
    /// (`0.0.0.0/0`) is proposed and the PoP narrows it to what it accepts.
    pub local_ts: Vec<TrafficSelector>,
    pub remote_ts: Vec<TrafficSelector>,
}

impl Location {
    /// The location's tunnel of `role`, if it has one.
    pub fn tunnel(&self, role: Role) -> Option<&TunnelConfig> {
        self.tunnels.iter().find(|t| t.role == role)
    }
}

/// A subnet a tunnel carries traffic for (an IKEv2 traffic selector), as `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficSelector {
    pub network: IpAddr,
    pub prefix: u8,
}

impl TrafficSelector {
    /// Parses `10.1.0.0/24`, `::/0`, or a bare address (one host). A subnet with host bits
    /// set is refused rather than silently widened or narrowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not ADDRESS/PREFIX (e.g. 10.1.0.0/24)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?,
        };
        let ts = Self { network, prefix };
        let masked = ts.masked();
        if masked != network {
            return Err(format!(
                "{text:?} has host bits set; the subnet is {masked}/{prefix}"
            ));
        }
        Ok(ts)
    }

    /// The address with the bits past the prefix cleared.
    fn masked(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl std::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
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

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
