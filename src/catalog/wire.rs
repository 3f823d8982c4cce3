//! The PoP document read straight from its JSON text: one pass, strings borrowed from the text,
//! no intermediate document.
//!
//! It accepts, refuses and reports exactly what [`PopDocument`] does, whose countries, entries
//! and FQDNs are each read as a `serde_json::Value` first ([`Lenient`]) and then as their type:
//! an element of the wrong shape is consumed and reported in the words serde_json uses for it
//! there; a key given twice counts once, with its last value at its first place (as in a
//! `Value`'s map), and the first field in that order that is wrong is the one reported; a struct
//! may come as an array of its fields; nesting counts toward serde_json's recursion limit, and
//! numbers must be in range, even where the value is not used (as when it is read into a
//! `Value`). The catalogue's tests hold the two to the same result on generated documents.
//!
//! [`PopDocument`]: crate::atmos::types::PopDocument
//! [`Lenient`]: crate::atmos::types::Lenient

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Unexpected, Visitor,
};

pub(super) mod documented;
mod lenient;

use self::lenient::{
    Drain, Expect, Key, Lenient, Number, OptionalText, Order, Shaped, Text, element, error_of,
    extra_elements, invalid_type, too_long, value_of,
};
use super::EntryView;
use crate::atmos::types::CoordinateRef;

/// Reads the document `text`, calling `each` with every element of `ipSecLocations` in order:
/// its index, its country code (or why the element does not have the documented shape), and
/// its entries. The error is serde_json's, as for a [`PopDocument`] that cannot be read.
///
/// [`PopDocument`]: crate::atmos::types::PopDocument
pub(super) fn read<'de, F>(text: &'de str, each: F) -> Result<(), serde_json::Error>
where
    F: FnMut(usize, Result<&str, &str>, &Country<'de>),
{
    let mut reader = Reader {
        each,
        country: Country::default(),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_struct("PopDocument", DOCUMENT_FIELDS, Document(&mut reader))?;
    de.end()
}

const DOCUMENT_FIELDS: &[&str] = &["ipSecLocations", "IpSecLocations"];
const COUNTRY_FIELDS: &[&str] = &["country", "locations"];
const ENTRY_FIELDS: &[&str] = &["city", "latitude", "longitude", "provider", "fqdn"];
const FQDN_FIELDS: &[&str] = &["name", "ip"];

/// serde_json's words for a coordinate that is neither a string nor a number.
const NOT_A_COORDINATE: &str = "data did not match any variant of untagged enum Coordinate";

struct Reader<'de, F> {
    each: F,
    /// The country being read; its buffers serve every country in turn.
    country: Country<'de>,
}

/// The entries of one country, as read. Their FQDNs and addresses live in two lists shared by
/// the country rather than in a list each: two allocations per country instead of three per
/// entry.
#[derive(Default)]
pub(super) struct Country<'de> {
    entries: Vec<Shaped<Entry<'de>>>,
    fqdns: Vec<Fqdn<'de>>,
    ips: Vec<IpAddr>,
}

struct Entry<'de> {
    city: Option<Cow<'de, str>>,
    latitude: Option<Coordinate<'de>>,
    longitude: Option<Coordinate<'de>>,
    provider: Option<Cow<'de, str>>,
    /// In `Country::fqdns`: the FQDN elements of the documented shape.
    fqdns: Range<usize>,
}

enum Coordinate<'de> {
    Text(Cow<'de, str>),
    Number(f64),
}

impl Coordinate<'_> {
    fn as_borrowed(&self) -> CoordinateRef<'_> {
        match self {
            Coordinate::Text(t) => CoordinateRef::Text(t),
            Coordinate::Number(n) => CoordinateRef::Number(*n),
        }
    }
}

struct Fqdn<'de> {
    name: Option<Cow<'de, str>>,
    /// In `Country::ips`: the listed addresses that parse.
    ips: Range<usize>,
}

impl<'de> Country<'de> {
    fn clear(&mut self) {
        self.entries.clear();
        self.fqdns.clear();
        self.ips.clear();
    }

    /// Each entry of the documented shape, or why it does not have it.
    pub(super) fn entries(
        &self,
    ) -> impl Iterator<
        Item = Result<
            EntryView<'_, impl Iterator<Item = (Option<&str>, impl Iterator<Item = IpAddr>)>>,
            &str,
        >,
    > {
        self.entries.iter().map(|entry| match entry {
            Ok(entry) => Ok(self.view(entry)),
            Err(error) => Err(error.as_str()),
        })
    }

