//! The state directory: what popsel remembers between runs.
//!
//! - `selection.json`: the current primary and secondary PoP per location and the evidence
//!   behind them (the hand-off to the router, and the anti-flap memory);
//! - `tunnels.json`: the tunnels popsel manages (its management marker) with a keyed
//!   fingerprint of each PSK, never the PSK itself;
//! - `fingerprint.key`: the random key of those fingerprints (mode 600);
//! - `audit.log`: one JSON line per write to the API;
//! - `catalog.json`: the last good PoP catalogue.
//!
//! Every file is written atomically (temporary file, fsync, rename), so a crash leaves the old
//! version or the new one, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The selection and its evidence: the hand-off to the router and the anti-flap memory.
pub const SELECTION_FILE: &str = "selection.json";

#[derive(Debug, thiserror::Error)]
#[error("state dir {path}: {detail}")]
pub struct StateError {
    pub path: PathBuf,
    pub detail: String,
}

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

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens (and creates, mode 700) the directory.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        std::fs::create_dir_all(path).map_err(|e| StateError {
            path: path.to_owned(),
            detail: format!("cannot create it: {e}"),
        })?;
        restrict(path, 0o700);
        Ok(StateDir {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, file: &str, detail: impl std::fmt::Display) -> StateError {
        StateError {
            path: self.path.join(file),
            detail: detail.to_string(),
        }
    }

    /// Writes `bytes` to `file` atomically, with `mode`.
    pub fn write_atomic(&self, file: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
        write_atomic(&self.path.join(file), bytes, mode).map_err(|e| self.error(file, e))
    }

    /// Reads a JSON file; `None` when it does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, file: &str) -> Result<Option<T>, StateError> {
        match std::fs::read(self.path.join(file)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                self.error(
                    file,
                    format!("unreadable ({e}); move it aside to start afresh"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(file, e)),
        }
    }

    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| self.error(file, e))?;
        bytes.push(b'\n');
        self.write_atomic(file, &bytes, 0o600)
    }

    pub fn managed_tunnels(&self) -> Result<ManagedTunnels, StateError> {
        Ok(self.read_json("tunnels.json")?.unwrap_or_default())
    }

    pub fn save_managed_tunnels(&self, t: &ManagedTunnels) -> Result<(), StateError> {
        self.write_json("tunnels.json", t)
    }

    /// Appends one line to the audit log.
    pub fn audit(&self, entry: &AuditEntry) -> Result<(), StateError> {
        let path = self.path.join("audit.log");
        let mut line = serde_json::to_vec(entry).map_err(|e| self.error("audit.log", e))?;
        line.push(b'\n');
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&path)
            .map_err(|e| self.error("audit.log", e))?;
        f.write_all(&line).map_err(|e| self.error("audit.log", e))
    }

    /// The fingerprint key, made on first use.
    pub fn fingerprint_key(&self) -> Result<Fingerprinter, StateError> {
        const FILE: &str = "fingerprint.key";
        match std::fs::read(self.path.join(FILE)) {
            Ok(key) if key.len() >= 32 => return Ok(Fingerprinter::new(&key)),
            Ok(_) => {
                return Err(self.error(
                    FILE,
                    "too short; delete it to make a new one (every PSK will be pushed once more)",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error(FILE, e)),
        }
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| self.error(FILE, "no system randomness"))?;
        self.write_atomic(FILE, &key, 0o600)?;
        Ok(Fingerprinter::new(&key))
    }
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

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    // A fresh, unpredictable name, created exclusively: never an existing file or a link
    // someone left there, so the content (a PSK, in the swanctl secrets) is only ever written
    // under `mode`.
    let tmp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    restrict(&tmp, mode);
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with `mode` unless it already holds exactly them.
/// Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes, mode)?;
    Ok(true)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) {}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn json_round_trips_atomically_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("s")).unwrap();
        assert_eq!(state.managed_tunnels().unwrap(), ManagedTunnels::default());
        let mut t = ManagedTunnels::default();
        t.tunnels.insert(
            "id1".into(),
            ManagedTunnel {
                id: "id1".into(),
                name: "n".into(),
                location: "l".into(),
                psk_fingerprint: "ab".into(),
            },
        );
        state.save_managed_tunnels(&t).unwrap();
        assert_eq!(state.managed_tunnels().unwrap(), t);
        let mode = std::fs::metadata(state.path().join("tunnels.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(state.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn an_unreadable_state_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("tunnels.json"), "{not json").unwrap();
        let e = state.managed_tunnels().unwrap_err().to_string();
        assert!(
            e.contains("tunnels.json") && e.contains("move it aside"),
            "{e}"
        );
    }

    #[test]
    fn fingerprints_are_keyed_stable_and_never_the_psk() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let psk = SecretString::from("correct horse battery".to_owned());
        let a = state.fingerprint_key().unwrap().fingerprint(&psk);
        let b = state.fingerprint_key().unwrap().fingerprint(&psk);
        assert_eq!(a, b, "the key persists");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("horse"));
        let other = StateDir::open(&dir.path().join("other")).unwrap();
        assert_ne!(
            other.fingerprint_key().unwrap().fingerprint(&psk),
            a,
            "keyed per state dir"
        );
        let changed = SecretString::from("correct horse battery!".to_owned());
        assert_ne!(state.fingerprint_key().unwrap().fingerprint(&changed), a);
    }

    #[test]
    fn write_if_changed_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.conf");
        assert!(write_if_changed(&p, b"x", 0o600).unwrap());
        assert!(!write_if_changed(&p, b"x", 0o600).unwrap());
        assert!(write_if_changed(&p, b"y", 0o600).unwrap());
    }

    #[test]
    fn audit_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        for action in ["create", "update"] {
            state
                .audit(&AuditEntry {
                    time: rfc3339(SystemTime::UNIX_EPOCH),
                    action: action.into(),
                    tunnel: "t".into(),
                    id: None,
                    fields: vec!["psk".into()],
                    result: "ok".into(),
                })
                .unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        let lines: Vec<AuditEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].action, "update");
        assert_eq!(lines[0].time, "1970-01-01T00:00:00Z");
    }
}
