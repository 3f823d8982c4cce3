use super::*;

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|&m| Duration::from_millis(m)).collect()
}

#[test]
fn stats_of_an_odd_and_an_even_run() {
    let s = rtt_stats(&ms(&[10, 30, 20])).unwrap();
    assert_eq!(
        (s.min, s.median, s.max),
        (ms(&[10])[0], ms(&[20])[0], ms(&[30])[0])
    );
    // |30-10| + |20-30| = 30 over 2 differences.
    assert_eq!(s.jitter, Duration::from_millis(15));
    let s = rtt_stats(&ms(&[10, 20, 40, 30])).unwrap();
    assert_eq!(s.median, Duration::from_millis(25));
    assert_eq!(rtt_stats(&ms(&[7])).unwrap().jitter, Duration::ZERO);
    assert_eq!(rtt_stats(&[]), None);
}

#[test]
fn loss_counts_what_was_sent() {
    let p = Probe {
        sent: 5,
        received: 4,
        rtts: ms(&[1, 1, 1, 1]).into(),
        error: None,
    };
    assert!((p.loss() - 0.2).abs() < 1e-12 && p.reachable());
    assert_eq!(Probe::default().loss(), 1.0);
    assert!(!Probe::default().reachable());
}