    fn view<'a>(
        &'a self,
        entry: &'a Entry<'de>,
    ) -> EntryView<'a, impl Iterator<Item = (Option<&'a str>, impl Iterator<Item = IpAddr>)>> {
        let fqdns = self.fqdns.get(entry.fqdns.clone()).unwrap_or_default();
        EntryView {
            city: entry.city.as_deref(),
            latitude: entry.latitude.as_ref().map(Coordinate::as_borrowed),
            longitude: entry.longitude.as_ref().map(Coordinate::as_borrowed),
            provider: entry.provider.as_deref(),
            fqdns: fqdns.iter().map(|f| {
                let ips = self.ips.get(f.ips.clone()).unwrap_or_default();
                (f.name.as_deref(), ips.iter().copied())
            }),
        }
    }
}

// ---- the document and its list of countries: read as `PopDocument`'s derived `Deserialize`
// reads them, straight from the text ----

struct Document<'r, 'de, F>(&'r mut Reader<'de, F>);

impl<'de, F> Visitor<'de> for Document<'_, 'de, F>
where
    F: FnMut(usize, Result<&str, &str>, &Country<'de>),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("struct PopDocument")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(field) = map.next_key_seed(Key(DOCUMENT_FIELDS))? {
            if field.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if seen {
                return Err(de::Error::duplicate_field("ipSecLocations"));
            }
            seen = true;
            map.next_value_seed(Countries(&mut *self.0))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        seq.next_element_seed(Countries(self.0))?;
        Ok(())
    }
}

struct Countries<'r, 'de, F>(&'r mut Reader<'de, F>);

impl<'de, F> DeserializeSeed<'de> for Countries<'_, 'de, F>
where
    F: FnMut(usize, Result<&str, &str>, &Country<'de>),
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for Countries<'_, 'de, F>
where
    F: FnMut(usize, Result<&str, &str>, &Country<'de>),
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reader = self.0;
        let mut index = 0;
        while let Some(code) = seq.next_element_seed(Lenient(CountryShape(&mut reader.country)))? {
            let code = match &code {
                Ok(code) => Ok(code.as_ref()),
                Err(error) => Err(error.as_str()),
            };
            (reader.each)(index, code, &reader.country);
            index += 1;
        }
        Ok(())
    }
}

// ---- everything inside a country: read as a `Value` would be, then checked as its type
// (see `lenient`) ----

/// `Option<Coordinate>`: a string or a number, or null.
struct OptionalCoordinate;

impl<'de> Expect<'de> for OptionalCoordinate {
    type Out = Option<Coordinate<'de>>;

    fn wrong(&self, _: Unexpected<'_>) -> String {
        NOT_A_COORDINATE.to_owned()
    }

    fn null(self) -> Shaped<Self::Out> {
        Ok(None)
    }

    fn number(self, n: Number) -> Shaped<Self::Out> {
        Ok(Some(Coordinate::Number(n.as_f64())))
    }

    fn string(self, s: Cow<'de, str>) -> Shaped<Self::Out> {
        Ok(Some(Coordinate::Text(s)))
    }
}

/// `PopCountry`: its code; its entries go to the country's buffers.
struct CountryShape<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for CountryShape<'_, 'de> {
    type Out = Cow<'de, str>;

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "struct PopCountry")
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shaped<Self::Out>, A::Error> {
        self.0.clear();
        let (mut code, mut locations) = (None, None);
        let mut order = Order::<2>::new();
        while let Some(field) = map.next_key_seed(Key(COUNTRY_FIELDS))? {
            match field {
                Some(0) => code = Some(map.next_value_seed(Lenient(Text))?),
                Some(_) => locations = Some(map.next_value_seed(Lenient(Entries(&mut *self.0)))?),
                None => map.next_value_seed(Drain)?,
            }
            if let Some(field) = field {
                order.note(field);
            }
        }
        if let Some(error) = order.first_error([error_of(&code), error_of(&locations)]) {
            return Ok(Err(error));
        }
        Ok(Ok(value_of(code)))
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<Self::Out>, A::Error> {
        self.0.clear();
        let mut len = 0;
        let code = element(&mut seq, &mut len, Lenient(Text))?;
        let locations = element(&mut seq, &mut len, Lenient(Entries(&mut *self.0)))?;
        let extra = extra_elements(&mut seq, &mut len)?;
        let error = error_of(&code).or(error_of(&locations)).cloned();
        Ok(match error {
            Some(error) => Err(error),
            None if extra => Err(too_long(len)),
            None => Ok(value_of(code)),
        })
    }
}

