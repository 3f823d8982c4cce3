//! What the reconcile stage remembers between runs: the tunnels popsel manages (its management
//! marker), a keyed fingerprint of the PSK it last pushed to each (never the PSK), and the audit
//! log's lines. Pure: the I/O of reading and writing them is `apply`'s.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::atmos::types::Tunnel;
use crate::location::{Location, tunnels};

/// `tunnels.json` in the state dir.
pub const MANAGED_FILE: &str = "tunnels.json";
/// The key of the PSK fingerprints (mode 600).
pub const FINGERPRINT_KEY_FILE: &str = "fingerprint.key";
/// One JSON line per write to the API.
pub const AUDIT_FILE: &str = "audit.log";

/// A managed tunnel missing from this many consecutive listings of the API is forgotten.
/// One listing is never enough: a flaky API answers an empty or partial page now and then,
/// and forgetting a tunnel costs its PSK fingerprint (the PSK is pushed again) and its
/// management marker (`--prune` no longer deletes it).
pub const FORGET_AFTER_LISTINGS: u32 = 3;

/// Why popsel no longer knows which PSK it last pushed to a managed tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PskRecordLost {
    /// `tunnels.json` was damaged; the tunnel was re-learned by name and authentication ID.
    ManagedFileDamaged,
    /// `fingerprint.key` was damaged or missing, and a new key made: the fingerprints kept
    /// under the old one mean nothing any more.
    KeyReplaced,
    /// A PSK push was started and never confirmed (popsel stopped mid-write, or the API's
    /// answer was an error after which the write may still have happened): the API may hold
    /// the PSK of that push rather than the one last recorded.
    PushUnconfirmed,
}

/// A tunnel popsel created or adopted, as it last left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedTunnel {
    pub id: String,
    pub name: String,
    pub location: String,
    /// Keyed fingerprint (HMAC-SHA256, hex) of the PSK last pushed.
    pub psk_fingerprint: String,
    /// Set when the record of the PSK pushed was lost; cleared by the next push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psk_record_lost: Option<PskRecordLost>,
    /// How many consecutive listings of the API it was missing from (0: in the last one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing_listings: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What one listing of the API's tunnels changed in the managed tunnels.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListingSeen {
    /// Missing from this listing (and maybe the ones before), still remembered; each with
    /// its count of consecutive listings without it.
    pub missing: Vec<ManagedTunnel>,
    /// Missing from [`FORGET_AFTER_LISTINGS`] listings in a row: forgotten.
    pub forgotten: Vec<ManagedTunnel>,
}

/// `tunnels.json`: managed tunnels by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedTunnels {
    pub version: u32,
    pub tunnels: BTreeMap<String, ManagedTunnel>,
    /// When the reconcile stage next lists the whole account (unix seconds); until then it
    /// reads the managed tunnels by id. Absent: not planned yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_audit: Option<u64>,
}

impl ManagedTunnels {
    /// The first configured tunnel popsel does not manage (or that the last listing missed):
    /// to create or adopt, which only a listing of the account can tell.
    pub fn first_unmanaged<'a>(&self, locations: &'a [Location]) -> Option<&'a str> {
        tunnels(locations)
            .map(|(_, t)| t.name.as_str())
            .find(|name| self.id_of(name).is_none())
    }

    /// Whether the audit planned is due at `now`. One planned further away than an
    /// `audit_interval` (and its jitter) is due too: the clock went back, or the file was
    /// edited.
    pub fn audit_due(&self, now: SystemTime, audit_interval: Duration) -> bool {
        let Some(next) = self.next_audit else {
            return false;
        };
        let now = unix_seconds(now);
        let furthest = audit_interval
            .mul_f64(1.0 + crate::schedule::JITTER)
            .as_secs();
        next <= now || next > now.saturating_add(furthest)
    }

    /// Plans the next audit of the account at `at`.
    pub fn plan_audit(&mut self, at: SystemTime) {
        self.next_audit = Some(unix_seconds(at));
    }

    /// The id of the managed tunnel named `name`, if it was in the last listing.
    pub fn id_of(&self, name: &str) -> Option<&str> {
        self.tunnels
            .values()
            .find(|m| m.name == name && m.missing_listings == 0)
            .map(|m| m.id.as_str())
    }

    /// Counts one complete listing of the API: a managed tunnel in it is there again; one
    /// missing from it is remembered until [`FORGET_AFTER_LISTINGS`] listings in a row have
    /// missed it (someone deleted it, or the account was reset), then forgotten, so that
    /// nothing keeps pointing at an id that is gone. A configured tunnel is created anew
    /// whether or not it is forgotten: the plan looks for it by name.
    pub fn note_listing(&mut self, actual: &[Tunnel]) -> ListingSeen {
        let mut seen = ListingSeen::default();
        for m in self.tunnels.values_mut() {
            if actual.iter().any(|t| t.id == m.id) {
                m.missing_listings = 0;
            } else {
                m.missing_listings = m.missing_listings.saturating_add(1);
                seen.missing.push(m.clone());
            }
        }
        let (forgotten, missing) = seen
            .missing
            .into_iter()
            .partition(|m| m.missing_listings >= FORGET_AFTER_LISTINGS);
        seen.missing = missing;
        seen.forgotten = forgotten;
        // By the count, not by key: a hand-edited file may key an entry by another id.
        self.tunnels
            .retain(|_, m| m.missing_listings < FORGET_AFTER_LISTINGS);
        seen
    }

    /// After `tunnels.json` was lost: the configured tunnels found on the API with both
    /// their name and their authentication ID are popsel's again (the same test as a 409's
    /// adoption), their PSK to be pushed once more since which one was pushed is unknown.
    /// Returns the tunnels re-learned.
    pub fn relearn(&mut self, locations: &[Location], actual: &[Tunnel]) -> Vec<ManagedTunnel> {
        let mut learned = Vec::new();
        for (loc, want) in tunnels(locations) {
            let found = actual
                .iter()
                .find(|t| t.name == want.name && t.authentication_id == want.authentication_id);
            let Some(found) = found.filter(|t| !self.tunnels.contains_key(&t.id)) else {
                continue;
            };
            let m = ManagedTunnel {
                id: found.id.clone(),
                name: want.name.clone(),
                location: loc.name.clone(),
                psk_fingerprint: String::new(),
                psk_record_lost: Some(PskRecordLost::ManagedFileDamaged),
                missing_listings: 0,
            };
            self.tunnels.insert(m.id.clone(), m.clone());
            learned.push(m);
        }
        self.version = 1;
        learned
    }

    /// After the fingerprint key was replaced: no fingerprint kept means anything, so every
    /// PSK is pushed once more. Returns how many tunnels this concerns.
    pub fn key_replaced(&mut self) -> usize {
        let mut marked = 0;
        for m in self.tunnels.values_mut() {
            m.psk_fingerprint.clear();
            m.psk_record_lost.get_or_insert(PskRecordLost::KeyReplaced);
            marked += 1;
        }
        marked
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    /// Why, when it is not plain from the config: why a PSK was pushed, why a create that
    /// met a 409 wrote nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
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
