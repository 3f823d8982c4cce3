//! Hand-off stage: the selection handed to the router's IPsec stack, one of two ways.
//!
//! - Driving charon over VICI (`vici_socket`): [`sa_plan`] (pure) says what charon must do,
//!   [`charon`] does it over [`vici`] and reads back the SAs for the metrics.
//! - Files for charon (`swanctl_dir`, for routers where popsel must not talk to charon):
//!   [`swanctl`] (pure) renders a swanctl configuration per location; [`write_swanctl`] writes
//!   it atomically, and only when its content changes.
//! - Either way, [`hook`] runs the configured `on_change` program for each change.
//!
//! [`hand_off`] does it for a new selection and says, in a [`HandOff`], what may be persisted:
//! a location whose files could not be written or that charon could not be made to carry (its
//! hook is then not run), or whose hook failed, keeps its previous selection on disk, so that
//! the next cycle sees the change again and hands it off again.

pub mod charon;
pub mod hook;
pub mod sa_plan;
pub mod swanctl;
pub mod vici;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::location::Location;
use crate::select::{Change, LocationSelection, Selection};
use crate::state::write_if_changed;

use charon::SaStatus;
use hook::{HookError, run_on_change};
use vici::ViciError;

/// How long one VICI command may take (an initiate adds the time it waits).
const VICI_TIMEOUT: Duration = Duration::from_secs(10);
use swanctl::{render_swanctl, swanctl_paths};

/// Where the selection goes besides `selection.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    /// Where to write strongSwan swanctl files; none: no rendering.
    pub swanctl_dir: Option<PathBuf>,
    /// charon's VICI socket: popsel loads, starts and stops its connections itself.
    pub vici_socket: Option<PathBuf>,
    /// Program and arguments run when a selection changes; no shell is involved.
    pub on_change: Option<Vec<String>>,
    pub on_change_timeout: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            swanctl_dir: None,
            vici_socket: None,
            on_change: None,
            on_change_timeout: Duration::from_secs(30),
        }
    }
}

/// Writes a location's files when they differ from what is there; returns whether any did.
pub fn write_swanctl(
    dir: &Path,
    location: &Location,
    selection: &LocationSelection,
) -> std::io::Result<bool> {
    let files = render_swanctl(location, selection);
    let (conf, secrets) = swanctl_paths(dir, location);
    std::fs::create_dir_all(dir)?;
    // A write killed half-way leaves a temporary file holding the PSKs of that moment.
    crate::state::remove_stale_temporaries(dir, "popsel-");
    let a = write_if_changed(&secrets, files.secrets.as_bytes(), 0o600)?;
    let b = write_if_changed(&conf, files.connections.as_bytes(), 0o644)?;
    Ok(a || b)
}

/// What went wrong handing a selection off.
#[derive(Debug, thiserror::Error)]
pub enum HandOffFailure {
    #[error("swanctl files in {}: {error}", .dir.display())]
    Swanctl {
        dir: PathBuf,
        location: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("charon, for location {location}: {error}")]
    Charon { location: String, error: ViciError },
}

/// The result of the hand-off stage.
#[derive(Debug, Default)]
pub struct HandOff {
    /// The selection to persist: the new one, but for the locations whose files or hook failed,
    /// which keep their previous one.
    pub persisted: Selection,
    /// The changes that were handed off and stand.
    pub handed_off: Vec<Change>,
    pub failures: Vec<HandOffFailure>,
    /// With `vici_socket`: each tunnel's SA as charon holds it after the hand-off.
    pub ipsec: Option<Vec<SaStatus>>,
    /// With `vici_socket`: (location, address) whose PoP refused the location's tunnel.
    pub refused: Vec<(String, IpAddr)>,
}

/// Writes the swanctl files of `next` and runs `on_change` for `changes`. A location whose
/// files could not be written runs no hook (the router has nothing new to load) and, like a
/// location with a failed hook, keeps its `previous` selection, both roles (one role alone
/// could leave the two in one city after a swap), so that the next run sees its changes again,
/// rewrites its files and reruns the hooks, which must therefore be idempotent. Only what
/// reached the router counts as handed off.
pub async fn hand_off(
    settings: &EdgeSettings,
    locations: &[Location],
    previous: &Selection,
    next: &Selection,
    changes: &[Change],
) -> HandOff {
    let mut failures = Vec::new();
    // Locations whose files could not be written: no hook runs for them.
    let mut unwritten: Vec<&str> = Vec::new();
    if let Some(dir) = &settings.swanctl_dir {
        for loc in locations {
            if let Some(sel) = next.locations.get(&loc.name) {
                if let Err(error) = write_swanctl(dir, loc, sel) {
                    failures.push(HandOffFailure::Swanctl {
                        dir: dir.clone(),
                        location: loc.name.clone(),
                        error,
                    });
                    unwritten.push(&loc.name);
                }
            }
        }
    }
    let mut ipsec = None;
    let mut refused = Vec::new();
    if let Some(socket) = &settings.vici_socket {
        match charon::converge(socket, VICI_TIMEOUT, locations, next).await {
            Ok(converged) => {
                for (location, error) in converged.failures {
                    if let Some(loc) = locations.iter().find(|l| l.name == location) {
                        unwritten.push(&loc.name);
                    }
                    failures.push(HandOffFailure::Charon { location, error });
                }
                ipsec = Some(converged.sas);
                refused = converged.refused;
            }
            Err(error) => {
                // Only the locations of this host are charon's (see `charon::converge`).
                unwritten.extend(
                    locations
                        .iter()
                        .filter(|l| l.local)
                        .map(|l| l.name.as_str()),
                );
                failures.push(HandOffFailure::Charon {
                    location: "(every location of this host)".to_owned(),
                    error,
                });
                ipsec = Some(charon::unreachable(locations, previous));
            }
        }
    }
    // Locations that keep their previous selection: those not written or not carried by
    // charon, those with a failed hook.
    let mut failed = unwritten.clone();
    if let Some(cmd) = &settings.on_change {
        for change in changes {
            if unwritten.contains(&change.location.as_str()) {
                continue;
            }
            if let Err(e) = run_on_change(cmd, change, settings.on_change_timeout).await {
                failures.push(e.into());
                failed.push(&change.location);
            }
        }
    }
    let mut persisted = next.clone();
    for location in &failed {
        match previous.locations.get(*location) {
            Some(old) => persisted
                .locations
                .insert((*location).to_owned(), old.clone()),
            None => persisted.locations.remove(*location),
        };
    }
    let handed_off = changes
        .iter()
        .filter(|c| !failed.contains(&c.location.as_str()))
        .cloned()
        .collect();
    HandOff {
        persisted,
        handed_off,
        failures,
        ipsec,
        refused,
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