/// `Vec<Lenient<PopEntry>>`, into the country's buffers (a list given again replaces it).
struct Entries<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for Entries<'_, 'de> {
    type Out = ();

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "a sequence")
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<()>, A::Error> {
        let country = self.0;
        country.clear();
        while let Some(entry) = seq.next_element_seed(Lenient(EntryShape(&mut *country)))? {
            country.entries.push(entry);
        }
        Ok(Ok(()))
    }
}

/// `PopEntry`; its FQDNs go to the country's buffers.
struct EntryShape<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for EntryShape<'_, 'de> {
    type Out = Entry<'de>;

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "struct PopEntry")
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shaped<Entry<'de>>, A::Error> {
        let mut fields = EntryFields::default();
        let mut order = Order::<5>::new();
        while let Some(field) = map.next_key_seed(Key(ENTRY_FIELDS))? {
            match field {
                Some(0) => fields.city = Some(map.next_value_seed(Lenient(OptionalText))?),
                Some(1) => {
                    fields.latitude = Some(map.next_value_seed(Lenient(OptionalCoordinate))?)
                }
                Some(2) => {
                    fields.longitude = Some(map.next_value_seed(Lenient(OptionalCoordinate))?)
                }
                Some(3) => fields.provider = Some(map.next_value_seed(Lenient(OptionalText))?),
                Some(_) => fields.fqdn = Some(map.next_value_seed(Lenient(Fqdns(&mut *self.0)))?),
                None => map.next_value_seed(Drain)?,
            }
            if let Some(field) = field {
                order.note(field);
            }
        }
        Ok(fields.entry(|errors| order.first_error(errors)))
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<Entry<'de>>, A::Error> {
        let mut len = 0;
        let fields = EntryFields {
            city: element(&mut seq, &mut len, Lenient(OptionalText))?,
            latitude: element(&mut seq, &mut len, Lenient(OptionalCoordinate))?,
            longitude: element(&mut seq, &mut len, Lenient(OptionalCoordinate))?,
            provider: element(&mut seq, &mut len, Lenient(OptionalText))?,
            fqdn: element(&mut seq, &mut len, Lenient(Fqdns(&mut *self.0)))?,
        };
        let extra = extra_elements(&mut seq, &mut len)?;
        Ok(fields.entry(|errors| {
            let first = errors.into_iter().flatten().next().cloned();
            first.or_else(|| extra.then(|| too_long(len)))
        }))
    }
}

/// The fields of an entry as given (`None`: not given).
#[derive(Default)]
struct EntryFields<'de> {
    city: Option<Shaped<Option<Cow<'de, str>>>>,
    latitude: Option<Shaped<Option<Coordinate<'de>>>>,
    longitude: Option<Shaped<Option<Coordinate<'de>>>>,
    provider: Option<Shaped<Option<Cow<'de, str>>>>,
    fqdn: Option<Shaped<Range<usize>>>,
}

impl<'de> EntryFields<'de> {
    /// The entry, unless `first_error` finds an error among the fields' (in field order).
    fn entry(
        self,
        first_error: impl FnOnce([Option<&String>; 5]) -> Option<String>,
    ) -> Shaped<Entry<'de>> {
        let errors = [
            error_of(&self.city),
            error_of(&self.latitude),
            error_of(&self.longitude),
            error_of(&self.provider),
            error_of(&self.fqdn),
        ];
        if let Some(error) = first_error(errors) {
            return Err(error);
        }
        Ok(Entry {
            city: value_of(self.city),
            latitude: value_of(self.latitude),
            longitude: value_of(self.longitude),
            provider: value_of(self.provider),
            fqdns: value_of(self.fqdn),
        })
    }
}

