//! Rules the API enforces on tunnels (`tunnels-and-pops.md`, "Create a Tunnel"): shared by the
//! emulator, which applies them, and the config loader, which checks them before any call.

use std::net::IpAddr;

/// "Authentication PSK. Value must be at least 8 characters."
pub const MIN_PSK_CHARS: usize = 8;

/// "Value must be a valid email or IP address."
pub fn is_valid_authentication_id(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_email(s)
}

/// A pragmatic address check (RFC 5321 shape, not every corner of RFC 5322): one `@`, a local
/// part of printable characters, a domain of at least two dot-separated LDH labels.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

pub fn is_valid_psk(psk: &str) -> bool {
    psk.chars().count() >= MIN_PSK_CHARS
}

/// The longest object id popsel puts in a URL.
pub const MAX_OBJECT_ID_CHARS: usize = 128;

/// Whether `id` can name an object in a URL path as it is. The documents show UUIDs
/// (`6ee0bd21-4f50-454a-9f75-82f6933d54b0`); the allow-list is RFC 3986's unreserved
/// characters (letters, digits, `-`, `_`, `.`, `~`), which also covers numbers, slugs, ULIDs
/// and base64url, and which no URL handling encodes, decodes, strips or normalises, except
/// a segment of only dots (`.`, `..`), which is refused too. Anything else (white space,
/// control characters, `/`, `?`, `#`, `%`, `\`, non-ASCII look-alikes) could make the
/// request address another path than the object's, so it is refused before any request.
pub fn is_valid_object_id(id: &str) -> bool {
    (1..=MAX_OBJECT_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        && !id.bytes().all(|b| b == b'.')
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
