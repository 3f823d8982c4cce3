//! The documented shape, read by hand: what `Catalog::from_json` tries before the lenient
//! reader ([`super::read`]).
//!
//! The API sends its catalogue in exactly the shape its reference documents: every object with
//! each of its fields once and no other, every value a string or a list of them. Read that
//! way, the text needs one scan for string ends and nothing else; through serde and the
//! lenient checks, which must be ready for any value anywhere, it took two thirds of the
//! parse. Anything else (an escape, a control character, a number, null, a field missing,
//! unknown or given twice, a struct as an array, trailing text) is not read here at all: the
//! reader says so, and the caller reads the text again the lenient way, whose result for a
//! text this reader takes is the same (the catalogue's tests hold the two to it).

use std::borrow::Cow;

use super::{Coordinate, Country, Entry, Fqdn, address};

/// Reads `text` if it has exactly the documented shape, calling `each` as [`super::read`]
/// does. `false`: it does not, and whatever `each` was given must be thrown away.
pub(in crate::catalog) fn read<'de, F>(text: &'de str, mut each: F) -> bool
where
    F: FnMut(usize, Result<&str, &str>, &Country<'de>),
{
    let mut scanner = Scanner { text, at: 0 };
    let mut country = Country::default();
    let mut index = 0;
    let read = scanner.document(|s| {
        let code = s.country(&mut country)?;
        each(index, Ok(code), &country);
        index += 1;
        Some(())
    });
    read.is_some() && scanner.end()
}

const COUNTRY_FIELDS: [&str; 2] = ["country", "locations"];
const ENTRY_FIELDS: [&str; 5] = ["city", "latitude", "longitude", "provider", "fqdn"];
const FQDN_FIELDS: [&str; 2] = ["name", "ip"];

/// A position in the text. Every method reads one item, or returns `None` where the text is
/// not what the documented shape has there.
struct Scanner<'de> {
    text: &'de str,
    at: usize,
}

impl<'de> Scanner<'de> {
    /// `{"ipSecLocations": [country, ...]}`, each country read by `country`.
    fn document(&mut self, country: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.byte(b'{')?;
        // The field's two spellings, as `PopDocument` takes them.
        if !matches!(self.string()?, "ipSecLocations" | "IpSecLocations") {
            return None;
        }
        self.byte(b':')?;
        self.array(country)?;
        self.byte(b'}')
    }

    /// `{"country": code, "locations": [entry, ...]}`: the code; the entries go to `country`.
    fn country(&mut self, country: &mut Country<'de>) -> Option<&'de str> {
        country.clear();
        let mut code = None;
        self.object(&COUNTRY_FIELDS, |s, field| {
            if field == 0 {
                code = Some(s.string()?);
                return Some(());
            }
            s.array(|s| {
                let entry = s.entry(country)?;
                country.entries.push(Ok(entry));
                Some(())
            })
        })?;
        code
    }

    /// A location entry; its FQDNs and their addresses go to `country`'s lists.
    fn entry(&mut self, country: &mut Country<'de>) -> Option<Entry<'de>> {
        let (mut city, mut latitude, mut longitude, mut provider) = (None, None, None, None);
        let start = country.fqdns.len();
        self.object(&ENTRY_FIELDS, |s, field| {
            let text = match field {
                4 => return s.array(|s| s.fqdn(country)),
                _ => Cow::Borrowed(s.string()?),
            };
            match field {
                0 => city = Some(text),
                1 => latitude = Some(Coordinate::Text(text)),
                2 => longitude = Some(Coordinate::Text(text)),
                _ => provider = Some(text),
            }
            Some(())
        })?;
        Some(Entry {
            city,
            latitude,
            longitude,
            provider,
            fqdns: start..country.fqdns.len(),
        })
    }

    /// `{"name": name, "ip": [address, ...]}`, into `country`'s lists; an address that does
    /// not parse is dropped, as the lenient reader drops it.
    fn fqdn(&mut self, country: &mut Country<'de>) -> Option<()> {
        let mut name = None;
        let start = country.ips.len();
        self.object(&FQDN_FIELDS, |s, field| {
            if field == 0 {
                name = Some(Cow::Borrowed(s.string()?));
                return Some(());
            }
            s.array(|s| {
                country.ips.extend(address(s.string()?));
                Some(())
            })
        })?;
        country.fqdns.push(Fqdn {
            name,
            ips: start..country.ips.len(),
        });
        Some(())
    }

    /// Only whitespace left.
    fn end(&mut self) -> bool {
        self.whitespace();
        self.at == self.text.len()
    }

    fn whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// `byte`, after whitespace (the API's text has none: looked for only when `byte` is not
    /// there).
    fn byte(&mut self, byte: u8) -> Option<()> {
        let bytes = self.text.as_bytes();
        if bytes.get(self.at) != Some(&byte) {
            self.whitespace();
            if bytes.get(self.at) != Some(&byte) {
                return None;
            }
        }
        self.at += 1;
        Some(())
    }

    /// A string without escapes or control characters, borrowed from the text.
    fn string(&mut self) -> Option<&'de str> {
        self.byte(b'"')?;
        let start = self.at;
        let rest = self.text.as_bytes().get(start..)?;
        let len = string_end(rest)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// `[item, ...]`, possibly empty.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.byte(b'[')?;
        if self.byte(b']').is_some() {
            return Some(());
        }
        loop {
            item(self)?;
            if self.byte(b',').is_none() {
                return self.byte(b']');
            }
        }
    }

    /// `{field: value, ...}` with each of `fields` once, in any order, and no other; `value`
    /// reads the value of the field at that index.
    fn object<const N: usize>(
        &mut self,
        fields: &[&str; N],
        mut value: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.byte(b'{')?;
        let mut seen = [false; N];
        for read in 1..=N {
            let field = self.key(fields, &seen)?;
            seen[field] = true;
            self.byte(b':')?;
            value(self, field)?;
            if read < N {
                self.byte(b',')?;
            }
        }
        self.byte(b'}')
    }

    /// An object's key: which of `fields` not `seen` yet it is. Compared in place, in the
    /// documented order (the API's): a field name has no quote, backslash or control
    /// character, so a key that is one of them followed by a quote is exactly that name.
    fn key<const N: usize>(&mut self, fields: &[&str; N], seen: &[bool; N]) -> Option<usize> {
        self.byte(b'"')?;
        let rest = self.text.as_bytes().get(self.at..)?;
        let field = (0..N).find(|&i| {
            let name = fields[i].as_bytes();
            !seen[i] && rest.starts_with(name) && rest.get(name.len()) == Some(&b'"')
        })?;
        self.at += fields[field].len() + 1;
        Some(field)
    }
}

/// Where in `bytes` the first quote, backslash or control character is: the end of a string
/// without escapes, or what makes this reader leave the text to the lenient one. Eight bytes
/// at a time (most of the text is strings): each test below flags the bytes it finds, and a
/// byte's borrow can only flag the bytes after it, so the lowest flag is the first byte found.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    let found = tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + found)
}

#[cfg(test)]
#[path = "documented_tests.rs"]
mod tests;