/// `Vec<Lenient<PopFqdn>>`: the FQDNs of the documented shape, into the country's buffers.
struct Fqdns<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for Fqdns<'_, 'de> {
    type Out = Range<usize>;

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "a sequence")
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<Range<usize>>, A::Error> {
        let country = self.0;
        let start = country.fqdns.len();
        while let Some(fqdn) = seq.next_element_seed(Lenient(FqdnShape(&mut *country)))? {
            // One of the wrong shape is left out without a word, as `Catalog::from_document`
            // leaves out an invalid one.
            if let Ok(fqdn) = fqdn {
                country.fqdns.push(fqdn);
            }
        }
        Ok(Ok(start..country.fqdns.len()))
    }
}

/// `PopFqdn`; its addresses go to the country's buffers. Why one is wrong is never reported.
struct FqdnShape<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for FqdnShape<'_, 'de> {
    type Out = Fqdn<'de>;

    fn wrong(&self, _: Unexpected<'_>) -> String {
        String::new()
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shaped<Fqdn<'de>>, A::Error> {
        let (mut name, mut ips) = (None, None);
        while let Some(field) = map.next_key_seed(Key(FQDN_FIELDS))? {
            match field {
                Some(0) => name = Some(map.next_value_seed(Lenient(OptionalText))?),
                Some(_) => ips = Some(map.next_value_seed(Lenient(Addresses(&mut *self.0)))?),
                None => map.next_value_seed(Drain)?,
            }
        }
        Ok(fqdn(name, ips, false))
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<Fqdn<'de>>, A::Error> {
        let mut len = 0;
        let name = element(&mut seq, &mut len, Lenient(OptionalText))?;
        let ips = element(&mut seq, &mut len, Lenient(Addresses(&mut *self.0)))?;
        let extra = extra_elements(&mut seq, &mut len)?;
        Ok(fqdn(name, ips, extra))
    }
}

fn fqdn<'de>(
    name: Option<Shaped<Option<Cow<'de, str>>>>,
    ips: Option<Shaped<Range<usize>>>,
    too_long: bool,
) -> Shaped<Fqdn<'de>> {
    if too_long || error_of(&name).is_some() || error_of(&ips).is_some() {
        return Err(String::new());
    }
    Ok(Fqdn {
        name: value_of(name),
        ips: value_of(ips),
    })
}

/// `OneOrMany`: a string, an array of strings or null; the addresses that parse go to the
/// country's buffers.
struct Addresses<'c, 'de>(&'c mut Country<'de>);

impl<'de> Expect<'de> for Addresses<'_, 'de> {
    type Out = Range<usize>;

    fn wrong(&self, _: Unexpected<'_>) -> String {
        String::new()
    }

    fn null(self) -> Shaped<Range<usize>> {
        let end = self.0.ips.len();
        Ok(end..end)
    }

    fn string(self, s: Cow<'de, str>) -> Shaped<Range<usize>> {
        let start = self.0.ips.len();
        self.0.ips.extend(address(&s));
        Ok(start..self.0.ips.len())
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shaped<Range<usize>>, A::Error> {
        let ips = &mut self.0.ips;
        let start = ips.len();
        let mut all_text = true;
        while let Some(text) = seq.next_element_seed(Lenient(Text))? {
            match text {
                Ok(text) => ips.extend(address(&text)),
                Err(_) => all_text = false,
            }
        }
        Ok(if all_text {
            Ok(start..ips.len())
        } else {
            Err(String::new())
        })
    }
}

/// A listed address; one that does not parse is dropped (the name may still resolve).
fn address(text: &str) -> Option<IpAddr> {
    match dotted_quad(text.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => text.trim().parse().ok(),
    }
}

/// An IPv4 address as the API writes it (four octets, no spaces), read in a few steps; `None`
/// for anything else, which the standard parser reads. It takes nothing the standard parser
/// would not take the same way: an octet of up to three digits, no leading zero, at most 255.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut rest = text;
    for (i, octet) in octets.iter_mut().enumerate() {
        let digits = rest
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let (number, after) = rest.split_at_checked(digits)?;
        let value = match number {
            [a] => u16::from(a - b'0'),
            [b'1'..=b'9', _] | [b'1'..=b'9', _, _] => number
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')),
            _ => return None,
        };
        *octet = u8::try_from(value).ok()?;
        rest = match (i, after) {
            (3, []) => after,
            (0..3, [b'.', more @ ..]) => more,
            _ => return None,
        };
    }
    Some(Ipv4Addr::from(octets))
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
