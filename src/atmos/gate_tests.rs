use super::*;

const BASE: Duration = Duration::from_secs(10);
const CAP: Duration = Duration::from_secs(100);

fn held(admission: &Admission) -> Option<Hold> {
    match admission {
        Admission::Held(hold) => Some(*hold),
        _ => None,
    }
}

#[test]
fn an_open_gate_lets_every_call_go() {
    let gate = Gate::new(BASE, CAP);
    let now = Instant::now();
    for _ in 0..3 {
        assert!(matches!(gate.admit(now), Admission::Open));
    }
    assert!(!gate.throttled());
}

#[test]
fn a_429_holds_every_call_back_for_its_retry_after_then_one_probe_goes_alone() {
    let gate = Gate::new(BASE, CAP);
    let t0 = Instant::now();
    let wait = gate.failed(None, t0, true, Some(Duration::from_secs(30)), 0.0);
    assert_eq!(
        wait,
        Duration::from_secs(30),
        "at least what the server asked"
    );
    assert!(gate.throttled());
    let hold = held(&gate.admit(t0 + Duration::from_secs(10))).expect("held");
    assert_eq!(hold.left, Duration::from_secs(20));
    assert!(hold.throttled);

    let after = t0 + Duration::from_secs(30);
    let Admission::Probe(ticket) = gate.admit(after) else {
        panic!("the first call after the wait probes");
    };
    assert_eq!(
        held(&gate.admit(after)),
        Some(Hold {
            left: Duration::ZERO,
            throttled: true
        }),
        "a second call waits for the probe"
    );
    gate.answered(Some(ticket));
    assert!(matches!(gate.admit(after), Admission::Open));
    assert!(!gate.throttled());
}

#[test]
fn a_failed_probe_closes_the_gate_again_for_longer_up_to_the_cap() {
    let gate = Gate::new(BASE, CAP);
    let mut now = Instant::now();
    let mut waits = vec![gate.failed(None, now, false, None, 0.999)];
    for _ in 0..8 {
        now += *waits.last().expect("a wait");
        let Admission::Probe(ticket) = gate.admit(now) else {
            panic!("a probe once the wait is over");
        };
        waits.push(gate.failed(Some(ticket), now, false, None, 0.999));
    }
    let secs: Vec<u64> = waits
        .iter()
        .map(|w| w.as_secs_f64().round() as u64)
        .collect();
    assert_eq!(secs, [10, 20, 40, 80, 100, 100, 100, 100, 100]);
    assert!(!gate.throttled(), "an outage is not throttling");
}

#[test]
fn the_backoff_is_drawn_anywhere_below_its_ceiling() {
    let gate = Gate::new(BASE, CAP);
    let now = Instant::now();
    assert_eq!(gate.failed(None, now, false, None, 0.0), Duration::ZERO);
    assert_eq!(
        gate.failed(None, now, false, None, 0.5),
        Duration::from_secs(10),
        "second failure: half of 20 s"
    );
    assert_eq!(
        gate.failed(None, now, false, None, f64::NAN),
        Duration::ZERO,
        "a jitter that is no number is 0"
    );
}

#[test]
fn an_abandoned_probe_hands_the_probe_to_the_next_call() {
    let gate = Gate::new(BASE, CAP);
    let now = Instant::now();
    gate.failed(None, now, false, None, 0.0);
    let Admission::Probe(ticket) = gate.admit(now) else {
        panic!("probe");
    };
    drop(ticket);
    assert!(matches!(gate.admit(now), Admission::Probe(_)));
}

#[test]
fn a_retry_after_of_any_size_holds_for_a_day_at_most() {
    let gate = Gate::new(BASE, CAP);
    let now = Instant::now();
    let wait = gate.failed(None, now, true, Some(Duration::MAX), 0.5);
    assert_eq!(wait, LONGEST_RETRY_AFTER);
    let hold = held(&gate.admit(now)).expect("held");
    assert_eq!(hold.left, LONGEST_RETRY_AFTER);
}
