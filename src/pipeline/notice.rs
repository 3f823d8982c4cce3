//! What the pipeline tells the operator along the way, typed, worded once. The command line
//! prints warnings on stderr; the agent logs every notice with its fields.

use std::time::SystemTime;

use super::StageError;
use crate::catalog::Skipped;
use crate::probe::icmp::IcmpUnavailable;
use crate::reconcile::{Action, ManagedTunnel, Written};
use crate::resolve::dns::DnsSetupError;
use crate::schedule::Stage;
use crate::select::Change;
use crate::state::StateError;

#[derive(Debug)]
pub enum Notice {
    /// A catalogue entry could not be used.
    Skipped(Skipped),
    /// No DNS: the catalogue's addresses are all there is.
    NoDns(DnsSetupError),
    /// No ICMP: ranking by distance.
    NoIcmp(IcmpUnavailable),
    /// ICMP works but no address answered.
    NoReply,
    /// The API is down: the catalogue cached at `fetched` stands in.
    CachedCatalog { fetched: SystemTime },
    /// The catalogue could not be cached.
    CacheNotWritten(StateError),
    /// A managed tunnel is gone from the API.
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
            Notice::NoReply => f.write_str("no address answered ICMP; ranking by distance"),
            Notice::CachedCatalog { .. } => {
                f.write_str("the API is unreachable; using the cached catalogue")
            }
            Notice::CacheNotWritten(e) => write!(f, "{e}"),
            Notice::ManagedTunnelGone(m) => write!(
                f,
                "managed tunnel {:?} ({}) is gone from the API; it will be created anew",
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
                write!(f, "tunnel {:?} reconciled: {done:?}", action.tunnel())
            }
        }
    }
}

/// Where notices and probing progress go.
pub trait Report: Send + Sync {
    fn notice(&self, notice: Notice);

    /// `done` of `total` addresses probed.
    fn progress(&self, _done: usize, _total: usize) {}
}
