//! Catalogue stage: the API's PoP document turned into validated [`Pop`]s.
//!
//! Pure. An entry that cannot be used (coordinates that are not numbers or out of range, no
//! usable FQDN, not even the documented shape) is skipped and reported as a [`Skipped`] naming
//! its country and city and the reason; one bad entry never aborts the run, and nothing is
//! dropped without a trace.

mod wire;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::ops::Range;

use arcstr::{ArcStr, Substr};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::atmos::types::{Coordinate, CoordinateRef, Lenient, PopDocument, PopEntry};

/// A name of the catalogue (a country, city, provider or FQDN): a reference-counted string,
/// cloned without copying. The city and FQDN names of a country's PoPs are slices of one
/// allocation (up to 64 KiB of names), which their ids and endpoints share: a handful of
/// allocations for a 10,000-PoP catalogue's names, not one per PoP (or 30,000, one per name,
/// before).
pub type Name = Substr;

/// An IPsec PoP as the catalogue lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pop {
    /// Shared by the catalogue's PoPs in the same country (one allocation per country, not one
    /// per PoP), as `provider` is by those of the same provider.
    pub country: Name,
    pub city: Name,
    pub provider: Name,
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
    pub country: Name,
    pub city: Name,
    pub provider: Name,
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
    /// Shared with the endpoints of the name (the resolve stage's), not copied into each.
    pub name: Name,
    pub ips: Addresses,
}

/// The addresses listed for an FQDN: the API lists one per name, kept in place rather than in
/// an allocation of its own (20,000 fewer to make and free for a 10,000-PoP catalogue).
pub type Addresses = SmallVec<[IpAddr; 1]>;

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
        let mut builder = Builder::default();
        for (i, country) in doc.ip_sec_locations.iter().enumerate() {
            let country = match country {
                Lenient::Valid(country) => country,
                Lenient::Invalid { error, .. } => {
                    builder.skip(bad_country(i, error));
                    continue;
                }
            };
            let code = Name::from(country.country.trim());
            for (j, entry) in country.locations.iter().enumerate() {
                let read = match entry {
                    Lenient::Valid(entry) => builder.read(&code, document_entry(entry)),
                    Lenient::Invalid { error, .. } => Err(bad_entry(&code, j, error)),
                };
                if let Err(skipped) = read {
                    builder.skip(skipped);
                }
            }
            builder.add_pops(&code);
        }
        builder.catalog
    }

    /// Parses the JSON text of a catalogue (`GET /api/v1/pops/ipsec` as sent, or a file)
    /// straight into the catalogue, without an intermediate document. The same as
    /// [`Catalog::from_document`] of the text read as a [`PopDocument`], the same error when it
    /// is not one.
    pub fn from_json(text: &str) -> Result<Catalog, serde_json::Error> {
        // The documented shape, as the API sends it, has a fast reader of its own; a text it
        // does not take is read again the lenient way, from the start (at most twice the time
        // of one pass, for a text that leaves the shape at its very end).
        let mut builder = Builder::default();
        if wire::documented::read(text, |i, code, country| builder.country(i, code, country)) {
            return Ok(builder.catalog);
        }
        let mut builder = Builder::default();
        wire::read(text, |i, code, country| builder.country(i, code, country))?;
        Ok(builder.catalog)
    }
}

fn bad_country(index: usize, error: &str) -> Skipped {
    Skipped {
        country: format!("ipSecLocations[{index}]"),
        city: String::new(),
        reason: format!("country entry does not have the documented shape: {error}"),
    }
}

fn bad_entry(country: &str, index: usize, error: &str) -> Skipped {
    Skipped {
        country: country.to_owned(),
        city: format!("locations[{index}]"),
        reason: format!("entry does not have the documented shape: {error}"),
    }
}

/// A location entry of the documented shape, as read: from a [`PopDocument`] or straight from
/// the text. `fqdns` are its FQDN elements of the documented shape, each with its name and the
/// listed addresses that parse.
struct EntryView<'a, F> {
    city: Option<&'a str>,
    latitude: Option<CoordinateRef<'a>>,
    longitude: Option<CoordinateRef<'a>>,
    provider: Option<&'a str>,
    fqdns: F,
}

fn document_entry(
    entry: &PopEntry,
) -> EntryView<'_, impl Iterator<Item = (Option<&str>, impl Iterator<Item = IpAddr>)>> {
    EntryView {
        city: entry.city.as_deref(),
        latitude: entry.latitude.as_ref().map(Coordinate::as_borrowed),
        longitude: entry.longitude.as_ref().map(Coordinate::as_borrowed),
        provider: entry.provider.as_deref(),
        fqdns: entry.fqdn.iter().filter_map(Lenient::valid).map(|f| {
            let ips = f.ip.0.iter().filter_map(|ip| ip.trim().parse().ok());
            (f.name.as_deref(), ips)
        }),
    }
}

