use super::*;
use crate::probe::adaptive::{DEFAULT_CAP, wilson};

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

fn tally(rtts: &[f64], lost: u32) -> Tally {
    Tally {
        sent: rtts.len() as u32 + lost,
        rtts: rtts.iter().map(|&v| ms(v)).collect(),
        lost,
        oldest_waiting: None,
    }
}

const SETTLE_TOP_3: Adaptive = Adaptive {
    top: 3,
    cap: DEFAULT_CAP,
    follow_up: Duration::from_millis(50),
    retry_silent: Duration::from_millis(333),
};

#[test]
fn every_address_gets_a_first_request_and_none_beyond_the_cap() {
    let tallies = vec![Tally::default(), tally(&[10.0; DEFAULT_CAP as usize], 0)];
    let pops = vec![vec![0], vec![1]];
    assert_eq!(contenders(&pops, &tallies, &SETTLE_TOP_3), [true, false]);
}

#[test]
fn only_addresses_that_could_reach_the_top_get_more() {
    // Three PoPs at 10, 12 and 13 ms, one at 40 ms.
    let tallies = vec![
        tally(&[10.0], 0),
        tally(&[12.0], 0),
        tally(&[13.0], 0),
        tally(&[40.0], 0),
    ];
    let pops: Vec<Vec<usize>> = (0..4).map(|i| vec![i]).collect();
    assert_eq!(
        contenders(&pops, &tallies, &SETTLE_TOP_3),
        [true, true, true, false]
    );
}

#[test]
fn an_address_that_has_not_answered_is_tried_three_times_then_left() {
    let waiting = |sent| Tally {
        sent,
        oldest_waiting: Some(ms(30.0)),
        ..Tally::default()
    };
    let mut tallies = vec![
        tally(&[10.0], 0),
        tally(&[12.0], 0),
        tally(&[13.0], 0),
        waiting(1),
        waiting(2),
        waiting(3),
        tally(&[], 3),
    ];
    let pops: Vec<Vec<usize>> = (0..tallies.len()).map(|i| vec![i]).collect();
    assert_eq!(
        contenders(&pops, &tallies, &SETTLE_TOP_3),
        [true, true, true, true, true, false, false]
    );
    tallies.truncate(1);
    tallies.push(waiting(1));
    assert_eq!(
        contenders(&pops[..2], &tallies, &SETTLE_TOP_3),
        [true, true],
        "too few PoPs answered to set a bar: those that did go on"
    );
}

#[test]
fn a_loss_drops_a_close_address_out_and_raises_the_bar_for_the_others() {
    // The lossy one is as fast as the best; one lost request of three puts its plausible
    // score above the third PoP's.
    let pops: Vec<Vec<usize>> = (0..5).map(|i| vec![i]).collect();
    let mut tallies = vec![
        tally(&[10.0, 10.0, 10.0], 0),
        tally(&[10.1, 10.1], 1),
        tally(&[12.0], 0),
        tally(&[13.0], 0),
        tally(&[14.0], 0),
    ];
    assert_eq!(
        contenders(&pops, &tallies, &SETTLE_TOP_3),
        [true, false, true, true, false]
    );
    // The leader turns lossy: the 14 ms PoP may be third after all.
    tallies[0] = tally(&[10.0, 10.0], 2);
    assert!(contenders(&pops, &tallies, &SETTLE_TOP_3)[4]);
}

#[test]
fn a_pop_is_as_good_as_its_best_address() {
    // One PoP with a fast and a slow address, two others: the bar is the third PoP's.
    let tallies = vec![
        tally(&[10.0], 0),
        tally(&[50.0], 0),
        tally(&[20.0], 0),
        tally(&[30.0], 0),
    ];
    let pops = vec![vec![0, 1], vec![2], vec![3]];
    assert_eq!(
        contenders(&pops, &tallies, &SETTLE_TOP_3),
        [true, false, true, true]
    );
}

#[test]
fn the_score_range_spans_the_round_trips_and_the_loss_interval() {
    let rtts = [ms(10.0), ms(12.0)];
    let (low, high) = score_range(&rtts, 2).expect("replies");
    let jitter = JITTER_WEIGHT * 2.0;
    assert!((low - (10.0 + jitter)).abs() < 1e-9);
    let (_, loss_high) = wilson(0, 2);
    assert!((high - (12.0 + LOSS_PENALTY_MS * loss_high + jitter)).abs() < 1e-9);
    assert_eq!(score_range(&[], 3), None);
}

/// One address of the simulated world: its round trip, loss and jitter (ms).
#[derive(Clone, Copy)]
struct Emulated {
    rtt: f64,
    loss: f64,
    jitter: f64,
}

