use super::*;

#[test]
fn wilson_intervals_are_the_textbook_ones() {
    let (low, high) = wilson(0, 15);
    assert!(low == 0.0 && (high - 0.2039).abs() < 1e-3, "{high}");
    let (low, high) = wilson(2, 5);
    assert!((low - 0.1176).abs() < 1e-3 && (high - 0.7693).abs() < 1e-3);
    assert_eq!(wilson(0, 0), (0.0, 1.0));
    assert_eq!(wilson(9, 3).1, 1.0, "more hits than tries: all of them");
}

#[test]
fn a_silent_address_is_tried_a_third_of_the_timeout_apart_a_contender_a_quarter_interval() {
    let adaptive = Adaptive::new(1, Duration::from_millis(200), Duration::from_secs(1));
    assert_eq!(adaptive.top, MIN_TOP);
    assert_eq!(adaptive.gap(&Tally::default()), Duration::from_secs(1) / 3);
    let answered = Tally {
        sent: 1,
        rtts: vec![Duration::from_millis(5)],
        ..Tally::default()
    };
    assert_eq!(adaptive.gap(&answered), Duration::from_millis(50));
}
