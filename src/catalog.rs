//! Catalogue stage: the API's PoP document turned into validated [`Pop`]s.
//!
//! Pure. An entry that cannot be used (coordinates that are not numbers or out of range, no
//! usable FQDN, not even the documented shape) is skipped and reported as a [`Skipped`] naming
//! its country and city and the reason; one bad entry never aborts the run, and nothing is
//! dropped without a trace.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::atmos::types::{Coordinate, Lenient, PopCountry, PopDocument, PopEntry};

/// An IPsec PoP as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pop {
    pub country: String,
    pub city: String,
    pub provider: String,
    pub latitude: f64,
    pub longitude: f64,
    pub fqdns: Vec<ListedFqdn>,
}

impl Pop {
    pub fn id(&self) -> PopId {
        PopId {
            country: self.country.clone(),
            city: self.city.clone(),
            provider: self.provider.clone(),
        }
    }
}

/// Which PoP: a catalogue entry is a city at a provider, unique in a catalogue (entries listed
/// twice are merged). Its one label, wherever a PoP is named (metrics, logs, plan output, the
/// hook's environment), is its `Display`: `DE/Frankfurt/AWS`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PopId {
    pub country: String,
    pub city: String,
    pub provider: String,
}

impl PopId {
    pub fn same_city(&self, other: &PopId) -> bool {
        self.country == other.country && self.city == other.city
    }
}

impl std::fmt::Display for PopId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.country, self.city, self.provider)
    }
}

/// An FQDN of a PoP with the addresses the catalogue lists for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedFqdn {
    pub name: String,
    pub ips: Vec<IpAddr>,
}

/// An entry left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub country: String,
    pub city: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalog {
    pub pops: Vec<Pop>,
    pub skipped: Vec<Skipped>,
}

impl Catalog {
    /// Validates every entry of `doc`.
    pub fn from_document(doc: &PopDocument) -> Catalog {
        let mut catalog = Catalog::default();
        for (i, country) in doc.ip_sec_locations.iter().enumerate() {
            match country {
                Lenient::Valid(country) => catalog.add_country(country),
                Lenient::Invalid { error, .. } => catalog.skipped.push(Skipped {
                    country: format!("ipSecLocations[{i}]"),
                    city: String::new(),
                    reason: format!("country entry does not have the documented shape: {error}"),
                }),
            }
        }
        catalog
    }

    /// Parses the JSON text of a catalogue (`GET /api/v1/pops/ipsec` as sent, or a file).
    pub fn from_json(text: &str) -> Result<Catalog, serde_json::Error> {
        let doc: PopDocument = serde_json::from_str(text)?;
        Ok(Catalog::from_document(&doc))
    }

    fn add_country(&mut self, country: &PopCountry) {
        let code = country.country.trim();
        for (i, entry) in country.locations.iter().enumerate() {
            let result = match entry {
                Lenient::Valid(entry) => parse_pop(code, entry),
                Lenient::Invalid { error, .. } => Err(Skipped {
                    country: code.to_owned(),
                    city: format!("locations[{i}]"),
                    reason: format!("entry does not have the documented shape: {error}"),
                }),
            };
            match result {
                Ok(pop) => self.add_pop(pop),
                Err(skipped) => self.skipped.push(skipped),
            }
        }
    }
}

/// Which PoPs a site may use: allow lists of countries and providers (empty: all), and cities
/// or FQDNs to leave out. Names compare without regard to case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub countries: Vec<String>,
    pub providers: Vec<String>,
    pub exclude: Vec<String>,
}

