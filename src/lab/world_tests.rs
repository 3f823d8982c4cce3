use super::*;

fn chicago() -> Site {
    Site {
        latitude: 41.88,
        longitude: -87.63,
    }
}

#[test]
fn addresses_fill_the_benchmarking_range_in_order() {
    assert_eq!(address(0), Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(address(253), Ipv4Addr::new(198, 18, 0, 254));
    assert_eq!(address(254), Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(address(254 * 256), Ipv4Addr::new(198, 19, 0, 1));
    let last = address(MAX_ADDRESSES - 1);
    assert!(last < DNS_ONLY_FIRST && last < LAB_ADDRESS, "{last}");
}

#[test]
fn slugs_are_dns_labels() {
    assert_eq!(slug("Chicago, Illinois"), "chicago");
    assert_eq!(slug("São Paulo, São Paulo"), "so-paulo");
    assert_eq!(slug("Bogotá"), "bogot");
    assert_eq!(slug("AWS-2"), "aws-2");
}

#[test]
fn the_same_seed_makes_the_same_world() {
    let a = World::generate(Spec::new(chicago(), 60));
    assert_eq!(a, World::generate(Spec::new(chicago(), 60)));
    let other = World::generate(Spec {
        seed: 2,
        ..Spec::new(chicago(), 60)
    });
    assert_ne!(a.pops, other.pops);
}

#[test]
fn the_catalogue_parses_and_matches_the_world() {
    let world = World::generate(Spec::new(chicago(), 100));
    let catalog = Catalog::from_json(&world.catalog_json()).expect("parses");
    assert!(catalog.skipped.is_empty(), "{:?}", catalog.skipped);
    assert_eq!(catalog.pops.len(), 100);
    for p in &catalog.pops {
        assert!(world.pops.iter().any(|w| w.pop == *p), "{p:?}");
    }
    // Every (city, provider) pair and every address is distinct.
    let mut pairs: Vec<_> = world
        .pops
        .iter()
        .map(|p| (&p.pop.city, &p.pop.provider))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 100);
    assert_eq!(world.targets(false).len(), 200);
    assert_eq!(world.targets(true).len(), 201, "plus the DNS-only address");
}

#[test]
fn delay_follows_distance() {
    let world = World::generate(Spec {
        anomalies: false,
        ..Spec::new(chicago(), 48)
    });
    for (i, p) in world.pops.iter().enumerate() {
        let first = world.listed(i)[0];
        let want = BASE_MS + MS_PER_KM * p.distance_km;
        let got = ms(world.links[&first].delay);
        assert!(
            (got - want).abs() < 0.001,
            "{}: {got} vs {want}",
            p.pop.city
        );
    }
    let chicago = world.find("Chicago, Illinois", "AWS").expect("Chicago");
    assert!(world.pops[chicago].distance_km < 1.0);
    assert!((ms(world.links[&world.listed(chicago)[0]].delay) - 2.0).abs() < 0.01);
    // Sydney is about 14,900 km from Chicago: about 225 ms.
    let sydney = world
        .find("Sydney, New South Wales", "AWS")
        .expect("Sydney");
    let d = ms(world.links[&world.listed(sydney)[0]].delay);
    assert!((215.0..235.0).contains(&d), "{d}");
}

#[test]
fn more_pops_than_cities_use_more_providers() {
    let world = World::generate(Spec::new(chicago(), 1500));
    assert_eq!(world.pops.len(), 1500);
    assert_eq!(&*world.pops[1499].pop.provider, "Linode-4");
    assert_eq!(
        world.zone.len(),
        3000 - 1,
        "distinct names, less the NXDOMAIN one"
    );
    assert_eq!(world.targets(false).len(), 3000);
}

#[test]
fn anomalies_and_expected_order() {
    let world = World::generate(Spec::new(chicago(), 48));
    let a = world.anomalies.clone().expect("anomalies");
    let city = |i: usize| world.pops[i].pop.city.as_str();
    assert_eq!(city(a.congested), "Chicago, Illinois");
    assert_eq!(city(a.lossy), "Toronto, Ontario");
    assert_eq!(city(a.silent), "Ashburn, Virginia");
    // The silent PoP's addresses are absent from the responder table.
    assert!(
        world
            .listed(a.silent)
            .iter()
            .all(|ip| !world.links.contains_key(ip))
    );
    // The DNS-only address answers and is only in the zone.
    assert!(world.links.contains_key(&a.dns_only_address));
    assert!(world.zone[&a.dns_extra_fqdn].contains(&a.dns_only_address));
    assert!(!world.targets(false).contains(&a.dns_only_address));
    assert!(world.targets(true).contains(&a.dns_only_address));
    assert!(!world.zone.contains_key(&a.nxdomain_fqdn));

    let order = world.expected_order(true);
    let rank = |pop: usize| order.iter().position(|e| e.pop == pop).expect("ranked");
    assert_ne!(
        order[0].pop, a.congested,
        "the congested nearest PoP is not first"
    );
    assert_eq!(order.last().map(|e| e.pop), Some(a.silent), "silent last");
    assert!(order[..order.len() - 1].iter().all(|e| e.score.is_some()));
    let lossy = world.expected_score(a.lossy, true).expect("lossy answers");
    let base = lossy - 500.0 * LOSSY_LOSS;
    for e in &order {
        if e.pop != a.lossy && e.score.is_some_and(|s| s <= base + 50.0) {
            assert!(rank(e.pop) < rank(a.lossy));
        }
    }
    // Congested: +60 ms and 0.2 × 2/3 × 8 ms of jitter.
    let congested = world.expected_score(a.congested, true).expect("answers");
    assert!((congested - (2.0 + 60.0 + 0.2 * 16.0 / 3.0)).abs() < 0.01);
}

#[test]
fn expected_scores_follow_the_documented_formula() {
    let link = Link {
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(3),
        loss: 0.2,
    };
    assert!((link.expected_score().unwrap() - (30.0 + 100.0 + 0.4)).abs() < 1e-9);
    let huge = Link {
        jitter: Duration::from_millis(300),
        loss: 0.0,
        ..link
    };
    assert!((huge.expected_score().unwrap() - (30.0 + 10.0)).abs() < 1e-9);
    let dead = Link { loss: 1.0, ..link };
    assert_eq!(dead.expected_score(), None);
}

#[test]
fn new_specs_lose_evenly() {
    assert_eq!(Spec::new(chicago(), 10).loss, LossMode::Even);
    let world = World::generate(Spec::new(chicago(), 48));
    assert_eq!(world.describe(false)["loss_mode"], "even");
    assert!(world.lossy_neighbour.is_none());
}

#[test]
fn the_lossy_neighbour_world_has_its_roles_and_truth() {
    let world = World::lossy_neighbour(chicago(), NEIGHBOUR_POPS, 1);
    assert_eq!(world, World::lossy_neighbour(chicago(), NEIGHBOUR_POPS, 1));
    assert_eq!(world.spec.loss, LossMode::Random);
    assert_eq!(world.pops.len(), 45);
    assert_eq!(world.targets(false).len(), 90);
    assert!(world.anomalies.is_none());
    let n = world.lossy_neighbour.expect("roles");
    let first = |i: usize| ms(world.links[&world.listed(i)[0]].delay);
    let best = first(n.best);
    assert!(
        (best - 2.0).abs() < 0.01,
        "Chicago, seen from Chicago: {best}"
    );

    // The lossy PoP: under 1 ms behind the best, both addresses 40% lossy; 200 ms out.
    assert!(first(n.lossy) > best && first(n.lossy) < best + 1.0);
    for ip in world.listed(n.lossy) {
        assert_eq!(world.links[&ip].loss, LOSSY_LOSS);
    }
    let lossy = world.expected_score(n.lossy, false).expect("answers");
    assert!(lossy > best + 200.0, "{lossy}");
    // The close pair: within 1 ms of each other, just behind.
    let [a, b] = n.close.map(first);
    assert!(
        best < a && a < b && b - a < 1.0 && b < best + 3.0,
        "{a} {b}"
    );
    // The silent PoP answers nothing; every other address loses nothing.
    assert!(world.expected_score(n.silent, false).is_none());
    assert!(world.has_silent(false));
    for (i, _) in world.pops.iter().enumerate().filter(|(i, _)| *i != n.lossy) {
        for ip in world.listed(i) {
            assert!(world.links.get(&ip).is_none_or(|l| l.loss == 0.0));
        }
    }
    // Small jitter on every address.
    for link in world.links.values() {
        let j = ms(link.jitter);
        assert!((0.1..=0.3).contains(&j), "{j}");
    }

    // The truth: the best, then the close pair; everyone else well behind and apart.
    let order = world.expected_order(false);
    let top: Vec<usize> = order[..3].iter().map(|e| e.pop).collect();
    assert_eq!(top, [n.best, n.close[0], n.close[1]]);
    let scores: Vec<f64> = order.iter().filter_map(|e| e.score).collect();
    assert_eq!(scores.len(), 44);
    assert!(scores[3] >= best + REST_BEHIND_MS - 0.1, "{scores:?}");
    let rest: Vec<f64> = order
        .iter()
        .filter(|e| ![n.best, n.lossy, n.close[0], n.close[1], n.silent].contains(&e.pop))
        .map(|e| first(e.pop))
        .collect();
    assert_eq!(rest.len(), 40);
    for w in rest.windows(2) {
        assert!(w[1] - w[0] >= REST_GAP_MS - 0.001, "{w:?}");
    }
}

#[test]
fn the_description_names_each_target_s_pop_and_the_roles() {
    let world = World::lossy_neighbour(chicago(), NEIGHBOUR_POPS, 1);
    let n = world.lossy_neighbour.expect("roles");
    let doc = world.describe(false);
    assert_eq!(doc["loss_mode"], "random");
    let lossy = &world.pops[n.lossy].pop;
    assert_eq!(doc["lossy_neighbour"]["lossy"]["city"], lossy.city.as_str());
    assert_eq!(
        doc["lossy_neighbour"]["close"][1]["provider"],
        world.pops[n.close[1]].pop.provider.as_str()
    );
    let targets = doc["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 90);
    for t in targets {
        let ip: Ipv4Addr = t["ip"].as_str().unwrap().parse().unwrap();
        let i = world
            .find(
                t["pop"]["city"].as_str().unwrap(),
                t["pop"]["provider"].as_str().unwrap(),
            )
            .expect("a PoP of the world");
        assert!(world.listed(i).contains(&ip));
    }
    // The standard world's DNS-only address is its PoP's too.
    let standard = World::generate(Spec::new(chicago(), 48));
    let a = standard.anomalies.clone().expect("anomalies");
    let doc = standard.describe(true);
    let extra = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["ip"] == a.dns_only_address.to_string())
        .expect("the DNS-only address");
    assert_eq!(
        extra["pop"]["city"],
        standard.pops[a.dns_extra_pop].pop.city.as_str()
    );
}

#[test]
fn a_catalogue_keeps_its_pops_and_addresses_and_answers_by_distance() {
    let catalog = Catalog::from_json(crate::sim::SAMPLE_CATALOG).expect("the sample parses");
    let world = World::from_catalog(chicago(), catalog.pops.clone(), 1, false);
    assert_eq!(world.pops.len(), catalog.pops.len());
    for (w, pop) in world.pops.iter().zip(&catalog.pops) {
        assert_eq!(&w.pop, pop);
    }
    // Every listed address answers, after the documented delay; a PoP's provider round is
    // its place among its city's PoPs.
    let ashburn_azure = world
        .find("Ashburn, Virginia", "Azure")
        .expect("in the sample");
    assert_eq!(world.pops[ashburn_azure].round, 1);
    for (i, w) in world.pops.iter().enumerate() {
        for (k, ip) in world.listed(i).into_iter().enumerate() {
            let expected = BASE_MS
                + MS_PER_KM * w.distance_km
                + PROVIDER_STEP_MS * w.round as f64
                + FQDN_STEP_MS * k as f64;
            let link = world
                .links
                .get(&ip)
                .unwrap_or_else(|| panic!("{ip} is silent"));
            assert!(
                (ms(link.delay) - expected).abs() < 0.001,
                "{ip}: {link:?} vs {expected}"
            );
        }
    }
    assert_eq!(world.targets(false).len(), 104);
}

#[test]
fn a_catalogue_seen_from_chicago_has_the_anomalies_on_its_nearest_pops() {
    let catalog = Catalog::from_json(crate::sim::SAMPLE_CATALOG).expect("the sample parses");
    let world = World::from_catalog(chicago(), catalog.pops, 1, true);
    let a = world.anomalies.as_ref().expect("anomalies");
    let id = |i: usize| world.pops[i].pop.id().to_string();
    assert_eq!(id(a.congested), "US/Chicago, Illinois/GCP");
    assert_eq!(id(a.lossy), "CA/Toronto, Ontario/AWS");
    assert_eq!(id(a.silent), "US/Ashburn, Virginia/AWS");
    // So the nearest PoP is not the best: by latency, Atlanta is.
    let order = world.expected_order(false);
    assert_eq!(id(order[0].pop), "US/Atlanta, Georgia/GCP");
    let congested_place = order
        .iter()
        .position(|e| e.pop == a.congested)
        .expect("ranked");
    assert!(congested_place >= 5, "{congested_place}");
}

#[test]
fn a_catalogue_address_outside_the_range_stays_silent_and_few_pops_have_no_anomalies() {
    let pop = |city: &str, ip: &str| Pop {
        country: "US".into(),
        city: city.into(),
        provider: "AWS".into(),
        latitude: 41.0,
        longitude: -87.0,
        fqdns: vec![ListedFqdn {
            name: format!("{city}.example").into(),
            ips: [ip.parse().expect("an address")].into(),
        }],
    };
    let world = World::from_catalog(
        chicago(),
        vec![
            pop("A", "192.0.2.1"),
            pop("B", "198.19.255.254"),
            pop("C", "198.18.0.9"),
        ],
        1,
        true,
    );
    assert_eq!(
        world.links.keys().collect::<Vec<_>>(),
        [&Ipv4Addr::new(198, 18, 0, 9)]
    );
    assert!(world.anomalies.is_none());
}
