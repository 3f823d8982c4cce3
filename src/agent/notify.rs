//! The agent's side of systemd's notification protocol (sd_notify(3)), for a
//! `Type=notify-reload` unit with `WatchdogSec=` (deploy/systemd/popsel.service):
//!
//! - READY=1 once the agent is ready ([`super::Agent::ready`]: a catalogue, fetched or cached,
//!   and a probe round), so that `systemctl start` returns when the agent works;
//! - RELOADING=1 with MONOTONIC_USEC (which `notify-reload` requires, to tell this reload from
//!   an earlier one), then READY=1, around every SIGHUP once ready, invalid configs too:
//!   systemd waits for that READY=1;
//! - STOPPING=1 when shutting down;
//! - WATCHDOG=1, from the agent's loop, while no stage is overdue.
//!
//! Nothing is sent unless systemd gave a socket (`NOTIFY_SOCKET`). A message that cannot be
//! sent is logged once and never stops the agent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Where the service is in its life, as told to systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Starting,
    Ready,
    Stopping,
}

pub struct Systemd {
    /// `NOTIFY_SOCKET` was set.
    enabled: bool,
    /// What systemd was last told; held through a reload, so that READY=1 and RELOADING=1
    /// never interleave.
    told: Mutex<Told>,
    complained: AtomicBool,
}

impl Systemd {
    /// From the environment systemd gives the service.
    pub fn from_env() -> Systemd {
        Systemd {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
            told: Mutex::new(Told::Starting),
            complained: AtomicBool::new(false),
        }
    }

    /// How often to send WATCHDOG=1: half the watchdog period systemd set for this process
    /// (`WATCHDOG_USEC`, `WATCHDOG_PID`), as sd_watchdog_enabled(3) advises; `None` without
    /// a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled()
            .filter(|period| !period.is_zero())
            .map(|period| (period / 2).max(Duration::from_millis(1)))
    }

    fn told(&self) -> std::sync::MutexGuard<'_, Told> {
        self.told.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent is ready: READY=1, the first time only.
    pub fn ready(&self) {
        let mut told = self.told();
        if *told == Told::Starting {
            self.send(&[NotifyState::Ready, NotifyState::Status("running")]);
            *told = Told::Ready;
        }
    }

    /// Runs `reload` between RELOADING=1 and READY=1, once the agent is ready (before, the
    /// READY=1 of the start is yet to come). `status` says how it went, for
    /// `systemctl status`.
    pub fn reloading<T>(&self, reload: impl FnOnce() -> T, status: impl Fn(&T) -> &str) -> T {
        let told = self.told();
        if *told != Told::Ready {
            drop(told);
            return reload();
        }
        // After the signal, so later than the time systemd noted when it sent it.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(e) => self.complain(&e),
        }
        let outcome = reload();
        self.send(&[NotifyState::Ready, NotifyState::Status(status(&outcome))]);
        outcome
    }

    /// The agent is shutting down: STOPPING=1, once.
    pub fn stopping(&self) {
        let mut told = self.told();
        if *told != Told::Stopping {
            self.send(&[NotifyState::Stopping]);
            *told = Told::Stopping;
        }
    }

    /// WATCHDOG=1, unless stopping.
    pub fn alive(&self) {
        if *self.told() != Told::Stopping {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// STATUS=…, for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            self.complain(&e);
        }
    }

    fn complain(&self, e: &std::io::Error) {
        if !self.complained.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cannot send systemd notifications to NOTIFY_SOCKET ({e}); said once: systemd \
                 may take the service as not started, or hung"
            );
        } else {
            tracing::debug!("systemd notification not sent: {e}");
        }
    }
}
