//! The probe engine over the life of the process. Opened at start, and opened again at the
//! start of a probe round when it could not be (a device not up yet at boot, a capability or a
//! `ping_group_range` granted later) or when the device it sends by was replaced (a PPP or LTE
//! link that came back is a new device with a new index) or `[probe] interface` was changed
//! by a reload: a router left alone for a year must not stop measuring, and fall back to
//! ranking by distance, because its uplink once went away.

use std::sync::Arc;

use crate::location::Location;
use crate::probe::ProbeSettings;
use crate::probe::icmp::Prober;

use super::measure::probes_from_here;
use super::notice::{Notice, Report};

pub struct ProberSlot {
    /// Whether a location is measured from this host (and probing was not turned off).
    wanted: bool,
    /// Whether the engine may be opened anew here (not one given, as the demo's, whose
    /// sockets live in a namespace of its own).
    reopens: bool,
    prober: Option<Arc<Prober>>,
    /// Why the last try failed, said once until it changes.
    failure: Option<String>,
}

impl ProberSlot {
    /// The probe engine for `locations`, opened now when one is wanted ([`probes_from_here`]);
    /// when it cannot be, a notice says why.
    pub fn open(
        locations: &[Location],
        no_probe: bool,
        settings: &ProbeSettings,
        report: &dyn Report,
    ) -> ProberSlot {
        let mut slot = ProberSlot {
            wanted: probes_from_here(locations, no_probe),
            reopens: true,
            prober: None,
            failure: None,
        };
        if slot.wanted {
            slot.reopen(settings, report);
        }
        slot
    }

    /// No engine, none wanted: a pipeline that never probes.
    pub fn none() -> ProberSlot {
        ProberSlot::given(None)
    }

    /// The engine given, opened by the caller, never opened again (`None`: no probing).
    pub fn given(prober: Option<Prober>) -> ProberSlot {
        ProberSlot {
            wanted: prober.is_some(),
            reopens: false,
            prober: prober.map(Arc::new),
            failure: None,
        }
    }

    /// Whether the engine is open, when one is wanted (`None`: none is wanted).
    pub fn socket_up(&self) -> Option<bool> {
        self.wanted.then_some(self.prober.is_some())
    }

    /// The engine for a probe round with `settings`, opened anew when there is none or it no
    /// longer sends by the device asked for.
    pub fn current(
        &mut self,
        settings: &ProbeSettings,
        report: &dyn Report,
    ) -> Option<Arc<Prober>> {
        if !self.wanted || !self.reopens {
            return self.prober.clone();
        }
        let stale = self
            .prober
            .as_ref()
            .is_none_or(|p| p.device_changed(settings.interface.as_deref()));
        if stale {
            self.reopen(settings, report);
        }
        self.prober.clone()
    }

    /// Opens the engine anew. When that fails, the one there stays: sockets whose device is
    /// gone cannot send, so every PoP looks silent and the selection holds its choices ("no
    /// PoP answers from this host"), where no engine at all would rank by distance and could
    /// move the site's tunnels while its uplink is down.
    fn reopen(&mut self, settings: &ProbeSettings, report: &dyn Report) {
        match Prober::new(settings) {
            Ok(prober) => {
                // A new engine takes a new identifier and sequence: no late reply to the old
                // one is taken for its own.
                let replaced = self.prober.replace(Arc::new(prober)).is_some();
                if self.failure.take().is_some() || replaced {
                    report.notice(Notice::IcmpBack);
                }
            }
            Err(e) => {
                let text = e.to_string();
                if self.failure.as_deref() != Some(text.as_str()) {
                    self.failure = Some(text);
                    report.notice(Notice::NoIcmp(e));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "sockets_tests.rs"]
mod tests;
