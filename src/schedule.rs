//! When the agent runs each stage: the stages it schedules (the `stage` label of the stage
//! metrics) and their intervals. Which stages run together, and in which order, is the
//! pipeline's (`pipeline::JOBS`). Pure: randomness is passed in.

use std::time::Duration;

/// The agent's units of work, each run on its own interval. `Select` carries rank → select →
/// hand-off; the others are one stage each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Catalog,
    Probe,
    Select,
    Reconcile,
    Status,
}

impl Stage {
    /// In the order of one full cycle.
    pub const ALL: [Stage; 5] = [
        Self::Catalog,
        Self::Probe,
        Self::Select,
        Self::Reconcile,
        Self::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Catalog => "catalog",
            Stage::Probe => "probe",
            Stage::Select => "select",
            Stage::Reconcile => "reconcile",
            Stage::Status => "status",
        }
    }
}

/// How often each stage of the agent runs (`[agent]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub catalog_interval: Duration,
    pub probe_interval: Duration,
    pub reconcile_interval: Duration,
    pub status_interval: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            catalog_interval: Duration::from_secs(3600),
            probe_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            status_interval: Duration::from_secs(60),
        }
    }
}

impl Schedule {
    /// The interval of the job that starts with `stage` (`pipeline::JOBS`).
    pub fn interval(&self, stage: Stage) -> Duration {
        match stage {
            Stage::Catalog => self.catalog_interval,
            Stage::Probe | Stage::Select => self.probe_interval,
            Stage::Reconcile => self.reconcile_interval,
            Stage::Status => self.status_interval,
        }
    }

    /// The wait before the first run of the job that starts with `stage`, `jitter` in
    /// `[0, 1)`. Up to a tenth of the interval (at most 30 s) so that a fleet spreads out; the
    /// catalogue has just been fetched at start-up, so its loop waits a whole interval.
    pub fn first_delay(&self, stage: Stage, jitter: f64) -> Duration {
        let every = self.interval(stage);
        if stage == Stage::Catalog {
            return every;
        }
        every
            .mul_f64(0.1)
            .min(Duration::from_secs(30))
            .mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
