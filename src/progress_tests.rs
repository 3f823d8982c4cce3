use std::time::{Duration, Instant};

use super::*;

#[test]
fn counts_each_phase_and_starts_with_the_catalogue() {
    let p = Progress::default();
    assert_eq!(p.snapshot().phase, Phase::Catalog);
    assert_eq!(
        p.snapshot().line(Instant::now()),
        "fetching the PoP catalogue"
    );

    p.resolving(3);
    p.name_resolved();
    p.name_resolved();
    let s = p.snapshot();
    assert_eq!((s.phase, s.names), (Phase::Resolve, (2, 3)));
    assert_eq!(s.line(Instant::now()), "DNS: 2/3 names");

    p.probing(4);
    for _ in 0..5 {
        p.request_sent();
    }
    p.reply_received(true);
    p.reply_received(false);
    p.reply_received(true);
    p.address_done();
    let s = p.snapshot();
    assert_eq!(s.phase, Phase::Probe);
    assert_eq!(s.answered, (2, 4));
    assert_eq!((s.requests, s.replies, s.addresses_done), (5, 3, 1));
    assert_eq!(
        s.line(Instant::now()),
        "probing: 2/4 addresses answered, 1 done; 5 requests, 3 replies"
    );
    p.addresses_done(4);
    assert_eq!(p.snapshot().addresses_done, 4);
    p.done();
    assert_eq!(p.snapshot().phase, Phase::Done);
}

#[test]
fn a_new_probing_round_counts_afresh() {
    let p = Progress::default();
    p.probing(2);
    p.request_sent();
    p.reply_received(true);
    p.probing(3);
    let s = p.snapshot();
    assert_eq!((s.answered, s.requests, s.replies), ((0, 3), 0, 0));
}

#[test]
fn clones_share_the_counters_across_threads() {
    let p = Progress::default();
    p.probing(1000);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let p = p.clone();
            scope.spawn(move || {
                for _ in 0..250 {
                    p.request_sent();
                    p.reply_received(true);
                }
            });
        }
    });
    let s = p.snapshot();
    assert_eq!(
        (s.requests, s.replies, s.answered),
        (1000, 1000, (1000, 1000))
    );
}

#[test]
fn a_retry_counts_down_until_the_api_answers_or_the_phase_moves_on() {
    let p = Progress::default();
    let now = Instant::now();
    p.retrying(now + Duration::from_secs(2), "HTTP 503");
    let s = p.snapshot();
    assert_eq!(s.line(now), "PoP catalogue: retrying in 2s: HTTP 503");
    let later = now + Duration::from_millis(1600);
    assert_eq!(s.line(later), "PoP catalogue: retrying in 400ms: HTTP 503");
    assert_eq!(
        s.line(now + Duration::from_secs(5)),
        "PoP catalogue: retrying in 0ms: HTTP 503",
        "a wait overdue never goes negative"
    );
    p.clear_retry();
    assert_eq!(p.snapshot().line(now), "fetching the PoP catalogue");
    p.retrying(now + Duration::from_millis(1500), "HTTP 429");
    assert_eq!(
        p.snapshot().line(now),
        "PoP catalogue: retrying in 2s: HTTP 429"
    );
    p.resolving(1);
    assert_eq!(p.snapshot().retry, None);
}
