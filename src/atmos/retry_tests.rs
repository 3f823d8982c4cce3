use super::*;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(10),
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let p = policy();
    let full = |n| p.next_delay(n, Duration::ZERO, None, 0.999_999).unwrap();
    assert!(full(1) <= Duration::from_millis(100) && full(1) > Duration::from_millis(99));
    assert!(full(2) > Duration::from_millis(199) && full(2) <= Duration::from_millis(200));
    assert!(full(4) <= Duration::from_secs(1) && full(4) > Duration::from_millis(799));
    assert_eq!(
        p.next_delay(1, Duration::ZERO, None, 0.0),
        Some(Duration::ZERO)
    );
}

#[test]
fn gives_up_after_max_attempts() {
    let p = policy();
    assert!(p.next_delay(4, Duration::ZERO, None, 0.5).is_some());
    assert_eq!(p.next_delay(5, Duration::ZERO, None, 0.5), None);
}

#[test]
fn retry_after_is_honoured_even_above_the_cap() {
    let p = policy();
    let ra = Duration::from_secs(3);
    assert_eq!(p.next_delay(1, Duration::ZERO, Some(ra), 0.5), Some(ra));
}

#[test]
fn gives_up_when_the_wait_would_pass_the_time_budget() {
    let p = policy();
    assert_eq!(
        p.next_delay(1, Duration::from_secs(8), Some(Duration::from_secs(3)), 0.1),
        None
    );
    assert!(
        p.next_delay(1, Duration::from_secs(8), Some(Duration::from_secs(2)), 0.1)
            .is_some()
    );
}

#[test]
fn parses_retry_after_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    // 2015-10-21 07:28:10 GMT is 10 s after `now`.
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-3", now), None);
}

#[test]
fn any_retry_after_value_parses_without_panicking() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    for huge in [
        "1e20",
        "1e400",
        "inf",
        "+inf",
        "infinity",
        "99999999999999999999999",
        "18446744073709551616",
        "1.8446744073709552e19",
    ] {
        assert_eq!(parse_retry_after(huge, now), Some(Duration::MAX), "{huge}");
    }
    for nothing in [
        "-1",
        "-0.5",
        "-inf",
        "NaN",
        "-NaN",
        "",
        "0x10",
        "é",
        "1s",
        "Fri, 99 Dec",
    ] {
        assert_eq!(parse_retry_after(nothing, now), None, "{nothing}");
    }
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_retry_after("-0", now), Some(Duration::ZERO));
    assert!(
        parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now).unwrap()
            > Duration::from_secs(1 << 37)
    );
}

#[test]
fn a_retry_after_beyond_what_is_left_of_the_budget_gives_up_at_once() {
    let p = policy();
    for asked in [Duration::from_secs(11), Duration::MAX] {
        assert_eq!(
            p.next(1, Duration::ZERO, Some(asked), 0.5),
            Next::RetryAfterBeyondBudget {
                asked,
                left: Duration::from_secs(10)
            }
        );
    }
    // Past the budget already: nothing is left, and no wait at all is allowed.
    assert_eq!(
        p.next(1, Duration::from_secs(60), Some(Duration::ZERO), 0.0),
        Next::RetryAfterBeyondBudget {
            asked: Duration::ZERO,
            left: Duration::ZERO
        }
    );
    assert_eq!(
        p.next(1, Duration::from_secs(60), None, 0.0),
        Next::OutOfTime
    );
    assert_eq!(
        p.next(1, Duration::from_secs(9), None, 0.999),
        Next::Wait(Duration::from_millis(100).mul_f64(0.999))
    );
    assert_eq!(
        p.next(3, Duration::from_millis(9_900), None, 0.999),
        Next::OutOfTime
    );
    assert_eq!(p.next(5, Duration::ZERO, None, 0.5), Next::OutOfAttempts);
}

#[test]
fn no_wait_ever_ends_past_the_budget() {
    let p = policy();
    let values = [
        None,
        Some(Duration::ZERO),
        Some(Duration::from_millis(1)),
        Some(Duration::from_secs(9)),
        Some(Duration::MAX),
    ];
    for attempts in 1..5 {
        for elapsed_ms in [0u64, 5_000, 9_999, 10_000, 20_000] {
            for ra in values {
                for jitter in [0.0, 0.5, 0.999, f64::NAN, f64::INFINITY, -1.0] {
                    let elapsed = Duration::from_millis(elapsed_ms);
                    if let Next::Wait(w) = p.next(attempts, elapsed, ra, jitter) {
                        assert!(
                            elapsed + w <= p.max_elapsed,
                            "{attempts} {elapsed:?} {ra:?}"
                        );
                        assert!(ra.is_none_or(|ra| w >= ra));
                    }
                }
            }
        }
    }
}
