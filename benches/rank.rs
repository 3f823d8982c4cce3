//! Ranking a 10,000-PoP catalogue: parse the JSON document, validate it, score and sort.
//! `cargo bench --bench rank`. Probing and DNS are not part of it: they are measured against
//! fping in the latency lab.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use popsel::catalog::Catalog;
use popsel::location::Site;
use popsel::probe::Probe;
use popsel::rank::rank;
use popsel::resolve::{self, Answer};

const POPS: usize = 10_000;

/// A catalogue of `POPS` PoPs spread over the globe, two FQDNs each, as the API sends it.
fn catalogue_json() -> String {
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
fn probes(catalog: &Catalog) -> HashMap<IpAddr, Probe> {
    let mut out = HashMap::new();
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
                rtts,
                error: None,
            },
        );
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = catalogue_json();
    let catalog = Catalog::from_json(&text).expect("catalogue");
    assert_eq!(catalog.pops.len(), POPS);
    let probes = probes(&catalog);
    let site = Site {
        latitude: 41.88,
        longitude: -87.63,
    };
    let no_dns: HashMap<String, Answer> = HashMap::new();
    c.bench_function("rank 10k PoPs (parse + score + sort)", |b| {
        b.iter(|| {
            let catalog = Catalog::from_json(black_box(&text)).expect("catalogue");
            let pops = catalog
                .pops
                .into_iter()
                .map(|p| {
                    let e = resolve::endpoints(&p, &no_dns);
                    (p, e)
                })
                .collect();
            black_box(rank(site, pops, Some(&probes), catalog.skipped))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8));
    targets = bench
}
criterion_main!(benches);
