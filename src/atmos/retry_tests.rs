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
