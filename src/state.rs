//! The state directory: what popsel remembers between runs. Generic file handling only; each
//! stage owns its files and their types:
//!
//! - `selection.json` (the pipeline's hand-off and the anti-flap memory, `select::Selection`);
//! - `tunnels.json`, `fingerprint.key`, `audit.log` (the reconcile stage's managed tunnels, the
//!   key of their PSK fingerprints, one JSON line per write to the API);
//! - `catalog.json` (the pipeline's last good catalogue).
//!
//! Every file is written atomically (temporary file, fsync, rename), so a crash leaves the old
//! version or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
#[error("state dir {path}: {detail}")]
pub struct StateError {
    pub path: PathBuf,
    pub detail: String,
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

    /// Appends one line (a JSON document) to `file`, creating it with mode 600.
    pub fn append_json_line<T: Serialize>(&self, file: &str, value: &T) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(value).map_err(|e| self.error(file, e))?;
        line.push(b'\n');
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(self.path.join(file))
            .map_err(|e| self.error(file, e))?;
        f.write_all(&line).map_err(|e| self.error(file, e))
    }

    /// A random 32-byte key kept in `file` (mode 600), made on first use.
    pub fn secret_key(&self, file: &str) -> Result<Vec<u8>, StateError> {
        match std::fs::read(self.path.join(file)) {
            Ok(key) if key.len() >= 32 => return Ok(key),
            Ok(_) => {
                return Err(self.error(
                    file,
                    "too short; delete it to make a new one (every PSK will be pushed once more)",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.error(file, e)),
        }
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| self.error(file, "no system randomness"))?;
        self.write_atomic(file, &key, 0o600)?;
        Ok(key.to_vec())
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
#[path = "state_tests.rs"]
mod tests;
