//! What the pipeline tells the operator along the way, typed, worded once. The command line
//! prints warnings on stderr; the agent logs every notice with its fields.

use std::time::SystemTime;

use super::StageError;
use crate::catalog::Skipped;
use crate::probe::icmp::IcmpUnavailable;
use crate::progress::Progress;
use crate::reconcile::managed::FORGET_AFTER_LISTINGS;
use crate::reconcile::{Action, ManagedTunnel, Written};
use crate::resolve::dns::DnsSetupError;
use crate::schedule::Stage;
use crate::select::Change;
use crate::state::{Damaged, StateError};

/// What popsel does instead of what a damaged state file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// `selection.json`: the anti-flap memory starts afresh.
    SelectionAfresh,
    /// `tunnels.json`: the configured tunnels found on the API with both their name and
    /// authentication ID are managed again (this many), their PSKs pushed once more.
    /// Read-only (`popsel plan`), only for this plan.
    TunnelsRelearned { relearned: usize, saved: bool },
    /// `fingerprint.key`: a new key; the PSKs of this many managed tunnels pushed once more.
    /// Read-only (`popsel plan`), a key of the moment stands in and nothing is saved.
    KeyReplaced { tunnels: usize, saved: bool },
    /// `catalog.json`: no cached catalogue until the API answers again.
    NoCachedCatalog,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::SelectionAfresh => f.write_str(
                "the anti-flap memory starts afresh: each location's PoPs are chosen as on a first run",
            ),
            Recovery::TunnelsRelearned {
                relearned,
                saved: true,
            } => write!(
                f,
                "managed tunnels are re-learned from the API by name and authentication ID \
                 ({relearned} found) and their PSKs pushed once more"
            ),
            Recovery::TunnelsRelearned {
                relearned,
                saved: false,
            } => write!(
                f,
                "this plan re-learns the managed tunnels from the API by name and \
                 authentication ID ({relearned} found); apply pushes their PSKs once more"
            ),
            Recovery::KeyReplaced { tunnels, saved: true } => write!(
                f,
                "a new key is made; the PSKs of the {tunnels} managed tunnel(s) are pushed once more"
            ),
            Recovery::KeyReplaced { tunnels, saved: false } => write!(
                f,
                "a new key of the moment stands in; the PSKs of the {tunnels} managed tunnel(s) \
                 show as to be pushed once more"
            ),
            Recovery::NoCachedCatalog => {
                f.write_str("no cached catalogue to fall back on until the API answers")
            }
        }
    }
}

#[derive(Debug)]
pub enum Notice {
    /// A catalogue entry could not be used.
    Skipped(Skipped),
    /// No DNS: the catalogue's addresses are all there is.
    NoDns(DnsSetupError),
    /// No ICMP: ranking by distance.
    NoIcmp(IcmpUnavailable),
    /// ICMP sockets opened again after they could not be, or for a device replaced or
    /// changed: probing resumes.
    IcmpBack,
    /// ICMP works but no address answered.
    NoReply,
    /// The API is down: the catalogue cached at `fetched` stands in.
    CachedCatalog { fetched: SystemTime },
    /// The catalogue could not be cached.
    CacheNotWritten(StateError),
    /// A state file could not be used: set aside (or, read-only, left), and what replaces it.
    StateDamaged {
        damaged: Damaged,
        recovery: Recovery,
    },
    /// A managed tunnel is missing from the API's listing (`missing_listings` in a row); it
    /// is remembered until [`FORGET_AFTER_LISTINGS`].
    ManagedTunnelMissing(ManagedTunnel),
    /// A managed tunnel was missing from [`FORGET_AFTER_LISTINGS`] listings in a row and is
    /// forgotten.
    ManagedTunnelGone(ManagedTunnel),
    /// A location's choice changed and was handed off.
    SelectionChanged(Box<Change>),
    /// A stage run failed (it runs again on its interval).
    StageFailed { stage: Stage, error: StageError },
    /// A write to the API was carried out.
    TunnelReconciled { action: Box<Action>, done: Written },
}

impl Notice {
    /// Whether it is worth a warning (else it is news).
    pub fn is_warning(&self) -> bool {
        !matches!(
            self,
            Notice::SelectionChanged(_) | Notice::TunnelReconciled { .. }
        )
    }
}

fn choice_label(c: &Option<crate::select::Choice>) -> String {
    c.as_ref().map_or("(none)".into(), |c| c.pop.to_string())
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Skipped(s) => write!(
                f,
                "catalogue entry {}/{} skipped: {}",
                s.country, s.city, s.reason
            ),
            Notice::NoDns(e) => write!(f, "{e}; using the catalogue's addresses only"),
            Notice::NoIcmp(e) => write!(f, "{e}. Ranking by distance instead."),
            Notice::IcmpBack => f.write_str(
                "ICMP sockets opened again (they could not be, or their device was replaced or \
                 changed); ranking by latency",
            ),
            Notice::NoReply => f.write_str("no address answered ICMP; ranking by distance"),
            Notice::CachedCatalog { .. } => {
                f.write_str("the API is unreachable; using the cached catalogue")
            }
            Notice::CacheNotWritten(e) => write!(f, "{e}"),
            Notice::StateDamaged { damaged, recovery } => write!(f, "{damaged}; {recovery}"),
            Notice::ManagedTunnelMissing(m) => write!(
                f,
                "managed tunnel {:?} ({}) is missing from the API's tunnel list ({} listing(s) \
                 in a row); popsel remembers it until {FORGET_AFTER_LISTINGS} (a flaky API \
                 sends an empty or partial page now and then), and creates it anew meanwhile \
                 if it is in the config",
                m.name, m.id, m.missing_listings
            ),
            Notice::ManagedTunnelGone(m) => write!(
                f,
                "managed tunnel {:?} ({}) was missing from {FORGET_AFTER_LISTINGS} listings of \
                 the API in a row and is forgotten; a tunnel of the config is created anew",
                m.name, m.id
            ),
            Notice::SelectionChanged(c) => write!(
                f,
                "selection changed: {} {}: {} → {} ({})",
                c.location,
                c.role,
                choice_label(&c.old),
                choice_label(&c.new),
                c.reason
            ),
            Notice::StageFailed { stage, error } => {
                write!(f, "stage {} failed: {error}", stage.as_str())
            }
            Notice::TunnelReconciled { action, done } => {
                write!(f, "tunnel {:?} reconciled: {done}", action.tunnel())
            }
        }
    }
}

/// Where notices and progress go.
pub trait Report: Send + Sync {
    fn notice(&self, notice: Notice);

    /// The counters the measuring stages add to as they go (DNS, probing), when someone shows
    /// them; `None`: nobody watches (the stages count into counters of their own).
    fn progress(&self) -> Option<&Progress> {
        None
    }
}