/// The catalogue as its entries come: PoPs in the order first listed, a PoP listed twice
/// merged into its first entry.
#[derive(Default)]
struct Builder {
    catalog: Catalog,
    /// Where the first entry of each PoP is in `catalog.pops`, by the hash of its id: finding
    /// it by a scan made a 10,000-PoP catalogue quadratic. Keyed at random per run, so that a
    /// hostile catalogue cannot choose colliding names; foldhash rather than std's SipHash, as
    /// for `probe::Probes`: every entry's three names are hashed here.
    first: HashMap<u64, usize, BuildHasherDefault<Hashed>>,
    hasher: foldhash::fast::RandomState,
    names: Names,
}

/// Where the names of the entries are made: the city and FQDN names of a country's PoPs are
/// laid out in `text` as its entries are read, and become one allocation, shared by those PoPs
/// as substrings, when the country ends or the text reaches [`Names::BLOCK`] ([`Names::pops`]).
#[derive(Default)]
struct Names {
    /// The providers' names met so far, each allocated once and shared by its PoPs: a catalogue
    /// has a handful. Bounded, so that a hostile one naming a new provider in every entry costs
    /// a short scan and an allocation per PoP, no more.
    providers: Vec<Name>,
    /// The names laid out; kept from block to block so that laying them out allocates nothing.
    text: String,
    /// The FQDNs of the PoPs read: where each name is in `text`, and its addresses.
    fqdns: Vec<(Range<usize>, Addresses)>,
    /// The PoPs read, waiting for their names' block.
    read: Vec<PopRead>,
}

/// A PoP whose names are laid out in [`Names::text`].
struct PopRead {
    city: Range<usize>,
    provider: Name,
    latitude: f64,
    longitude: f64,
    /// In [`Names::fqdns`].
    fqdns: Range<usize>,
}

impl Names {
    const PROVIDERS_KEPT: usize = 16;
    /// The most text a block is started beyond: what a [`PopId`] kept in the selection state
    /// keeps alive of the catalogue is at most its block, and a substring's index stays far
    /// from the 4 GiB it must stay under.
    const BLOCK: usize = 64 * 1024;

    /// The PoPs read since the last block, their names in a new one.
    fn pops(&mut self, country: &Name) -> Vec<Pop> {
        if self.read.is_empty() {
            return Vec::new();
        }
        let block = ArcStr::from(self.text.as_str());
        let mut fqdns = self.fqdns.drain(..);
        let pops = self
            .read
            .drain(..)
            .map(|pop| Pop {
                country: country.clone(),
                city: block.substr(pop.city),
                provider: pop.provider,
                latitude: pop.latitude,
                longitude: pop.longitude,
                fqdns: fqdns
                    .by_ref()
                    .take(pop.fqdns.len())
                    .map(|(name, ips)| ListedFqdn {
                        name: block.substr(name),
                        ips,
                    })
                    .collect(),
            })
            .collect();
        drop(fqdns);
        self.text.clear();
        pops
    }

    fn provider(&mut self, name: &str) -> Name {
        if let Some(known) = self.providers.iter().find(|known| ***known == *name) {
            return known.clone();
        }
        let name = Name::from(name);
        if self.providers.len() < Self::PROVIDERS_KEPT {
            self.providers.push(name.clone());
        }
        name
    }
}

/// The hasher of a map whose keys are already hashes: it keeps them as they are.
#[derive(Default)]
struct Hashed(u64);

impl Hasher for Hashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

impl Builder {
    /// The entries of the country at `index` of the document (or why it has not the
    /// documented shape).
    fn country(&mut self, index: usize, code: Result<&str, &str>, country: &wire::Country<'_>) {
        let code = match code {
            Ok(code) => Name::from(code.trim()),
            Err(error) => return self.skip(bad_country(index, error)),
        };
        for (j, entry) in country.entries().enumerate() {
            let read = match entry {
                Ok(entry) => self.read(&code, entry),
                Err(error) => Err(bad_entry(&code, j, error)),
            };
            if let Err(skipped) = read {
                self.skip(skipped);
            }
        }
        self.add_pops(&code);
    }

