//! Where the catalogue comes from: the API, the state dir's cache of the last good one (the
//! agent, when the API is down), or a file (`popsel rank --catalog`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::Catalog;
use crate::state::{Loaded, StateDir, StateError};
use crate::timestamp::unix_seconds_f64;

/// The last good catalogue, in the state dir.
pub const CATALOG_FILE: &str = "catalog.json";

/// `catalog.json`: the last good catalogue, the API's answer as it came (checked JSON, since
/// it was read into the catalogue), not a document parsed and written again.
#[derive(Serialize, Deserialize)]
struct CachedCatalog<D> {
    fetched_unix: f64,
    document: D,
}

/// The catalogue in use and when it was fetched from the API.
#[derive(Debug, Clone)]
pub struct CatalogInUse {
    pub catalog: Catalog,
    pub fetched: SystemTime,
}

/// Caches `document`, the catalogue as the API sent it.
pub(super) fn write_cache(
    state: &StateDir,
    document: &RawValue,
    fetched: SystemTime,
) -> Result<(), StateError> {
    let cached = CachedCatalog {
        fetched_unix: unix_seconds_f64(fetched),
        document,
    };
    state.write_json(CATALOG_FILE, &cached)
}

/// The cached catalogue.
pub(super) fn read_cache(state: &StateDir, now: SystemTime) -> Loaded<CatalogInUse> {
    match state.load_json::<CachedCatalog<Box<RawValue>>>(CATALOG_FILE) {
        Loaded::Found(cached) => match Catalog::from_json(cached.document.get()) {
            Ok(catalog) => Loaded::Found(CatalogInUse {
                catalog,
                fetched: fetched_at(cached.fetched_unix, now),
            }),
            Err(e) => Loaded::Damaged(format!("not what popsel writes: {e}")),
        },
        Loaded::Absent => Loaded::Absent,
        Loaded::Damaged(problem) => Loaded::Damaged(problem),
    }
}

/// When the cached catalogue was fetched, from its seconds since the epoch. A time that is
/// no time (negative, beyond what `SystemTime` holds) or still to come (a clock set back, a
/// hand edit) is unknown and taken as the epoch: as stale as can be, so that the staleness
/// alert fires rather than never.
fn fetched_at(unix: f64, now: SystemTime) -> SystemTime {
    Duration::try_from_secs_f64(unix)
        .ok()
        .and_then(|since| SystemTime::UNIX_EPOCH.checked_add(since))
        .filter(|fetched| *fetched <= now)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A catalogue file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    #[error("catalogue file {}: {error}", .path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "catalogue file {}: not a PoP catalogue ({error}); expected {{\"ipSecLocations\": [...]}} as GET /api/v1/pops/ipsec returns",
        .path.display()
    )]
    NotACatalog {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// A catalogue file, as `GET /api/v1/pops/ipsec` returns it.
pub fn catalog_file(path: &Path) -> Result<Catalog, CatalogFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| CatalogFileError::Unreadable {
        path: path.to_owned(),
        error,
    })?;
    Catalog::from_json(&text).map_err(|error| CatalogFileError::NotACatalog {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
