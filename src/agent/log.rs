//! The agent's log of the pipeline's notices: one event per notice, its facts as fields.

use crate::pipeline::{Notice, Report};
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
            Notice::TunnelReconciled { action, done } => match action.psk_reason() {
                Some(reason) => tracing::info!(
                    ?action, ?done, psk_pushed_because = %reason.describe(),
                    "tunnel reconciled"
                ),
                None => tracing::info!(?action, ?done, "tunnel reconciled"),
            },
            Notice::NoIcmp(e) => tracing::warn!("{e}; ranking by distance"),
            Notice::StageFailed { stage, error } => {
                tracing::warn!(stage = stage.as_str(), "stage failed: {error}")
            }
            other if other.is_warning() => tracing::warn!("{other}"),
            other => tracing::info!("{other}"),
        }
    }
}
