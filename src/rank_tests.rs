use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::catalog::ListedFqdn;
use crate::resolve::Source;

fn pop(city: &str, lat: f64, lon: f64) -> Pop {
    Pop {
        country: "XX".into(),
        city: city.into(),
        provider: "AWS".into(),
        latitude: lat,
        longitude: lon,
        fqdns: vec![ListedFqdn {
            name: format!("{}.pops.test", city.to_lowercase()).into(),
            ips: Default::default(),
        }],
    }
}

fn endpoint(city: &str, ip: &str) -> Endpoint {
    Endpoint {
        fqdn: format!("{}.pops.test", city.to_lowercase()).into(),
        ip: ip.parse().unwrap(),
        source: Source::Catalog,
    }
}

fn probe(rtts_ms: &[f64], lost: u32) -> Probe {
    let rtts: Vec<Duration> = rtts_ms
        .iter()
        .map(|&m| Duration::from_secs_f64(m / 1000.0))
        .collect();
    Probe {
        sent: rtts.len() as u32 + lost,
        received: rtts.len() as u32,
        rtts: rtts.into(),
        error: None,
    }
}

const SITE: Site = Site {
    latitude: 0.0,
    longitude: 0.0,
};

fn ranked_cities(r: &Ranking) -> Vec<&str> {
    r.pops.iter().map(|p| p.pop.city.as_str()).collect()
}

#[test]
fn site_parses_and_names_what_is_wrong() {
    assert_eq!(
        Site::parse("41.88,-87.63").unwrap(),
        Site {
            latitude: 41.88,
            longitude: -87.63
        }
    );
    assert!(Site::parse("41.88").unwrap_err().contains("LAT,LON"));
    assert!(
        Site::parse("95,0")
            .unwrap_err()
            .contains("latitude 95 is out of range")
    );
    assert!(
        Site::parse("0,east")
            .unwrap_err()
            .contains("longitude \"east\" is not a number")
    );
}

#[test]
fn distance_is_great_circle() {
    // Frankfurt to London: about 637 km.
    let d = distance_km(
        Site {
            latitude: 50.11,
            longitude: 8.68,
        },
        &pop("London", 51.51, -0.13),
    );
    assert!((d - 637.0).abs() < 10.0, "{d}");
    assert!(distance_km(SITE, &pop("Here", 0.0, 0.0)) < 1e-9);
}

