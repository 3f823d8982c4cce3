//! Damaged state, rebuilt. The state files the stages read are loaded here (the catalogue
//! cache in `fetch`); one that cannot be used never stops popsel: it is set aside as
//! `<name>.corrupt-<unix time>` (read-only, by `popsel plan`, left in place), said once in a
//! [`Notice::StateDamaged`], and what it held is rebuilt:
//!
//! - `selection.json`: the anti-flap memory starts afresh;
//! - `tunnels.json`: the configured tunnels found on the API with both their name and their
//!   authentication ID are managed again, their PSKs pushed once more (each push says why in
//!   the audit log);
//! - `fingerprint.key`: a new key, and every managed tunnel's PSK pushed once more;
//! - `catalog.json`: no cached catalogue until the API answers.

use super::{Generation, Notice, Pipeline, Recovery, Report, SELECTION_FILE, StageError};
use crate::atmos::Tunnel;
use crate::location::Role;
use crate::reconcile::apply::{load_managed, save_managed};
use crate::reconcile::managed::{FINGERPRINT_KEY_FILE, MANAGED_FILE};
use crate::reconcile::{Fingerprinter, ManagedTunnels};
use crate::select::Selection;
use crate::state::{Damaged, Loaded, SECRET_KEY_BYTES, StateDir, StateError};

/// The selection the state dir remembers; a fresh one when there is none or it is damaged.
pub(super) fn load_selection(state: &StateDir, report: &dyn Report) -> Selection {
    let mut selection = match state.load_json::<Selection>(SELECTION_FILE) {
        Loaded::Found(selection) => selection,
        Loaded::Absent => Selection::default(),
        Loaded::Damaged(problem) => {
            report.notice(Notice::StateDamaged {
                damaged: state.set_aside(SELECTION_FILE, problem),
                recovery: Recovery::SelectionAfresh,
            });
            Selection::default()
        }
    };
    bound_wins(&mut selection);
    selection
}

/// A challenger's consecutive wins, read from disk, are counted on by one each round: kept
/// below `u32::MAX` so that the count cannot overflow. popsel never writes more than
/// `switch_after_cycles`, so only a hand-edited or corrupted file is changed, and any count
/// this high already means "switch now".
fn bound_wins(selection: &mut Selection) {
    for location in selection.locations.values_mut() {
        for role in Role::ALL {
            let evidence = &mut location.role_mut(role).evidence;
            evidence.wins = evidence.wins.min(u32::MAX - 1);
        }
    }
}

impl Pipeline {
    /// The managed tunnels, for a plan made from `actual` (a complete listing of the API), and
    /// whether they were rebuilt: when `tunnels.json` is damaged, those of the config found in
    /// `actual` with both their name and authentication ID.
    pub(super) fn managed_tunnels(
        &self,
        generation: &Generation,
        actual: &[Tunnel],
    ) -> (ManagedTunnels, bool) {
        let state = &generation.state;
        match load_managed(state) {
            Loaded::Found(managed) => (managed, false),
            Loaded::Absent => (ManagedTunnels::default(), false),
            Loaded::Damaged(problem) => {
                let damaged = state.set_aside(MANAGED_FILE, problem);
                let mut managed = ManagedTunnels::default();
                let relearned = managed.relearn(&generation.config.locations, actual).len();
                // Saved at once (the writer), so that what was re-learned, and why each PSK is
                // pushed, outlives an apply that is not confirmed. Should this fail, the
                // reconcile run saves it again before any write, and fails if it cannot.
                let saved = !state.is_read_only();
                if saved {
                    let _ = save_managed(state, &managed);
                }
                self.report.notice(Notice::StateDamaged {
                    damaged,
                    recovery: Recovery::TunnelsRelearned { relearned, saved },
                });
                (managed, true)
            }
        }
    }

    /// The PSK fingerprinter of the state dir's key, made on first use. A damaged key (or a
    /// missing one while `managed` holds fingerprints made with it) is replaced, and every
    /// managed tunnel marked for a PSK push; the marks are saved before the new key, so that
    /// a crash in between still pushes them. Read-only, a key of the moment stands in.
    pub(super) fn fingerprints(
        &self,
        generation: &Generation,
        managed: &mut ManagedTunnels,
    ) -> Result<Fingerprinter, StageError> {
        let state = &generation.state;
        let fingerprinted = managed
            .tunnels
            .values()
            .any(|m| !m.psk_fingerprint.is_empty());
        let damaged = match state.load_secret_key(FINGERPRINT_KEY_FILE) {
            Loaded::Found(key) => return Ok(Fingerprinter::new(&key)),
            Loaded::Absent if !fingerprinted => {
                return Ok(Fingerprinter::new(
                    &state.make_secret_key(FINGERPRINT_KEY_FILE)?,
                ));
            }
            Loaded::Absent => Damaged {
                file: state.path().join(FINGERPRINT_KEY_FILE),
                problem: format!("missing, while {MANAGED_FILE} holds fingerprints made with it"),
                moved_to: None,
                left: None,
            },
            Loaded::Damaged(problem) => state.set_aside(FINGERPRINT_KEY_FILE, problem),
        };
        let tunnels = managed.key_replaced();
        let saved = !state.is_read_only();
        self.report.notice(Notice::StateDamaged {
            damaged,
            recovery: Recovery::KeyReplaced { tunnels, saved },
        });
        if !saved {
            return Ok(Fingerprinter::new(&key_of_the_moment(state)?));
        }
        save_managed(state, managed)?;
        Ok(Fingerprinter::new(
            &state.make_secret_key(FINGERPRINT_KEY_FILE)?,
        ))
    }
}

/// A random key kept nowhere, for a read-only plan that found the key damaged.
fn key_of_the_moment(state: &StateDir) -> Result<Vec<u8>, StateError> {
    let mut key = vec![0u8; SECRET_KEY_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).map_err(|_| {
        StateError {
            path: state.path().join(FINGERPRINT_KEY_FILE),
            detail: "no system randomness".into(),
        }
    })?;
    Ok(key)
}
