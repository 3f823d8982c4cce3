use super::*;

#[test]
fn faults_are_shares_that_add_up_to_at_most_one() {
    assert_eq!(Faults::default().validate(), Ok(()));
    let faults = |fail_rate, throttle_rate| Faults {
        fail_rate,
        throttle_rate,
        ..Faults::default()
    };
    assert_eq!(faults(0.5, 0.5).validate(), Ok(()));
    let e = faults(1.5, 0.0).validate().unwrap_err();
    assert_eq!(e, InvalidFaults::NotAShare);
    assert_eq!(
        e.to_string(),
        "fail_rate and throttle_rate are shares from 0 to 1"
    );
    assert_eq!(faults(0.0, -0.1).validate(), Err(InvalidFaults::NotAShare));
    let e = faults(0.6, 0.5).validate().unwrap_err();
    assert_eq!(e.to_string(), "fail_rate + throttle_rate must not exceed 1");
}
