//! The 10,000-PoP catalogue the rank-core benchmarks share (`rank.rs`, `rank_parts.rs`): the
//! document as the API sends it, a probe result for each of its addresses, and its PoPs with
//! their endpoints as the survey hands them to the rank stage.

use std::collections::HashMap;
use std::time::Duration;

use popsel::catalog::{Catalog, Pop};
use popsel::location::Site;
use popsel::probe::{Probe, Probes};
use popsel::resolve::{self, Answer, Endpoint};

pub const POPS: usize = 10_000;

pub const SITE: Site = Site {
    latitude: 41.88,
    longitude: -87.63,
};

/// A catalogue of `POPS` PoPs spread over the globe, two FQDNs each, as the API sends it.
pub fn catalogue_json() -> String {
    let mut countries = Vec::new();
    for c in 0..100 {
        let mut locations = Vec::new();
        for k in 0..POPS / 100 {
            let n = c * 100 + k;
            let ip = |j: usize| {
                format!(
                    "198.{}.{}.{}",
                    18 + (n * 2 + j) / 65_536 % 2,
                    (n * 2 + j) / 256 % 256,
                    (n * 2 + j) % 256
                )
            };
            let provider = ["AWS", "Azure", "GCP"][n % 3];
            locations.push(serde_json::json!({
                "city": format!("City {n}"),
                "latitude": format!("{:.2}", (n as f64 * 0.017).sin() * 80.0),
                "longitude": format!("{:.2}", (n as f64 * 0.031).cos() * 179.0),
                "provider": provider,
                "fqdn": [
                    {"name": format!("ipsec-{n}-1.pops.popsel.test"), "ip": [ip(0)]},
                    {"name": format!("ipsec-{n}-2.pops.popsel.test"), "ip": [ip(1)]}
                ]
            }));
        }
        countries.push(serde_json::json!({"country": format!("C{c}"), "locations": locations}));
    }
    serde_json::json!({ "ipSecLocations": countries }).to_string()
}

/// A probe result for every address: most answer, some lose, some are silent.
pub fn probes(catalog: &Catalog) -> Probes {
    let mut out = Probes::default();
    for (i, ip) in catalog
        .pops
        .iter()
        .flat_map(|p| p.fqdns.iter().flat_map(|f| f.ips.iter()))
        .enumerate()
    {
        let rtts: Vec<Duration> = match i % 10 {
            0 => vec![],
            1 => (0..4)
                .map(|k| Duration::from_micros(20_000 + k * 300))
                .collect(),
            _ => (0..5)
                .map(|k| Duration::from_micros(5_000 + (i as u64 * 37) % 200_000 + k * 100))
                .collect(),
        };
        out.insert(
            *ip,
            Probe {
                sent: 5,
                received: rtts.len() as u32,
                rtts: rtts.into(),
                error: None,
            },
        );
    }
    out
}

/// Each PoP with its endpoints, as the survey hands them to the rank stage (no DNS).
pub fn surveyed(pops: Vec<Pop>) -> Vec<(Pop, Vec<Endpoint>)> {
    let no_dns: HashMap<String, Answer> = HashMap::new();
    pops.into_iter()
        .map(|p| {
            let e = resolve::endpoints(&p, &no_dns);
            (p, e)
        })
        .collect()
}
