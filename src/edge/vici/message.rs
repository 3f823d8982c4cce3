//! VICI messages and packets, pure: the model, its encoding and a decoding that is safe on
//! hostile input (bounded frames and nesting; truncated or malformed bytes are an error naming
//! the offset and what was wrong, never a panic).
//!
//! The format is strongSwan's `src/libcharon/plugins/vici/README.md` ("Transport protocol",
//! "Packet layer", "Message format"), checked against its Python client
//! (`python/vici/protocol.py`) and charon's `vici_socket.c`:
//! - a frame is a 4-byte big-endian length, then that many bytes (at most 512 KiB:
//!   `VICI_MESSAGE_SIZE_MAX`; charon drops a longer frame it reads, and discards one it would
//!   send);
//! - a packet is a type byte; types 0, 3, 4 and 7 then carry a name (u8 length + bytes);
//!   types 0, 1 and 7 then carry a message, to the end of the frame;
//! - a message is a sequence of elements: SECTION_START 1 (name), SECTION_END 2, KEY_VALUE 3
//!   (name, u16 length + value), LIST_START 4 (name), LIST_ITEM 5 (u16 length + value),
//!   LIST_END 6. Lists hold values only and do not nest.
//!
//! Values are bytes (charon writes numbers as decimal strings). Values of the keys in
//! [`SECRET_KEYS`] (`load-shared`'s `data`, the PSK) never show in `Debug` and are zeroed when
//! their message is dropped; no error of this module ever quotes a value.

use std::fmt;

use secrecy::zeroize::Zeroize;

/// The largest frame body, in bytes: charon's `VICI_MESSAGE_SIZE_MAX` (`vici_socket.c`).
pub const FRAME_MAX: usize = 512 * 1024;
/// The deepest nesting of sections accepted. charon's deepest (`list-sa`) is 4; the bound
/// keeps a hostile message from costing a deep recursion.
pub const DEPTH_MAX: usize = 32;
/// Keys whose values are secrets: `load-shared`'s and `load-key`'s `data`, `load-token`'s `pin`.
pub const SECRET_KEYS: &[&str] = &["data", "pin"];

const NAME_MAX: usize = u8::MAX as usize;
const VALUE_MAX: usize = u16::MAX as usize;

const SECTION_START: u8 = 1;
const SECTION_END: u8 = 2;
const KEY_VALUE: u8 = 3;
const LIST_START: u8 = 4;
const LIST_ITEM: u8 = 5;
const LIST_END: u8 = 6;

/// One entry of a section.
#[derive(Clone, PartialEq, Eq)]
pub enum Element {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    Section(Message),
}

/// A section: its entries in order. Key names are text (the README calls them ASCII); a name
/// that is not UTF-8 is decoded lossily, so that one odd name cannot make a listing unreadable.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message {
    entries: Vec<(String, Element)>,
}

