use super::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn probing_and_urgent_reconciles_start_within_a_tenth_of_the_interval_at_most_30s() {
    let s = Schedule::default();
    assert_eq!(s.first_delay(Stage::Probe, false, 0.0), Duration::ZERO);
    assert_eq!(
        s.first_delay(Stage::Probe, false, 0.5),
        Duration::from_millis(1500)
    );
    assert_eq!(
        s.first_delay(Stage::Reconcile, true, 0.999),
        Duration::from_secs(30).mul_f64(0.999),
        "tunnels to create do not wait"
    );
    assert_eq!(
        s.first_delay(Stage::Catalog, false, 0.0),
        s.catalog_interval
    );
    assert_eq!(s.interval(Stage::Select), s.probe_interval);
}

#[test]
fn status_polls_and_quiet_reconciles_start_anywhere_in_their_first_interval() {
    let s = Schedule::default();
    assert_eq!(
        s.first_delay(Stage::Status, false, 0.75),
        s.status_interval.mul_f64(0.75)
    );
    assert_eq!(
        s.first_delay(Stage::Reconcile, false, 0.5),
        s.reconcile_interval / 2
    );
    assert_eq!(
        s.first_delay(Stage::Status, false, 7.0),
        s.status_interval,
        "jitter is clamped"
    );
    assert_eq!(
        s.first_delay(Stage::Status, false, f64::NAN),
        Duration::ZERO
    );
}

#[test]
fn every_run_is_jittered_by_a_tenth_of_its_interval_either_way() {
    let s = Schedule {
        status_interval: 100 * SECOND,
        ..Schedule::default()
    };
    assert_eq!(s.wait(Stage::Status, 0, 0.0), 90 * SECOND);
    assert_eq!(s.wait(Stage::Status, 0, 0.5), 100 * SECOND);
    assert_eq!(s.wait(Stage::Status, 0, 1.0), 110 * SECOND);
}

#[test]
fn failing_runs_back_off_from_one_interval_to_a_ceiling_that_doubles_up_to_ten() {
    let s = Schedule {
        reconcile_interval: 10 * SECOND,
        ..Schedule::default()
    };
    let ceilings: Vec<Duration> = (1..=6)
        .map(|failures| s.wait(Stage::Reconcile, failures, 1.0))
        .collect();
    assert_eq!(
        ceilings,
        [20, 40, 80, 100, 100, 100].map(|n| n * SECOND),
        "2, 4, 8, then capped at {BACKOFF_CAP} intervals"
    );
    for failures in [1, 3, 40, u32::MAX] {
        assert_eq!(
            s.wait(Stage::Reconcile, failures, 0.0),
            10 * SECOND,
            "never sooner than the interval: an outage never raises the rate"
        );
    }
    assert_eq!(s.wait(Stage::Reconcile, 2, 0.5), 25 * SECOND);
}

#[test]
fn audits_fall_an_audit_interval_apart_give_or_take_a_tenth_and_the_first_anywhere_in_one() {
    let s = Schedule::default();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let day = s.audit_interval;
    assert_eq!(s.next_audit(now, 0.0), now + day.mul_f64(0.9));
    assert_eq!(s.next_audit(now, 1.0), now + day.mul_f64(1.1));
    assert_eq!(s.first_audit(now, 0.25), now + day / 4);
}

#[test]
fn a_missing_catalogue_is_tried_again_after_the_shortest_api_interval_then_backed_off() {
    let s = Schedule::default();
    let first = s.reconcile_interval.min(s.status_interval);
    assert!(first < s.catalog_interval / 10, "{s:?}");
    for jitter in [0.0, 0.5, 0.999] {
        assert_eq!(
            s.catalog_missing_wait(1, jitter),
            first,
            "no wait beyond the first"
        );
    }
    assert_eq!(s.catalog_missing_wait(2, 0.0), first);
    assert_eq!(s.catalog_missing_wait(2, 0.5), first.mul_f64(1.5));
    assert_eq!(
        s.catalog_missing_wait(4, 0.999),
        first + (first * 7).mul_f64(0.999)
    );
    // Never longer than the catalogue's own interval, however many failures.
    for failures in [8, 20, 64, u32::MAX] {
        let wait = s.catalog_missing_wait(failures, 0.999);
        assert!(
            wait <= s.catalog_interval && wait > s.catalog_interval / 2,
            "{wait:?}"
        );
    }
    // A catalogue interval shorter than the others is the pace.
    let fast = Schedule {
        catalog_interval: 10 * SECOND,
        ..Schedule::default()
    };
    assert_eq!(fast.catalog_missing_wait(1, 0.9), 10 * SECOND);
    assert_eq!(fast.catalog_missing_wait(9, 0.9), 10 * SECOND);
}
