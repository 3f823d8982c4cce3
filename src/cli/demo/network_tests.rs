use super::*;
use crate::location::Site;
use crate::rank::RankedPop;

const CHICAGO: Site = Site {
    latitude: 41.88,
    longitude: -87.63,
};

fn sample_world() -> World {
    let pops = Catalog::from_json(crate::sim::SAMPLE_CATALOG)
        .expect("the sample parses")
        .pops;
    World::from_catalog(CHICAGO, pops, SEED, true)
}

/// A ranking of `world`'s PoPs in `order` (indices), the last `silent` of them unreachable.
fn ranking(world: &World, order: &[usize], basis: Basis, silent: usize) -> Ranking {
    let reachable = order.len() - silent;
    Ranking {
        site: CHICAGO,
        basis,
        probes: (basis == Basis::Latency).then(Default::default),
        pops: order
            .iter()
            .enumerate()
            .map(|(k, &i)| RankedPop {
                rank: k + 1,
                pop: world.pops[i].pop.clone(),
                distance_km: world.pops[i].distance_km,
                reachable: k < reachable,
                loss: 0.0,
                score: None,
                rtt: None,
                best: None,
                endpoints: Vec::new(),
            })
            .collect(),
        skipped: Vec::new(),
    }
}

#[test]
fn ordinals_read_as_english() {
    let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111]
        .into_iter()
        .map(ordinal)
        .collect();
    assert_eq!(
        got,
        [
            "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st",
            "111th"
        ]
    );
}

#[test]
fn the_contrast_names_the_nearest_pop_and_where_latency_put_it() {
    let world = sample_world();
    let a = world.anomalies.clone().expect("anomalies");
    // As measured: by expected score, the silent PoP last.
    let mut order: Vec<usize> = world
        .expected_order(false)
        .into_iter()
        .map(|e| e.pop)
        .filter(|&i| i != a.silent)
        .collect();
    order.push(a.silent);
    let congested_rank = 1 + order
        .iter()
        .position(|&i| i == a.congested)
        .expect("ranked");
    let lossy_rank = 1 + order.iter().position(|&i| i == a.lossy).expect("ranked");
    let text = contrast(&world, &ranking(&world, &order, Basis::Latency, 1)).expect("a sentence");
    assert!(
        text.contains(&format!(
            "US/Chicago, Illinois/GCP (0 km) would rank 1st by distance, but this emulated network congests it (+60 ms ±8 ms) and it ranks {} by measured latency",
            ordinal(congested_rank)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "CA/Toronto, Ontario/AWS loses 40% of its echo requests ({})",
            ordinal(lossy_rank)
        )),
        "{text}"
    );
    assert!(
        text.contains("US/Ashburn, Virginia/AWS does not answer (unreachable)"),
        "{text}"
    );
}

#[test]
fn a_distance_ranking_gets_no_contrast() {
    let world = sample_world();
    let order: Vec<usize> = (0..world.pops.len()).collect();
    assert_eq!(
        contrast(&world, &ranking(&world, &order, Basis::Distance, 0)),
        None
    );
}