    /// Reads an entry of `country`; its PoP is added with the next block of names.
    fn read<'a, F, I>(&mut self, country: &Name, entry: EntryView<'a, F>) -> Result<(), Skipped>
    where
        F: Iterator<Item = (Option<&'a str>, I)>,
        I: Iterator<Item = IpAddr>,
    {
        if self.names.text.len() >= Names::BLOCK {
            self.add_pops(country);
        }
        parse_pop(country, entry, &mut self.names)
    }

    /// The PoPs read, with their names' block.
    fn add_pops(&mut self, country: &Name) {
        for pop in self.names.pops(country) {
            self.add_pop(pop);
        }
    }

    fn skip(&mut self, skipped: Skipped) {
        self.catalog.skipped.push(skipped);
    }

    /// A PoP listed twice (same country, city and provider) is one PoP: its FQDNs are merged
    /// into the first entry, whose coordinates stand.
    fn add_pop(&mut self, pop: Pop) {
        let same =
            |p: &Pop| p.country == pop.country && p.city == pop.city && p.provider == pop.provider;
        let key = self
            .hasher
            .hash_one((&pop.country, &pop.city, &pop.provider));
        let pops = &mut self.catalog.pops;
        let first = match self.first.get(&key) {
            Some(&i) if pops.get(i).is_some_and(same) => Some(i),
            // Another PoP with the same 64-bit hash: as good as never, but still correct.
            Some(_) => pops.iter().position(same),
            None => None,
        };
        match first.and_then(|i| pops.get_mut(i)) {
            Some(first) => merge_fqdns(&mut first.fqdns, pop.fqdns),
            None => {
                self.first.entry(key).or_insert(pops.len());
                pops.push(pop);
            }
        }
    }
}

/// `more` added to `fqdns`: an FQDN already there gains the addresses it lacks.
fn merge_fqdns(fqdns: &mut Vec<ListedFqdn>, more: impl IntoIterator<Item = ListedFqdn>) {
    for fqdn in more {
        match fqdns.iter_mut().find(|f| f.name == fqdn.name) {
            Some(f) => add_addresses(&mut f.ips, fqdn.ips),
            None => fqdns.push(fqdn),
        }
    }
}

fn add_addresses(ips: &mut Addresses, more: impl IntoIterator<Item = IpAddr>) {
    for ip in more {
        if !ips.contains(&ip) {
            ips.push(ip);
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

fn coordinate(value: Option<CoordinateRef<'_>>, name: &str, limit: f64) -> Result<f64, String> {
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

/// Reads an entry of `country` into `names` (its PoP is made with the next block of names,
/// [`Names::pops`]), or why it is skipped.
fn parse_pop<'a, F, I>(
    country: &Name,
    entry: EntryView<'a, F>,
    names: &mut Names,
) -> Result<(), Skipped>
where
    F: Iterator<Item = (Option<&'a str>, I)>,
    I: Iterator<Item = IpAddr>,
{
    let city = entry.city.map(str::trim).unwrap_or_default();
    let skip = |reason: String| Skipped {
        country: country.to_string(),
        city: city.to_owned(),
        reason,
    };
    if city.is_empty() {
        return Err(skip("city is missing".into()));
    }
    let latitude = coordinate(entry.latitude, "latitude", 90.0).map_err(skip)?;
    let longitude = coordinate(entry.longitude, "longitude", 180.0).map_err(skip)?;
    let Names { text, fqdns, .. } = &mut *names;
    let (text_start, fqdns_start) = (text.len(), fqdns.len());
    text.push_str(city);
    let city_at = text_start..text.len();
    for (name, listed) in entry.fqdns {
        let Some(name) = name.map(bare_name).filter(|n| !n.is_empty()) else {
            continue;
        };
        // An address that does not parse is dropped; the name may still resolve through DNS.
        let ips: Addresses = listed.collect();
        // A name that cannot be looked up (the document's own sample has the placeholder
        // `<tunnel-name>.axisapps.io`) is still useful for its listed addresses.
        if ips.is_empty() && !is_hostname(name) {
            continue;
        }
        // Lower case: DNS names compare that way.
        let at = text.len();
        text.push_str(name);
        if let Some(added) = text.get_mut(at..) {
            added.make_ascii_lowercase();
        }
        let range = at..text.len();
        let same = fqdns
            .get_mut(fqdns_start..)
            .unwrap_or_default()
            .iter_mut()
            .find(|(known, _)| text.get(known.clone()) == text.get(range.clone()));
        match same {
            Some((_, known)) => {
                add_addresses(known, ips);
                text.truncate(at);
            }
            None => fqdns.push((range, ips)),
        }
    }
    if fqdns.len() == fqdns_start {
        text.truncate(text_start);
        return Err(skip("no usable FQDN".into()));
    }
    let fqdns_at = fqdns_start..fqdns.len();
    let provider = entry.provider.map(str::trim).filter(|p| !p.is_empty());
    let provider = names.provider(provider.unwrap_or("unknown"));
    names.read.push(PopRead {
        city: city_at,
        provider,
        latitude,
        longitude,
        fqdns: fqdns_at,
    });
    Ok(())
}

/// An FQDN as DNS compares it, but for case: no surrounding spaces, no trailing dot.
fn bare_name(name: &str) -> &str {
    name.trim().trim_end_matches('.')
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
