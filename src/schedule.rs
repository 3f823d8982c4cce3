//! When the agent runs each stage: the stages it schedules (the `stage` label of the stage
//! metrics) and their intervals. Which stages run together, and in which order, is the
//! pipeline's (`pipeline::JOBS`). Pure: randomness is passed in.

use std::time::{Duration, SystemTime};

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
    /// How often the reconcile stage lists the whole account (orphans, conflicts, tunnels
    /// changed behind popsel's back), where its other runs read only the site's own tunnels.
    pub audit_interval: Duration,
}

impl Default for Schedule {
    /// At these intervals one agent with two tunnels sends about 93 requests an hour (status
    /// 60, reconcile 24, catalogue 1, audit about 8 in an account of 10,000 sites): a fleet of
    /// 10,000 sites, some 260 a second (README, "Request budget").
    fn default() -> Self {
        Self {
            catalog_interval: Duration::from_secs(3600),
            probe_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            status_interval: Duration::from_secs(120),
            audit_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// Each run of a job starts within this share of its interval, either way, of where it would
/// fall: a fleet started in the same second (an upgrade, a power cut) drifts apart instead of
/// calling the API in lockstep for ever.
pub const JITTER: f64 = 0.1;

/// A job whose API calls keep failing waits at most this many of its intervals between runs.
pub const BACKOFF_CAP: u32 = 10;

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
    /// `[0, 1)`. Probing (no API call) and a reconcile with tunnels to create start within a
    /// tenth of their interval (at most 30 s); status polls and a reconcile with nothing
    /// pending start anywhere in their first interval, so that a fleet restarted at once (an
    /// upgrade, a power cut) does not poll the API together. The catalogue has just been
    /// fetched (or read from the cache) at start-up, so its loop waits a whole interval.
    pub fn first_delay(&self, stage: Stage, urgent: bool, jitter: f64) -> Duration {
        let every = self.interval(stage);
        let jitter = unit(jitter);
        match stage {
            Stage::Catalog => every,
            Stage::Status => every.mul_f64(jitter),
            Stage::Reconcile if !urgent => every.mul_f64(jitter),
            Stage::Probe | Stage::Select | Stage::Reconcile => every
                .mul_f64(0.1)
                .min(Duration::from_secs(30))
                .mul_f64(jitter),
        }
    }

    /// The time from the start of one run of the job that starts with `stage` to the start of
    /// the next, `jitter` in `[0, 1)`, after `failures` runs in a row whose API calls failed.
    ///
    /// Runs that went well: the interval, give or take [`JITTER`]. After failures: anywhere
    /// from one interval up to a ceiling that doubles with each failure, up to
    /// [`BACKOFF_CAP`] intervals (exponential backoff with full jitter above the interval):
    /// a fleet that lost the API together neither calls it more often than in steady state
    /// nor comes back together.
    pub fn wait(&self, stage: Stage, failures: u32, jitter: f64) -> Duration {
        let every = self.interval(stage);
        let jitter = unit(jitter);
        if failures == 0 {
            return every.mul_f64(1.0 - JITTER + 2.0 * JITTER * jitter);
        }
        let ceiling = every
            .saturating_mul(1 << failures.min(16))
            .min(every.saturating_mul(BACKOFF_CAP));
        every + ceiling.saturating_sub(every).mul_f64(jitter)
    }

    /// The shortest interval of a job that calls the API: the pace the operator allows the
    /// agent's calls, and so the first step of the backoffs that are not a job's own.
    pub fn shortest_api_interval(&self) -> Duration {
        [Stage::Catalog, Stage::Reconcile, Stage::Status]
            .into_iter()
            .map(|stage| self.interval(stage))
            .min()
            .unwrap_or(self.status_interval)
    }

    /// The wait before the next try at the catalogue while the agent has none at all (no
    /// fetch has worked and nothing was cached), after `failures` tries, `jitter` in
    /// `[0, 1)`: the agent can select nothing without one, so it does not wait a whole
    /// catalogue interval (an hour by default) as [`Self::wait`] would. It tries again after
    /// the shortest API interval, then backs off (doubling, full jitter) up to the catalogue
    /// interval: a fleet started during an outage still does not call together.
    pub fn catalog_missing_wait(&self, failures: u32, jitter: f64) -> Duration {
        let every = self.catalog_interval;
        // At most `every`: the catalogue's is one of the API intervals.
        let first = self.shortest_api_interval();
        let ceiling = first
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(every);
        first + ceiling.saturating_sub(first).mul_f64(unit(jitter))
    }

    /// When the next audit of the account falls after one at `now`, `jitter` in `[0, 1)`:
    /// an audit interval, give or take [`JITTER`].
    pub fn next_audit(&self, now: SystemTime, jitter: f64) -> SystemTime {
        let wait = self
            .audit_interval
            .mul_f64(1.0 - JITTER + 2.0 * JITTER * unit(jitter));
        now.checked_add(wait).unwrap_or(now)
    }

    /// The first audit of a state dir that has none planned: anywhere in the coming audit
    /// interval, so that a fleet upgraded at once does not list the account together.
    pub fn first_audit(&self, now: SystemTime, jitter: f64) -> SystemTime {
        now.checked_add(self.audit_interval.mul_f64(unit(jitter)))
            .unwrap_or(now)
    }
}

/// `jitter` as a share in `[0, 1]`; anything else (NaN) is 0.
fn unit(jitter: f64) -> f64 {
    if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
