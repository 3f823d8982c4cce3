use super::*;

#[test]
fn first_runs_wait_a_jittered_tenth_of_the_interval_at_most_30s() {
    let s = Schedule::default();
    assert_eq!(s.first_delay(Stage::Probe, 0.0), Duration::ZERO);
    assert_eq!(
        s.first_delay(Stage::Probe, 0.5),
        Duration::from_millis(1500)
    );
    assert_eq!(
        s.first_delay(Stage::Reconcile, 0.999),
        Duration::from_secs(30).mul_f64(0.999)
    );
    assert_eq!(
        s.first_delay(Stage::Status, 7.0),
        Duration::from_secs(6),
        "jitter is clamped"
    );
    assert_eq!(s.first_delay(Stage::Catalog, 0.0), s.catalog_interval);
    assert_eq!(s.interval(Stage::Select), s.probe_interval);
}
