//! Any JSON value read as `serde_json::Value` reads it, then checked against what it should be
//! ([`Expect`]): the kinds it may be are taken, any other is consumed and reported in the words
//! serde_json uses when a `Value` is read as a type. Nothing is built but what is taken.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};

/// A value of the documented shape, or why not.
pub(super) type Shaped<T> = Result<T, String>;

/// What one JSON value should be. [`Lenient`] hands it any value: the kinds it takes are the
/// methods it overrides; a value of any other kind is consumed and reported in serde_json's
/// words ([`Expect::wrong`]).
pub(super) trait Expect<'de>: Sized {
    type Out;

    /// Why a value of another kind does not do.
    fn wrong(&self, unexpected: Unexpected<'_>) -> String;

    fn null(self) -> Shaped<Self::Out> {
        Err(self.wrong(Unexpected::Unit))
    }

    fn number(self, n: Number) -> Shaped<Self::Out> {
        Err(self.wrong(n.unexpected()))
    }

    fn string(self, s: Cow<'de, str>) -> Shaped<Self::Out> {
        Err(self.wrong(Unexpected::Str(&s)))
    }

    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shaped<Self::Out>, A::Error> {
        Drain.visit_seq(seq)?;
        Ok(Err(self.wrong(Unexpected::Seq)))
    }

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Shaped<Self::Out>, A::Error> {
        Drain.visit_map(map)?;
        Ok(Err(self.wrong(Unexpected::Map)))
    }
}

/// A JSON number as serde_json reads it.
#[derive(Clone, Copy)]
pub(super) enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Number {
    fn unexpected(self) -> Unexpected<'static> {
        match self {
            Number::Unsigned(n) => Unexpected::Unsigned(n),
            Number::Signed(n) => Unexpected::Signed(n),
            Number::Float(n) => Unexpected::Float(n),
        }
    }

    pub(super) fn as_f64(self) -> f64 {
        match self {
            Number::Unsigned(n) => n as f64,
            Number::Signed(n) => n as f64,
            Number::Float(n) => n,
        }
    }
}

/// The message serde_json gives for a value of the wrong kind.
pub(super) fn invalid_type(unexpected: Unexpected<'_>, expected: &str) -> String {
    <serde_json::Error as de::Error>::invalid_type(unexpected, &expected).to_string()
}

/// The message serde_json gives for a struct given as an array with too many elements.
pub(super) fn too_long(len: usize) -> String {
    <serde_json::Error as de::Error>::invalid_length(len, &"fewer elements in array").to_string()
}

/// Any JSON value, handed to `E`.
pub(super) struct Lenient<E>(pub(super) E);

impl<'de, E: Expect<'de>> DeserializeSeed<'de> for Lenient<E> {
    type Value = Shaped<E::Out>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, E: Expect<'de>> Visitor<'de> for Lenient<E> {
    type Value = Shaped<E::Out>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<Er: de::Error>(self) -> Result<Self::Value, Er> {
        Ok(self.0.null())
    }

    fn visit_bool<Er: de::Error>(self, v: bool) -> Result<Self::Value, Er> {
        Ok(Err(self.0.wrong(Unexpected::Bool(v))))
    }

    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Self::Value, Er> {
        Ok(self.0.number(Number::Unsigned(v)))
    }

    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Self::Value, Er> {
        Ok(self.0.number(Number::Signed(v)))
    }

    fn visit_f64<Er: de::Error>(self, v: f64) -> Result<Self::Value, Er> {
        Ok(self.0.number(Number::Float(v)))
    }

    fn visit_borrowed_str<Er: de::Error>(self, v: &'de str) -> Result<Self::Value, Er> {
        Ok(self.0.string(Cow::Borrowed(v)))
    }

    fn visit_str<Er: de::Error>(self, v: &str) -> Result<Self::Value, Er> {
        Ok(self.0.string(Cow::Owned(v.to_owned())))
    }

    fn visit_string<Er: de::Error>(self, v: String) -> Result<Self::Value, Er> {
        Ok(self.0.string(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.map(map)
    }
}

/// Any JSON value, consumed as a `Value` would read it: unlike [`IgnoredAny`], nesting counts
/// toward the recursion limit and numbers must be in range.
pub(super) struct Drain;

impl<'de> DeserializeSeed<'de> for Drain {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Drain {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Drain)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Drain)?.is_some() {
            map.next_value_seed(Drain)?;
        }
        Ok(())
    }
}

/// A key of a struct: the index of the field it names in `.0`, `None` for any other.
pub(super) struct Key(pub(super) &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|name| *name == v))
    }
}

/// The fields of a struct in the order a `Value`'s map holds them: each where its key first
/// came. The first of them that is wrong is the one serde_json reports.
pub(super) struct Order<const N: usize> {
    fields: [usize; N],
    len: usize,
}

impl<const N: usize> Order<N> {
    pub(super) fn new() -> Self {
        Order {
            fields: [0; N],
            len: 0,
        }
    }

    pub(super) fn note(&mut self, field: usize) {
        if self
            .fields
            .get(..self.len)
            .is_some_and(|f| f.contains(&field))
        {
            return;
        }
        if let Some(slot) = self.fields.get_mut(self.len) {
            *slot = field;
            self.len += 1;
        }
    }

    /// The first error, in this order, of `errors` (one per field).
    pub(super) fn first_error(&self, errors: [Option<&String>; N]) -> Option<String> {
        self.fields
            .get(..self.len)
            .unwrap_or_default()
            .iter()
            .find_map(|&f| errors.get(f).copied().flatten().cloned())
    }
}

/// The error of a field that was given and is wrong.
pub(super) fn error_of<T>(field: &Option<Shaped<T>>) -> Option<&String> {
    field.as_ref().and_then(|v| v.as_ref().err())
}

/// The value of a field, its default when not given (only called once no field is wrong).
pub(super) fn value_of<T: Default>(field: Option<Shaped<T>>) -> T {
    field.and_then(Result::ok).unwrap_or_default()
}

/// The next element of a struct given as an array, counting it in `len`.
pub(super) fn element<'de, A, S>(
    seq: &mut A,
    len: &mut usize,
    seed: S,
) -> Result<Option<S::Value>, A::Error>
where
    A: SeqAccess<'de>,
    S: DeserializeSeed<'de>,
{
    let element = seq.next_element_seed(seed)?;
    *len += usize::from(element.is_some());
    Ok(element)
}

/// The elements after the fields of a struct given as an array: consumed, counted in `len`;
/// `true` when there was any (which makes the array too long).
pub(super) fn extra_elements<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    len: &mut usize,
) -> Result<bool, A::Error> {
    let fields = *len;
    while seq.next_element_seed(Drain)?.is_some() {
        *len += 1;
    }
    Ok(*len > fields)
}

/// `String`.
pub(super) struct Text;

impl<'de> Expect<'de> for Text {
    type Out = Cow<'de, str>;

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "a string")
    }

    fn string(self, s: Cow<'de, str>) -> Shaped<Self::Out> {
        Ok(s)
    }
}

/// `Option<String>`.
pub(super) struct OptionalText;

impl<'de> Expect<'de> for OptionalText {
    type Out = Option<Cow<'de, str>>;

    fn wrong(&self, unexpected: Unexpected<'_>) -> String {
        invalid_type(unexpected, "a string")
    }

    fn null(self) -> Shaped<Self::Out> {
        Ok(None)
    }

    fn string(self, s: Cow<'de, str>) -> Shaped<Self::Out> {
        Ok(Some(s))
    }
}

#[cfg(test)]
#[path = "lenient_tests.rs"]
mod tests;
