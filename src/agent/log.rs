//! The agent's log of the pipeline's notices: one event per notice, its facts as fields, each
//! a plain value (a string, a number, a boolean), never a Rust `Debug` rendering of a struct:
//! a collector reading the JSON log (`--log-format json`) finds `location`, `tunnel`, `id`,
//! `action` and `result` as they are. No field carries a secret: PSKs and the token are not in
//! any notice.

use crate::pipeline::{Notice, Report};
use crate::reconcile::{Action, FieldChange, Written};
use crate::timestamp::rfc3339;

/// Notices as `tracing` events: warnings at WARN, news at INFO.
pub struct LogReport;

impl Report for LogReport {
    fn notice(&self, notice: Notice) {
        match &notice {
            Notice::Skipped(s) => tracing::warn!(
                country = %s.country, city = %s.city, reason = %s.reason,
                "catalogue entry skipped"
            ),
            Notice::CachedCatalog { fetched } => tracing::warn!(
                fetched = %rfc3339(*fetched),
                "the API is unreachable; using the cached catalogue"
            ),
            Notice::StateDamaged { damaged, .. } => tracing::warn!(
                file = %damaged.file.display(),
                moved_to = %damaged.moved_to.as_ref().map_or("(left in place)".into(), |p| p.display().to_string()),
                "{notice}"
            ),
            Notice::ManagedTunnelMissing(m) => tracing::warn!(
                tunnel = %m.name, id = %m.id, listings = m.missing_listings,
                "{notice}"
            ),
            Notice::ManagedTunnelGone(m) => tracing::warn!(
                tunnel = %m.name, id = %m.id,
                "{notice}"
            ),
            Notice::SelectionChanged(c) => tracing::info!(
                location = %c.location, role = %c.role,
                old = %c.old.as_ref().map_or("(none)".into(), |o| o.pop.to_string()),
                new = %c.new.as_ref().map_or("(none)".into(), |n| n.pop.to_string()),
                reason = %c.reason,
                "selection changed"
            ),
            Notice::TunnelReconciled { action, done } => tunnel_reconciled(action, done),
            Notice::NoIcmp(e) => tracing::warn!("{e}; ranking by distance"),
            Notice::StageFailed { stage, error } => {
                tracing::warn!(stage = stage.as_str(), "stage failed: {error}")
            }
            other if other.is_warning() => tracing::warn!("{other}"),
            other => tracing::info!("{other}"),
        }
    }
}

/// A write to the API: what was done to which tunnel of which location, its id, the fields
/// changed (names only), whether a PSK was sent and, for an update, why.
fn tunnel_reconciled(action: &Action, done: &Written) {
    let changed = match action {
        Action::Update { changes, .. } if !changes.is_empty() => Some(
            changes
                .iter()
                .map(|c: &FieldChange| c.field)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    let psk_reason = action.psk_reason();
    // A create sends the PSK with the tunnel (an adopted one gets it set too); an update only
    // when it says why.
    let psk_pushed = matches!(action, Action::Create { .. }) || psk_reason.is_some();
    tracing::info!(
        action = action.as_str(),
        location = action.location(),
        tunnel = action.tunnel(),
        id = done.id().or(action.id()),
        result = done.as_str(),
        changed = changed.as_deref(),
        psk_pushed,
        psk_pushed_because = psk_reason.map(|r| r.describe()).as_deref(),
        "tunnel reconciled"
    );
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