/// The benchmark's world in miniature: the best PoP at 10 ms; a PoP 0.5 ms behind it losing
/// 40% (two addresses); two PoPs 1 ms apart at 12 and 13 ms; 40 more from 15 to 200 ms, every
/// fifth with a second address and every seventh silent.
fn world() -> (Vec<Vec<usize>>, Vec<Emulated>) {
    let clean = |rtt| Emulated {
        rtt,
        loss: 0.0,
        jitter: 0.3,
    };
    let lossy = Emulated {
        rtt: 10.5,
        loss: 0.4,
        jitter: 0.3,
    };
    let mut pops = vec![vec![0], vec![1, 2], vec![3], vec![4]];
    let mut addresses = vec![clean(10.0), lossy, lossy, clean(12.0), clean(13.0)];
    for i in 0..40 {
        let rtt = 15.0 + 185.0 * f64::from(i) / 39.0;
        let loss = if i % 7 == 0 { 1.0 } else { 0.0 };
        let mut pop = vec![addresses.len()];
        addresses.push(Emulated { loss, ..clean(rtt) });
        if i % 5 == 0 {
            pop.push(addresses.len());
            addresses.push(Emulated {
                loss,
                ..clean(rtt + 1.0)
            });
        }
        pops.push(pop);
    }
    (pops, addresses)
}

fn send(rng: &mut fastrand::Rng, a: Emulated, tally: &mut Tally) {
    tally.sent += 1;
    if rng.f64() < a.loss {
        tally.lost += 1;
    } else {
        tally
            .rtts
            .push(ms(a.rtt + a.jitter * (2.0 * rng.f64() - 1.0)));
    }
}

/// The PoPs ranked by their best address's score, best first.
fn top(pops: &[Vec<usize>], tallies: &[Tally], n: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f64)> = pops
        .iter()
        .enumerate()
        .filter_map(|(p, addresses)| {
            let best = addresses
                .iter()
                .filter_map(|&i| estimate(&tallies[i]))
                .min_by(f64::total_cmp)?;
            Some((p, best))
        })
        .collect();
    scored.sort_by(|a, b| a.1.total_cmp(&b.1));
    scored.into_iter().take(n).map(|(p, _)| p).collect()
}

/// Runs sequential probing over the world, each round resolving every request at once.
fn sequential(rng: &mut fastrand::Rng, pops: &[Vec<usize>], world: &[Emulated]) -> Vec<Tally> {
    let mut tallies = vec![Tally::default(); world.len()];
    loop {
        let next = contenders(pops, &tallies, &SETTLE_TOP_3);
        if !next.contains(&true) {
            return tallies;
        }
        for (i, send_now) in next.into_iter().enumerate() {
            if send_now {
                send(rng, world[i], &mut tallies[i]);
            }
        }
    }
}

#[test]
fn over_three_thousand_runs_the_lossy_pop_never_reaches_the_top_3_on_half_the_requests_of_fping() {
    let (pops, world) = world();
    let truth = vec![0, 2, 3];
    let mut rng = fastrand::Rng::with_seed(20261130);
    let runs = 3000;
    let (mut lossy_in_top, mut wrong, mut requests) = (0, 0, 0u64);
    let (mut fixed_lossy_in_top, mut fixed_wrong) = (0, 0);
    for _ in 0..runs {
        let tallies = sequential(&mut rng, &pops, &world);
        requests += tallies.iter().map(|t| u64::from(t.sent)).sum::<u64>();
        let best = top(&pops, &tallies, 3);
        lossy_in_top += usize::from(best.contains(&1));
        wrong += usize::from(best != truth);

        let mut fixed = vec![Tally::default(); world.len()];
        for (i, t) in fixed.iter_mut().enumerate() {
            for _ in 0..5 {
                send(&mut rng, world[i], t);
            }
        }
        let best = top(&pops, &fixed, 3);
        fixed_lossy_in_top += usize::from(best.contains(&1));
        fixed_wrong += usize::from(best != truth);
    }
    let per_address = requests as f64 / (runs * world.len()) as f64;
    assert_eq!(lossy_in_top, 0, "sequential: the lossy PoP in the top 3");
    assert!(
        wrong * 100 <= runs,
        "sequential: top 3 wrong in {wrong} of {runs}"
    );
    assert!(
        per_address <= 2.5,
        "sequential: {per_address:.2} requests per address"
    );
    // What fixed counts do on the same world: the lossy PoP through now and then.
    assert!(
        fixed_lossy_in_top * 100 > runs * 5,
        "fixed 5: the lossy PoP in the top 3 in {fixed_lossy_in_top} of {runs}"
    );
    assert!(fixed_wrong >= fixed_lossy_in_top);
}
