use super::*;

const PROBE: Duration = Duration::from_secs(30);
const STATUS: Duration = Duration::from_secs(60);

#[test]
fn nothing_is_overdue_before_the_stages_are_scheduled() {
    let liveness = Liveness::default();
    let later = Instant::now() + Duration::from_secs(86_400);
    assert!(liveness.overdue(later).is_empty());
}

#[test]
fn a_stage_is_overdue_after_3_of_its_intervals_without_a_completed_run() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    liveness.completed(Stage::Probe, t0, PROBE);
    liveness.completed(Stage::Status, t0, STATUS);
    assert!(liveness.overdue(t0 + Duration::from_secs(90)).is_empty());
    let overdue = liveness.overdue(t0 + Duration::from_secs(91));
    assert_eq!(
        overdue,
        vec![Overdue {
            stage: Stage::Probe,
            silent: Duration::from_secs(91),
            interval: PROBE,
        }],
        "status (60 s) still has time"
    );
    assert_eq!(
        overdue[0].to_string(),
        "stage probe has completed no run for 91.0s, over 3 of its 30s intervals"
    );
    // A completed run, failed or not, is life.
    liveness.completed(Stage::Probe, t0 + Duration::from_secs(91), PROBE);
    assert!(liveness.overdue(t0 + Duration::from_secs(120)).is_empty());
}

#[test]
fn the_clock_of_a_stage_not_yet_run_starts_when_its_first_run_is_due() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    let reconcile = Duration::from_secs(300);
    liveness.expect(Stage::Reconcile, t0 + Duration::from_secs(30), reconcile);
    assert!(liveness.overdue(t0 + Duration::from_secs(930)).is_empty());
    assert_eq!(
        liveness.overdue(t0 + Duration::from_secs(931))[0].stage,
        Stage::Reconcile
    );
    // Expecting a stage again (a loop started after its first run) keeps its record.
    let catalog = Duration::from_secs(3600);
    liveness.completed(Stage::Catalog, t0, catalog);
    liveness.expect(Stage::Catalog, t0 + catalog, catalog);
    assert_eq!(
        liveness.overdue(t0 + Duration::from_secs(10_801))[0].stage,
        Stage::Catalog
    );
}

#[test]
fn a_reload_changes_the_rule_from_the_next_run_as_it_does_the_wait() {
    let liveness = Liveness::default();
    let t0 = Instant::now();
    // The loop waits an hour after this run; a reload to 1 min meanwhile does not make the
    // stage overdue before the loop could have run it.
    liveness.completed(Stage::Catalog, t0, Duration::from_secs(3600));
    assert!(liveness.overdue(t0 + Duration::from_secs(3000)).is_empty());
    liveness.completed(
        Stage::Catalog,
        t0 + Duration::from_secs(3600),
        Duration::from_secs(60),
    );
    assert!(
        liveness
            .overdue(t0 + Duration::from_secs(3600 + 180))
            .is_empty()
    );
    assert_eq!(
        liveness.overdue(t0 + Duration::from_secs(3600 + 181)).len(),
        1
    );
}

#[test]
fn runs_start_every_wait_and_an_overrun_leaves_a_tenth_of_the_interval() {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(
        until_next(s(2), s(2), ms(1400)),
        ms(600),
        "a probe round's length is not added"
    );
    assert_eq!(until_next(s(2), s(2), s(0)), s(2));
    assert_eq!(until_next(s(2), s(2), s(2)), ms(200));
    assert_eq!(
        until_next(s(300), s(300), s(900)),
        s(30),
        "an API outage's retries do not chain runs"
    );
    assert_eq!(
        until_next(s(1200), s(300), s(5)),
        s(1195),
        "a backed-off wait counts from the start of the run"
    );
}
