//! The agent's stages: how often each ran and failed, and when it last succeeded.

use std::time::SystemTime;

use prometheus::{GaugeVec, IntCounterVec, Result};

use super::family::{Family, collector};
use crate::schedule::{Schedule, Stage};
use crate::timestamp::unix_seconds_f64;

const RUNS: Family = Family {
    name: "popsel_stage_runs_total",
    help: "Runs of each agent stage.",
    labels: &["stage"],
};
const FAILURES: Family = Family {
    name: "popsel_stage_failures_total",
    help: "Failed runs of each agent stage.",
    labels: &["stage"],
};
const LAST_SUCCESS: Family = Family {
    name: "popsel_stage_last_success_timestamp_seconds",
    help: "When each agent stage last succeeded.",
    labels: &["stage"],
};

/// Clones share their series (the registry holds one, the agent updates another).
/// What a staleness alert measures the last success against (`PopselStageStale`), so that
/// one rule fits every agent whatever its `[agent]` intervals.
const INTERVAL: Family = Family {
    name: "popsel_stage_interval_seconds",
    help: "How often each agent stage runs ([agent] intervals; a failing stage backs off up to 10 of them).",
    labels: &["stage"],
};

#[derive(Clone)]
pub struct StageCollector {
    runs: IntCounterVec,
    failures: IntCounterVec,
    last_success: GaugeVec,
    interval: GaugeVec,
}

collector!(StageCollector {
    runs,
    failures,
    last_success,
    interval
});

impl StageCollector {
    pub const FAMILIES: [&'static str; 4] =
        [RUNS.name, FAILURES.name, LAST_SUCCESS.name, INTERVAL.name];

    pub fn new() -> Result<StageCollector> {
        let c = StageCollector {
            runs: RUNS.counters()?,
            failures: FAILURES.counters()?,
            last_success: LAST_SUCCESS.gauges()?,
            interval: INTERVAL.gauges()?,
        };
        // Counters of every stage exist from the start at 0, so that `rate()` and
        // `increase()` see the first run and the first failure.
        for stage in Stage::ALL {
            c.runs.with_label_values(&[stage.as_str()]);
            c.failures.with_label_values(&[stage.as_str()]);
        }
        Ok(c)
    }

    /// The intervals the stages are scheduled at (at start and after a reload).
    pub fn schedule(&self, schedule: &Schedule) {
        for stage in Stage::ALL {
            self.interval
                .with_label_values(&[stage.as_str()])
                .set(schedule.interval(stage).as_secs_f64());
        }
    }

    pub fn ran(&self, stage: Stage, ok: bool, now: SystemTime) {
        let label = [stage.as_str()];
        self.runs.with_label_values(&label).inc();
        if ok {
            self.last_success
                .with_label_values(&label)
                .set(unix_seconds_f64(now));
        } else {
            self.failures.with_label_values(&label).inc();
        }
    }
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