impl Filter {
    /// The PoPs allowed; an excluded FQDN is removed from its PoP, and a PoP left with no FQDN
    /// goes too.
    pub fn apply(&self, pops: &[Pop]) -> Vec<Pop> {
        let listed = |list: &[String], value: &str| {
            list.is_empty() || list.iter().any(|v| v.trim().eq_ignore_ascii_case(value))
        };
        let excluded = |value: &str| {
            self.exclude
                .iter()
                .any(|v| v.trim().eq_ignore_ascii_case(value))
        };
        pops.iter()
            .filter(|p| listed(&self.countries, &p.country) && listed(&self.providers, &p.provider))
            .filter(|p| !excluded(&p.city))
            .filter_map(|p| {
                let fqdns: Vec<ListedFqdn> = p
                    .fqdns
                    .iter()
                    .filter(|f| !excluded(&f.name))
                    .cloned()
                    .collect();
                (!fqdns.is_empty()).then(|| Pop { fqdns, ..p.clone() })
            })
            .collect()
    }
}

impl Catalog {
    /// A PoP listed twice (same country, city and provider) is one PoP: its FQDNs are merged
    /// into the first entry, whose coordinates stand.
    fn add_pop(&mut self, pop: Pop) {
        let same = |p: &&mut Pop| {
            p.country == pop.country && p.city == pop.city && p.provider == pop.provider
        };
        match self.pops.iter_mut().find(same) {
            Some(first) => {
                for fqdn in pop.fqdns {
                    match first.fqdns.iter_mut().find(|f| f.name == fqdn.name) {
                        Some(f) => {
                            for ip in fqdn.ips {
                                if !f.ips.contains(&ip) {
                                    f.ips.push(ip);
                                }
                            }
                        }
                        None => first.fqdns.push(fqdn),
                    }
                }
            }
            None => self.pops.push(pop),
        }
    }
}

fn coordinate(value: &Option<Coordinate>, name: &str, limit: f64) -> Result<f64, String> {
    let Some(value) = value else {
        return Err(format!("{name} is missing"));
    };
    let degrees = value
        .degrees()
        .ok_or_else(|| format!("{name} {value} is not a number"))?;
    if degrees.abs() > limit {
        return Err(format!(
            "{name} {degrees} is out of range (-{limit} to {limit})"
        ));
    }
    Ok(degrees)
}

fn parse_pop(country: &str, entry: &PopEntry) -> Result<Pop, Skipped> {
    let city = entry.city.as_deref().map(str::trim).unwrap_or_default();
    let skip = |reason: String| Skipped {
        country: country.to_owned(),
        city: city.to_owned(),
        reason,
    };
    if city.is_empty() {
        return Err(skip("city is missing".into()));
    }
    let latitude = coordinate(&entry.latitude, "latitude", 90.0).map_err(skip)?;
    let longitude = coordinate(&entry.longitude, "longitude", 180.0).map_err(skip)?;
    let mut fqdns: Vec<ListedFqdn> = Vec::new();
    for fqdn in entry.fqdn.iter().filter_map(Lenient::valid) {
        let Some(name) = fqdn
            .name
            .as_deref()
            .map(normalize_name)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        // An address that does not parse is dropped; the name may still resolve through DNS.
        let ips: Vec<IpAddr> = fqdn
            .ip
            .0
            .iter()
            .filter_map(|ip| ip.trim().parse().ok())
            .collect();
        // A name that cannot be looked up (the document's own sample has the placeholder
        // `<tunnel-name>.axisapps.io`) is still useful for its listed addresses.
        if ips.is_empty() && !is_hostname(&name) {
            continue;
        }
        match fqdns.iter_mut().find(|f| f.name == name) {
            Some(existing) => {
                for ip in ips {
                    if !existing.ips.contains(&ip) {
                        existing.ips.push(ip);
                    }
                }
            }
            None => fqdns.push(ListedFqdn { name, ips }),
        }
    }
    if fqdns.is_empty() {
        return Err(skip("no usable FQDN".into()));
    }
    Ok(Pop {
        country: country.to_owned(),
        city: city.to_owned(),
        provider: entry
            .provider
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
        latitude,
        longitude,
        fqdns,
    })
}

/// Lower case, no trailing dot: DNS names compare that way.
fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// LDH labels of 1 to 63 characters, 253 in all: anything else cannot be looked up.
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
