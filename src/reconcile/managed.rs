//! What the reconcile stage remembers between runs: the tunnels popsel manages (its management
//! marker), a keyed fingerprint of the PSK it last pushed to each (never the PSK), and the audit
//! log's lines. Pure: the I/O of reading and writing them is `apply`'s.

use std::collections::BTreeMap;

use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::atmos::types::Tunnel;

/// `tunnels.json` in the state dir.
pub const MANAGED_FILE: &str = "tunnels.json";
/// The key of the PSK fingerprints (mode 600).
pub const FINGERPRINT_KEY_FILE: &str = "fingerprint.key";
/// One JSON line per write to the API.
pub const AUDIT_FILE: &str = "audit.log";

/// A tunnel popsel created or adopted, as it last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedTunnel {
    pub id: String,
    pub name: String,
    pub location: String,
    /// Keyed fingerprint (HMAC-SHA256, hex) of the PSK last pushed.
    pub psk_fingerprint: String,
}

/// `tunnels.json`: managed tunnels by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedTunnels {
    pub version: u32,
    pub tunnels: BTreeMap<String, ManagedTunnel>,
}

impl ManagedTunnels {
    /// The id of the managed tunnel named `name`.
    pub fn id_of(&self, name: &str) -> Option<&str> {
        self.tunnels
            .values()
            .find(|m| m.name == name)
            .map(|m| m.id.as_str())
    }

    /// Forgets the managed tunnels whose id is no longer on the API (deleted by someone, or an
    /// account reset), so that nothing keeps pointing at an id that is gone; the config's
    /// tunnels are then created anew. Returns what was forgotten.
    pub fn forget_gone(&mut self, actual: &[Tunnel]) -> Vec<ManagedTunnel> {
        let gone: Vec<String> = self
            .tunnels
            .keys()
            .filter(|id| !actual.iter().any(|t| &t.id == *id))
            .cloned()
            .collect();
        gone.iter()
            .filter_map(|id| self.tunnels.remove(id))
            .collect()
    }
}

/// One line of `audit.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339, UTC.
    pub time: String,
    /// create, update, delete, adopt.
    pub action: String,
    pub tunnel: String,
    pub id: Option<String>,
    /// Names of the fields written (`psk` when the PSK was, never its value).
    pub fields: Vec<String>,
    /// ok, or the error.
    pub result: String,
}

/// Keyed PSK fingerprints: tell whether a PSK changed without keeping it, and without letting
/// someone who reads the state dir test guesses offline without the key.
pub struct Fingerprinter(hmac::Key);

impl Fingerprinter {
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    pub fn fingerprint(&self, psk: &SecretString) -> String {
        let tag = hmac::sign(&self.0, psk.expose_secret().as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
#[path = "managed_tests.rs"]
mod tests;
