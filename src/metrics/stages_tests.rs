use std::time::Duration;

use super::*;
use crate::metrics::fixtures::{exposition, sample};

#[test]
fn stages_are_always_there() {
    let c = StageCollector::new().unwrap();
    let text = exposition(c.clone());
    for stage in Stage::ALL {
        assert_eq!(
            sample(
                &text,
                "popsel_stage_runs_total",
                &[("stage", stage.as_str())]
            ),
            Some(0.0)
        );
    }
    c.ran(
        Stage::Probe,
        false,
        SystemTime::UNIX_EPOCH + Duration::from_secs(100),
    );
    c.ran(
        Stage::Probe,
        true,
        SystemTime::UNIX_EPOCH + Duration::from_secs(200),
    );
    let text = exposition(c.clone());
    assert_eq!(
        sample(&text, "popsel_stage_runs_total", &[("stage", "probe")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "popsel_stage_failures_total", &[("stage", "probe")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "popsel_stage_last_success_timestamp_seconds",
            &[("stage", "probe")]
        ),
        Some(200.0)
    );
}

#[test]
fn each_stage_exports_its_interval_for_the_staleness_alert() {
    let c = StageCollector::new().unwrap();
    let schedule = Schedule {
        probe_interval: Duration::from_secs(30),
        status_interval: Duration::from_secs(120),
        ..Schedule::default()
    };
    c.schedule(&schedule);
    let text = exposition(c.clone());
    let interval =
        |stage: &str| sample(&text, "popsel_stage_interval_seconds", &[("stage", stage)]);
    assert_eq!(interval("probe"), Some(30.0));
    assert_eq!(
        interval("select"),
        Some(30.0),
        "select runs after each probe round"
    );
    assert_eq!(interval("status"), Some(120.0));
    for stage in Stage::ALL {
        assert_eq!(
            interval(stage.as_str()),
            Some(schedule.interval(stage).as_secs_f64())
        );
    }
}
