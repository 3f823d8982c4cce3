use super::*;

fn schedule() -> Schedule {
    Schedule {
        catalog_interval: Duration::from_secs(3600),
        probe_interval: Duration::from_secs(30),
        reconcile_interval: Duration::from_secs(300),
        status_interval: Duration::from_secs(60),
    }
}

#[test]
fn nothing_is_overdue_before_the_stages_are_scheduled() {
    let liveness = Liveness::default();
    let later = Instant::now() + Duration::from_secs(86_400);
    assert!(liveness.overdue(&schedule(), later).is_empty());
}

#[test]
fn a_stage_is_overdue_after_3_of_its_intervals_without_a_completed_run() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    liveness.completed(Stage::Probe, t0);
    liveness.completed(Stage::Status, t0);
    let s = schedule();
    assert!(
        liveness
            .overdue(&s, t0 + Duration::from_secs(90))
            .is_empty()
    );
    let overdue = liveness.overdue(&s, t0 + Duration::from_secs(91));
    assert_eq!(
        overdue,
        vec![Overdue {
            stage: Stage::Probe,
            silent: Duration::from_secs(91),
            interval: Duration::from_secs(30),
        }],
        "status (60 s) still has time"
    );
    assert_eq!(
        overdue[0].to_string(),
        "stage probe has completed no run for 91.0s, over 3 of its 30s intervals"
    );
    // A completed run, failed or not, is life.
    liveness.completed(Stage::Probe, t0 + Duration::from_secs(91));
    assert!(
        liveness
            .overdue(&s, t0 + Duration::from_secs(120))
            .is_empty()
    );
}

#[test]
fn the_clock_of_a_stage_not_yet_run_starts_when_its_first_run_is_due() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    liveness.expect(Stage::Reconcile, t0 + Duration::from_secs(30));
    assert!(
        liveness
            .overdue(&schedule(), t0 + Duration::from_secs(930))
            .is_empty()
    );
    assert_eq!(
        liveness.overdue(&schedule(), t0 + Duration::from_secs(931))[0].stage,
        Stage::Reconcile
    );
    // Expecting a stage again (a loop started after its first run) keeps its record.
    liveness.completed(Stage::Catalog, t0);
    liveness.expect(Stage::Catalog, t0 + Duration::from_secs(3600));
    assert_eq!(
        liveness.overdue(&schedule(), t0 + Duration::from_secs(10_801))[0].stage,
        Stage::Catalog
    );
}

#[test]
fn the_interval_is_the_one_in_use_now() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    liveness.completed(Stage::Status, t0);
    let mut reloaded = schedule();
    reloaded.status_interval = Duration::from_secs(10);
    let now = t0 + Duration::from_secs(31);
    assert!(liveness.overdue(&schedule(), now).is_empty());
    assert_eq!(liveness.overdue(&reloaded, now).len(), 1);
}