impl Message {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key = value`.
    pub fn kv(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.push(key, Element::Value(value.as_ref().to_vec()));
        self
    }

    /// Adds `key = value` when there is a value.
    pub fn kv_opt(self, key: &str, value: Option<impl AsRef<[u8]>>) -> Self {
        match value {
            Some(v) => self.kv(key, v),
            None => self,
        }
    }

    /// Adds the list `key = [items]`.
    pub fn list<I>(mut self, key: &str, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let items = items.into_iter().map(|i| i.as_ref().to_vec()).collect();
        self.push(key, Element::List(items));
        self
    }

    /// Adds the list `key = [items]` unless it would be empty (charon's default applies then).
    pub fn list_nonempty<I>(self, key: &str, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let items: Vec<Vec<u8>> = items.into_iter().map(|i| i.as_ref().to_vec()).collect();
        if items.is_empty() {
            self
        } else {
            self.list(key, items)
        }
    }

    /// Adds the section `key { … }`.
    pub fn section(mut self, key: &str, section: Message) -> Self {
        self.push(key, Element::Section(section));
        self
    }

    pub fn push(&mut self, key: &str, element: Element) {
        self.entries.push((key.to_owned(), element));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Element)> {
        self.entries.iter().map(|(k, e)| (k.as_str(), e))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Element> {
        self.iter().find(|(k, _)| *k == key).map(|(_, e)| e)
    }

    pub fn get_value(&self, key: &str) -> Option<&[u8]> {
        match self.get(key)? {
            Element::Value(v) => Some(v),
            _ => None,
        }
    }

    /// A value as text, lossily.
    pub fn get_text(&self, key: &str) -> Option<String> {
        self.get_value(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn get_list(&self, key: &str) -> Option<&[Vec<u8>]> {
        match self.get(key)? {
            Element::List(items) => Some(items),
            _ => None,
        }
    }

    /// A list's items as text, lossily; none: an empty list.
    pub fn get_texts(&self, key: &str) -> Vec<String> {
        self.get_list(key)
            .unwrap_or_default()
            .iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect()
    }

    pub fn get_section(&self, key: &str) -> Option<&Message> {
        match self.get(key)? {
            Element::Section(s) => Some(s),
            _ => None,
        }
    }

    /// The sections of this one, in order, with their names.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Message)> {
        self.iter().filter_map(|(k, e)| match e {
            Element::Section(s) => Some((k, s)),
            _ => None,
        })
    }

    /// The encoded length, after checking every limit that decoding enforces.
    fn encoded_len(&self, depth: usize) -> Result<usize, EncodeError> {
        let mut len = 0usize;
        for (key, element) in &self.entries {
            check_name(key)?;
            len = len.saturating_add(2 + key.len());
            match element {
                Element::Value(v) => len = len.saturating_add(2 + check_value(key, v)?),
                Element::List(items) => {
                    for item in items {
                        len = len.saturating_add(3 + check_value(key, item)?);
                    }
                    len = len.saturating_add(1);
                }
                Element::Section(s) => {
                    if depth >= DEPTH_MAX {
                        return Err(EncodeError::TooDeep { key: shown(key) });
                    }
                    len = len.saturating_add(s.encoded_len(depth + 1)?.saturating_add(1));
                }
            }
        }
        Ok(len)
    }

    /// Appends the elements; [`Message::encoded_len`] has checked the limits.
    fn write(&self, out: &mut Vec<u8>) {
        for (key, element) in &self.entries {
            let marker = match element {
                Element::Value(_) => KEY_VALUE,
                Element::List(_) => LIST_START,
                Element::Section(_) => SECTION_START,
            };
            write_name(out, marker, key);
            match element {
                Element::Value(v) => write_blob(out, v),
                Element::List(items) => {
                    for item in items {
                        out.push(LIST_ITEM);
                        write_blob(out, item);
                    }
                    out.push(LIST_END);
                }
                Element::Section(s) => {
                    s.write(out);
                    out.push(SECTION_END);
                }
            }
        }
    }

    /// The message's encoding, as a request or event carries it.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.encoded_len(0)?);
        self.write(&mut out);
        Ok(out)
    }

    /// A whole message: `bytes` to their end.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        decode_section(&mut Cursor { bytes, at: 0 }, 0, None)
    }
}

/// The PSK must not stay in freed memory longer than needed.
impl Drop for Message {
    fn drop(&mut self) {
        for (key, element) in &mut self.entries {
            if let (true, Element::Value(v)) = (is_secret(key), element) {
                v.zeroize();
            }
        }
    }
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// `{key: "value", data: <secret>, list: ["a"], section: {…}}`; values lossily as text.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Text<'a>(&'a [u8]);
        impl fmt::Debug for Text<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
            }
        }
        struct Secret;
        impl fmt::Debug for Secret {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<secret>")
            }
        }
        let mut map = f.debug_map();
        for (key, element) in &self.entries {
            match element {
                _ if is_secret(key) => map.entry(key, &Secret),
                Element::Value(v) => map.entry(key, &Text(v)),
                Element::List(items) => {
                    map.entry(key, &items.iter().map(|i| Text(i)).collect::<Vec<_>>())
                }
                Element::Section(s) => map.entry(key, s),
            };
        }
        map.finish()
    }
}

/// An element on its own does not know its key, so it never shows a value.
impl fmt::Debug for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Value(v) => write!(f, "Value(<{} bytes>)", v.len()),
            Element::List(items) => write!(f, "List(<{} items>)", items.len()),
            Element::Section(s) => f.debug_tuple("Section").field(s).finish(),
        }
    }
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.len() > NAME_MAX {
        return Err(EncodeError::NameTooLong {
            name: shown(name),
            len: name.len(),
        });
    }
    Ok(())
}

fn check_value(key: &str, value: &[u8]) -> Result<usize, EncodeError> {
    if value.len() > VALUE_MAX {
        return Err(EncodeError::ValueTooLong {
            key: shown(key),
            len: value.len(),
        });
    }
    Ok(value.len())
}

fn write_name(out: &mut Vec<u8>, marker: u8, name: &str) {
    out.push(marker);
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
}

fn write_blob(out: &mut Vec<u8>, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

/// A name from the wire as it may appear in an error: escaped, at most 64 characters.
pub fn shown(name: &str) -> String {
    let mut s: String = name.escape_debug().take(64).collect();
    if name.escape_debug().nth(64).is_some() {
        s.push('…');
    }
    s
}

/// A message that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VICI name \"{name}\" is {len} bytes long; at most 255 fit")]
    NameTooLong { name: String, len: usize },
    #[error("VICI value of \"{key}\" is {len} bytes long; at most 65535 fit")]
    ValueTooLong { key: String, len: usize },
    #[error("VICI section \"{key}\" is nested deeper than {DEPTH_MAX} sections")]
    TooDeep { key: String },
    #[error("VICI packet of {len} bytes is over charon's limit of {FRAME_MAX} bytes")]
    FrameTooLarge { len: usize },
}

/// Bytes that are not a VICI frame, packet or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("VICI frame of {len} bytes is over charon's limit of {FRAME_MAX} bytes")]
    FrameTooLarge { len: usize },
    #[error("VICI data truncated at byte {at}: {what}")]
    Truncated { at: usize, what: String },
    #[error("VICI data malformed at byte {at}: {what}")]
    Invalid { at: usize, what: String },
}

/// Reads through bytes, saying what was being read when they run out.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8], DecodeError> {
        let left = self.bytes.len().saturating_sub(self.at);
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(taken) if taken.len() == n => {
                self.at += n;
                Ok(taken)
            }
            _ => Err(DecodeError::Truncated {
                at: self.at,
                what: format!("{}: {n} bytes needed, {left} left", what()),
            }),
        }
    }

    fn byte(&mut self, what: impl FnOnce() -> String) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// A u8-length name.
    fn name(&mut self, what: &str) -> Result<String, DecodeError> {
        let len = self.byte(|| format!("the length of {what}"))?;
        let name = self.take(usize::from(len), || what.to_owned())?;
        Ok(String::from_utf8_lossy(name).into_owned())
    }

    /// A u16-length value.
    fn blob(&mut self, what: impl Fn() -> String) -> Result<Vec<u8>, DecodeError> {
        let len = self.take(2, || format!("the length of {}", what()))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        Ok(self.take(len, what)?.to_vec())
    }

    fn invalid(&self, at: usize, what: String) -> DecodeError {
        DecodeError::Invalid { at, what }
    }
}

/// The elements of a section up to its end (`name`: the section's; none: the root, which
/// ends with the bytes).
fn decode_section(
    r: &mut Cursor<'_>,
    depth: usize,
    name: Option<&str>,
) -> Result<Message, DecodeError> {
    let mut message = Message::new();
    loop {
        if r.is_empty() {
            return match name {
                None => Ok(message),
                Some(name) => Err(DecodeError::Truncated {
                    at: r.at,
                    what: format!("section \"{}\" is not closed", shown(name)),
                }),
            };
        }
        let at = r.at;
        match r.byte(String::new)? {
            SECTION_START => {
                let key = r.name("a section name")?;
                if depth >= DEPTH_MAX {
                    let what = format!("section \"{}\" nests deeper than {DEPTH_MAX}", shown(&key));
                    return Err(r.invalid(at, what));
                }
                let section = decode_section(r, depth + 1, Some(&key))?;
                message.push(&key, Element::Section(section));
            }
            SECTION_END if name.is_some() => return Ok(message),
            SECTION_END => {
                return Err(r.invalid(at, "end of a section that was never opened".into()));
            }
            KEY_VALUE => {
                let key = r.name("a key name")?;
                let value = r.blob(|| format!("the value of \"{}\"", shown(&key)))?;
                message.push(&key, Element::Value(value));
            }
            LIST_START => {
                let key = r.name("a list name")?;
                let items = decode_list(r, &key)?;
                message.push(&key, Element::List(items));
            }
            LIST_ITEM | LIST_END => {
                return Err(r.invalid(at, "a list element outside a list".into()));
            }
            other => {
                return Err(r.invalid(at, format!("{other} is not a VICI element type")));
            }
        }
    }
}

/// A list's items up to its LIST_END.
fn decode_list(r: &mut Cursor<'_>, key: &str) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut items = Vec::new();
    loop {
        let at = r.at;
        match r.byte(|| format!("the end of list \"{}\"", shown(key)))? {
            LIST_ITEM => items.push(r.blob(|| format!("an item of list \"{}\"", shown(key)))?),
            LIST_END => return Ok(items),
            other => {
                let what = format!("element type {other} inside list \"{}\"", shown(key));
                return Err(r.invalid(at, what));
            }
        }
    }
}

const CMD_REQUEST: u8 = 0;
const CMD_RESPONSE: u8 = 1;
const CMD_UNKNOWN: u8 = 2;
const EVENT_REGISTER: u8 = 3;
const EVENT_UNREGISTER: u8 = 4;
const EVENT_CONFIRM: u8 = 5;
const EVENT_UNKNOWN: u8 = 6;
const EVENT: u8 = 7;

/// A VICI packet: the content of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    CmdRequest {
        command: String,
        message: Message,
    },
    CmdResponse(Message),
    /// charon has no such command.
    CmdUnknown,
    EventRegister(String),
    EventUnregister(String),
    EventConfirm,
    /// charon has no such event.
    EventUnknown,
    Event {
        name: String,
        message: Message,
    },
}

impl Packet {
    /// The packet type's name in the README.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::CmdRequest { .. } => "CMD_REQUEST",
            Packet::CmdResponse(_) => "CMD_RESPONSE",
            Packet::CmdUnknown => "CMD_UNKNOWN",
            Packet::EventRegister(_) => "EVENT_REGISTER",
            Packet::EventUnregister(_) => "EVENT_UNREGISTER",
            Packet::EventConfirm => "EVENT_CONFIRM",
            Packet::EventUnknown => "EVENT_UNKNOWN",
            Packet::Event { .. } => "EVENT",
        }
    }

    fn parts(&self) -> (u8, Option<&str>, Option<&Message>) {
        match self {
            Packet::CmdRequest { command, message } => (CMD_REQUEST, Some(command), Some(message)),
            Packet::CmdResponse(message) => (CMD_RESPONSE, None, Some(message)),
            Packet::CmdUnknown => (CMD_UNKNOWN, None, None),
            Packet::EventRegister(name) => (EVENT_REGISTER, Some(name), None),
            Packet::EventUnregister(name) => (EVENT_UNREGISTER, Some(name), None),
            Packet::EventConfirm => (EVENT_CONFIRM, None, None),
            Packet::EventUnknown => (EVENT_UNKNOWN, None, None),
            Packet::Event { name, message } => (EVENT, Some(name), Some(message)),
        }
    }

    /// The whole frame: length header, then the packet.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let (kind, name, message) = self.parts();
        encode_frame(kind, name, message)
    }

    /// A packet from a frame's body (the bytes after the length header).
    pub fn decode(body: &[u8]) -> Result<Packet, DecodeError> {
        if body.len() > FRAME_MAX {
            return Err(DecodeError::FrameTooLarge { len: body.len() });
        }
        let mut r = Cursor { bytes: body, at: 0 };
        let kind = r.byte(|| "the packet type".into())?;
        let packet = match kind {
            CMD_REQUEST => Packet::CmdRequest {
                command: r.name("the command name")?,
                message: decode_section(&mut r, 0, None)?,
            },
            CMD_RESPONSE => Packet::CmdResponse(decode_section(&mut r, 0, None)?),
            CMD_UNKNOWN => Packet::CmdUnknown,
            EVENT_REGISTER => Packet::EventRegister(r.name("the event name")?),
            EVENT_UNREGISTER => Packet::EventUnregister(r.name("the event name")?),
            EVENT_CONFIRM => Packet::EventConfirm,
            EVENT_UNKNOWN => Packet::EventUnknown,
            EVENT => Packet::Event {
                name: r.name("the event name")?,
                message: decode_section(&mut r, 0, None)?,
            },
            other => return Err(r.invalid(0, format!("{other} is not a VICI packet type"))),
        };
        if !r.is_empty() {
            let what = format!(
                "{} trailing bytes after {}",
                body.len() - r.at,
                packet.kind()
            );
            return Err(r.invalid(r.at, what));
        }
        Ok(packet)
    }
}

/// The frame of a command request, without copying `message` into a [`Packet`].
pub fn encode_request(command: &str, message: &Message) -> Result<Vec<u8>, EncodeError> {
    encode_frame(CMD_REQUEST, Some(command), Some(message))
}

/// A whole frame: length header, then the packet. Its exact size is allocated up front, so
/// that no reallocation leaves a copy of a secret value behind.
fn encode_frame(
    kind: u8,
    name: Option<&str>,
    message: Option<&Message>,
) -> Result<Vec<u8>, EncodeError> {
    let name_len = match name {
        Some(n) => check_name(n).map(|()| 1 + n.len())?,
        None => 0,
    };
    let message_len = match message {
        Some(m) => m.encoded_len(0)?,
        None => 0,
    };
    let len = 1usize.saturating_add(name_len).saturating_add(message_len);
    let header = u32::try_from(len)
        .ok()
        .filter(|_| len <= FRAME_MAX)
        .ok_or(EncodeError::FrameTooLarge { len })?;
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&header.to_be_bytes());
    out.push(kind);
    if let Some(name) = name {
        out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(name.as_bytes());
    }
    if let Some(message) = message {
        message.write(&mut out);
    }
    Ok(out)
}

/// Frames out of a byte stream that arrives in pieces of any size: charon writes a frame's
/// length and its body in separate writes (`vici_socket.c`, `do_write`). A frame's length is
/// checked as soon as its header is in, so the buffer never holds more than one frame of at
/// most [`FRAME_MAX`] bytes and the last piece pushed.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Whether part of a frame is waiting for the rest.
    pub fn is_mid_frame(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next whole packet and its frame's body length; none until one is whole. After an
    /// error the stream is out of step for good.
    pub fn next_packet(&mut self) -> Result<Option<(Packet, usize)>, DecodeError> {
        let [a, b, c, d, ..] = self.buffer[..] else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
        if len > FRAME_MAX {
            return Err(DecodeError::FrameTooLarge { len });
        }
        let Some(body) = self.buffer.get(4..4 + len) else {
            return Ok(None);
        };
        let packet = Packet::decode(body)?;
        self.buffer.drain(..4 + len);
        Ok(Some((packet, len)))
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