#[test]
fn latency_first_loss_penalised_unreachable_last_by_distance() {
    let pops = vec![
        (pop("Near", 0.0, 1.0), vec![endpoint("Near", "198.18.0.1")]),
        (pop("Fast", 0.0, 20.0), vec![endpoint("Fast", "198.18.0.2")]),
        (
            pop("Lossy", 0.0, 2.0),
            vec![endpoint("Lossy", "198.18.0.3")],
        ),
        (
            pop("SilentFar", 0.0, 40.0),
            vec![endpoint("SilentFar", "198.18.0.4")],
        ),
        (
            pop("SilentNear", 0.0, 3.0),
            vec![endpoint("SilentNear", "198.18.0.5")],
        ),
    ];
    let probes: Probes = [
        ("198.18.0.1", probe(&[30.0, 30.0, 30.0, 30.0, 30.0], 0)),
        ("198.18.0.2", probe(&[10.0, 10.0, 10.0, 10.0, 10.0], 0)),
        ("198.18.0.3", probe(&[5.0, 5.0, 5.0, 5.0], 1)),
        ("198.18.0.4", probe(&[], 5)),
    ]
    .into_iter()
    .map(|(ip, p)| (ip.parse().unwrap(), p))
    .collect();
    let r = rank(SITE, pops, Some(Arc::new(probes)), vec![]);
    assert_eq!(r.basis, Basis::Latency);
    assert_eq!(
        ranked_cities(&r),
        ["Fast", "Near", "Lossy", "SilentNear", "SilentFar"]
    );
    assert_eq!(
        r.pops.iter().map(|p| p.rank).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let lossy = &r.pops[2];
    assert!((lossy.loss - 0.2).abs() < 1e-9);
    assert!(
        (lossy.score.unwrap() - 105.0).abs() < 1e-6,
        "{:?}",
        lossy.score
    );
    let silent = &r.pops[3];
    assert!(
        !silent.reachable && silent.score.is_none() && silent.rtt.is_none() && silent.loss == 1.0
    );
    assert_eq!(r.unreachable(), 2);
}

#[test]
fn a_pop_is_as_good_as_its_best_endpoint() {
    let pops = vec![(
        pop("Two", 0.0, 1.0),
        vec![endpoint("Two", "198.18.0.1"), endpoint("Two", "198.18.0.2")],
    )];
    let probes: Probes = [
        ("198.18.0.1".parse().unwrap(), probe(&[], 5)),
        ("198.18.0.2".parse().unwrap(), probe(&[12.0, 14.0, 13.0], 0)),
    ]
    .into_iter()
    .collect();
    let r = rank(SITE, pops, Some(Arc::new(probes)), vec![]);
    let p = &r.pops[0];
    assert_eq!(p.best, Some(1));
    assert_eq!(p.best_endpoint().unwrap().ip.to_string(), "198.18.0.2");
    assert_eq!(p.rtt.unwrap().median, Duration::from_millis(13));
}

#[test]
fn nothing_answering_means_distance_basis() {
    let pops = vec![
        (pop("Far", 0.0, 30.0), vec![endpoint("Far", "198.18.0.1")]),
        (pop("Near", 0.0, 3.0), vec![endpoint("Near", "198.18.0.2")]),
    ];
    for probes in [
        None,
        Some(Arc::new(Probes::from_iter([(
            "198.18.0.1".parse().unwrap(),
            probe(&[], 3),
        )]))),
    ] {
        let r = rank(SITE, pops.clone(), probes, vec![]);
        assert_eq!(r.basis, Basis::Distance);
        assert_eq!(ranked_cities(&r), ["Near", "Far"]);
        assert_eq!(r.pops[0].score, Some(r.pops[0].distance_km));
    }
}

#[test]
fn twenty_percent_loss_never_beats_a_clean_pop_within_50_ms() {
    // The worst case for the clean PoP: 50 ms slower and very jittery; the lossy one smooth.
    let clean = RttStats {
        min: Duration::from_millis(50),
        median: Duration::from_millis(50),
        max: Duration::from_millis(500),
        jitter: Duration::from_millis(400),
    };
    let lossy = RttStats {
        jitter: Duration::ZERO,
        median: Duration::ZERO,
        ..clean
    };
    assert!(endpoint_score(&clean, 0.0) < endpoint_score(&lossy, 0.2));
}

fn arb_measure() -> impl Strategy<Value = (f64, f64, f64, f64)> {
    // median ms, jitter ms, loss, longitude (distance from the site on the equator)
    (
        0.1f64..400.0,
        0.0f64..100.0,
        prop_oneof![Just(0.0), Just(0.2), Just(0.4), 0.0f64..0.99],
        0.0f64..179.0,
    )
}

fn measured(
    i: usize,
    (median, jitter, loss, lon): (f64, f64, f64, f64),
) -> ((Pop, Vec<Endpoint>), (IpAddr, Probe)) {
    let city = format!("City{i}");
    let ip: IpAddr = format!("198.18.{}.{}", i / 250, i % 250 + 1)
        .parse()
        .unwrap();
    let sent = 10u32;
    let received = ((1.0 - loss) * f64::from(sent)).round().max(1.0) as u32;
    let d = |ms: f64| Duration::from_secs_f64(ms / 1000.0);
    // RTTs alternating median ± jitter/2 have this median and (about) this jitter.
    let rtts: Vec<Duration> = (0..received)
        .map(|k| {
            if k % 2 == 0 {
                d(median)
            } else {
                d(median + jitter)
            }
        })
        .collect();
    let p = Probe {
        sent,
        received,
        rtts: rtts.into(),
        error: None,
    };
    (
        (pop(&city, 0.0, lon), vec![endpoint(&city, &ip.to_string())]),
        (ip, p),
    )
}

proptest! {
    /// The ranking is a total order: the same PoPs in any input order give the same ranking,
    /// ranks are 1..=n, reachable PoPs come first, and neighbours compare consistently.
    #[test]
    fn ranking_is_a_total_order(measures in prop::collection::vec(arb_measure(), 1..25), silent in prop::collection::vec(0.0f64..179.0, 0..5), seed in any::<u64>()) {
        let mut pops = Vec::new();
        let mut probes = Probes::default();
        for (i, m) in measures.iter().enumerate() {
            let (p, (ip, pr)) = measured(i, *m);
            pops.push(p);
            probes.insert(ip, pr);
        }
        for (j, lon) in silent.iter().enumerate() {
            let city = format!("Silent{j}");
            pops.push((pop(&city, 0.0, *lon), vec![endpoint(&city, &format!("198.19.0.{}", j + 1))]));
        }
        let probes = Arc::new(probes);
        let a = rank(SITE, pops.clone(), Some(probes.clone()), vec![]);
        let mut shuffled = pops;
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        let b = rank(SITE, shuffled, Some(probes), vec![]);
        prop_assert_eq!(ranked_cities(&a), ranked_cities(&b));
        prop_assert_eq!(a.pops.iter().map(|p| p.rank).collect::<Vec<_>>(), (1..=a.pops.len()).collect::<Vec<_>>());
        for w in a.pops.windows(2) {
            prop_assert!(compare(&w[0], &w[1]) != Ordering::Greater);
            prop_assert_eq!(compare(&w[0], &w[1]), compare(&w[1], &w[0]).reverse());
            prop_assert!(w[0].reachable || !w[1].reachable, "unreachable before reachable");
        }
    }

    /// A PoP better on every measure (lower median, jitter, loss; nearer) never ranks lower.
    #[test]
    fn a_dominating_pop_never_ranks_lower(worse in arb_measure(), gains in (0.01f64..100.0, 0.0f64..50.0, 0.0f64..0.5, 0.01f64..50.0), others in prop::collection::vec(arb_measure(), 0..10)) {
        let (median, jitter, loss, lon) = worse;
        let better = ((median - gains.0).max(0.05), (jitter - gains.1).max(0.0), (loss - gains.2).max(0.0), (lon - gains.3).max(0.0));
        prop_assume!(better.0 < median || better.3 < lon);
        let mut pops = Vec::new();
        let mut probes = Probes::default();
        for (i, m) in [better, worse].into_iter().chain(others).enumerate() {
            let (p, (ip, pr)) = measured(i, m);
            pops.push(p);
            probes.insert(ip, pr);
        }
        let r = rank(SITE, pops, Some(Arc::new(probes)), vec![]);
        let position = |city: &str| r.pops.iter().position(|p| *p.pop.city == *city).unwrap();
        prop_assert!(position("City0") < position("City1"));
    }
}

#[test]
fn an_address_whose_pop_refused_the_tunnel_ranks_as_silent_for_that_location_only() {
    let survey = Survey {
        pops: vec![
            (pop("Near", 0.0, 1.0), vec![endpoint("Near", "198.18.0.1")]),
            (pop("Far", 0.0, 2.0), vec![endpoint("Far", "198.18.0.2")]),
        ],
        answers: HashMap::new(),
        probes: Some(
            [
                ("198.18.0.1".parse().unwrap(), probe(&[5.0, 5.0], 0)),
                ("198.18.0.2".parse().unwrap(), probe(&[20.0, 20.0], 0)),
            ]
            .into_iter()
            .collect::<Probes>()
            .into(),
        ),
    };
    let location = |name: &str| Location {
        name: name.into(),
        location_id: "id".into(),
        site: SITE,
        local: true,
        tunnels: vec![],
        local_ts: vec![],
        remote_ts: vec![],
    };
    let refused: Refusals = [("here".to_owned(), vec!["198.18.0.1".parse().unwrap()])].into();
    let rankings = rank_locations(
        &[location("here"), location("there")],
        &survey,
        &[],
        &refused,
    );
    let here = &rankings[0].1;
    assert_eq!(ranked_cities(here), ["Far", "Near"]);
    assert!(!here.pops[1].reachable);
    let error = here
        .probe(&here.pops[1].endpoints[0])
        .unwrap()
        .error
        .as_ref();
    assert_eq!(error.unwrap().to_string(), "its PoP refused the tunnel");
    assert_eq!(
        ranked_cities(&rankings[1].1),
        ["Near", "Far"],
        "another location's own"
    );
}

/// The ranking computed the plain way: each endpoint's score recomputed wherever it is needed,
/// the ranked PoPs themselves sorted by [`compare`].
fn ranked_the_plain_way(
    site: Site,
    pops: Vec<(Pop, Vec<Endpoint>)>,
    probes: Option<&Probes>,
) -> Vec<RankedPop> {
    let probe = |e: &Endpoint| probes.and_then(|p| p.get(&e.ip));
    let score = |e: &Endpoint| {
        let probe = probe(e)?;
        Some(endpoint_score(&probe.stats()?, probe.loss()))
    };
    let mut ranked: Vec<RankedPop> = pops
        .into_iter()
        .map(|(pop, endpoints)| {
            let best = endpoints
                .iter()
                .enumerate()
                .filter_map(|(i, e)| score(e).map(|s| (i, s)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            let best_probe = best.and_then(|i| probe(&endpoints[i]));
            RankedPop {
                rank: 0,
                distance_km: distance_km(site, &pop),
                reachable: best.is_some(),
                loss: best_probe.map_or(1.0, Probe::loss),
                score: best.and_then(|i| score(&endpoints[i])),
                rtt: best_probe.and_then(Probe::stats),
                best: best.or((!endpoints.is_empty()).then_some(0)),
                pop,
                endpoints,
            }
        })
        .collect();
    if !ranked.iter().any(|p| p.reachable) {
        for p in &mut ranked {
            p.score = Some(p.distance_km);
        }
    }
    ranked.sort_by(compare);
    for (i, p) in ranked.iter_mut().enumerate() {
        p.rank = i + 1;
    }
    ranked
}

proptest! {
    /// The ranking is the plain one: the same best endpoints, scores and order, ties and PoPs
    /// listed twice included, whatever the order of the probe results (the rank core reads them
    /// in the endpoints' order first).
    #[test]
    fn ranking_is_the_plain_ranking(
        pops in prop::collection::vec(
            (0u8..6, 0u8..3, prop::collection::vec((0u8..12, prop::collection::vec(0u8..4, 0..6), 0u32..3), 0..4)),
            0..30,
        ),
        probed in any::<bool>(),
        probes_order in 0u8..3,
    ) {
        let mut input = Vec::new();
        let mut probes = Probes::default();
        for (city, lon, endpoints) in &pops {
            let city = format!("City{city}");
            let mut listed = Vec::new();
            for (host, rtts, lost) in endpoints {
                let ip = format!("198.18.0.{host}");
                let rtts: Vec<f64> = rtts.iter().map(|&r| f64::from(r) * 10.0).collect();
                probes.insert(ip.parse().unwrap(), probe(&rtts, *lost));
                listed.push(endpoint(&city, &ip));
            }
            input.push((pop(&city, 0.0, f64::from(*lon)), listed));
        }
        match probes_order {
            0 => {}
            1 => probes.reverse(),
            _ => probes.sort_unstable_keys(),
        }
        let probes = probed.then(|| Arc::new(probes));
        let ranking = rank(SITE, input.clone(), probes.clone(), vec![]);
        prop_assert_eq!(ranking.pops, ranked_the_plain_way(SITE, input, probes.as_deref()));
    }
}

#[test]
fn sort_keys_order_floats_as_total_cmp_does() {
    let floats = [
        f64::NEG_INFINITY,
        -1e300,
        -2.5,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        0.8,
        12.25,
        1e300,
        f64::INFINITY,
        f64::NAN,
    ];
    for a in floats {
        for b in floats {
            assert_eq!(ordered(a).cmp(&ordered(b)), a.total_cmp(&b), "{a} vs {b}");
        }
    }
}
