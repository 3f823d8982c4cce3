//! Ranking a 10,000-PoP catalogue: parse the JSON document, validate it, score and sort.
//! `cargo bench --bench rank`. Probing and DNS are not part of it: they are measured against
//! fping in the latency lab.
//!
//! Groups:
//! - `rank 10k PoPs`: the whole (the README's figure), then each step on its own so that a
//!   regression shows where it is;
//! - `parse 10k-PoP document`: our parse next to serde_json's own on the same bytes (a
//!   `serde_json::Value`, and a minimal typed struct with no validation), in MB/s.

#[path = "support/rank_catalogue.rs"]
mod rank_catalogue;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use popsel::atmos::types::PopDocument;
use popsel::catalog::Catalog;
use popsel::rank::rank;
use serde::Deserialize;
use serde_json::value::RawValue;

use rank_catalogue::{POPS, SITE, catalogue_json, probes, surveyed};

fn rank_catalogue(c: &mut Criterion) {
    let text = catalogue_json();
    let catalog = Catalog::from_json(&text).expect("catalogue");
    assert_eq!(catalog.pops.len(), POPS);
    let probes = std::sync::Arc::new(probes(&catalog));
    let mut group = c.benchmark_group("rank 10k PoPs");
    group.bench_function("parse + validate + score + sort", |b| {
        b.iter(|| {
            let catalog = Catalog::from_json(black_box(&text)).expect("catalogue");
            let pops = surveyed(catalog.pops);
            black_box(rank(SITE, pops, Some(probes.clone()), catalog.skipped))
        })
    });
    group.bench_function("parse + validate (Catalog::from_json)", |b| {
        b.iter(|| Catalog::from_json(black_box(&text)).expect("catalogue"))
    });
    group.bench_function("endpoints (resolve::endpoints, no DNS)", |b| {
        b.iter_batched(
            || catalog.pops.clone(),
            |pops| black_box(surveyed(pops)),
            BatchSize::LargeInput,
        )
    });
    let pops = surveyed(catalog.pops.clone());
    group.bench_function("score + sort (rank)", |b| {
        b.iter_batched(
            || pops.clone(),
            |pops| black_box(rank(SITE, pops, Some(probes.clone()), Vec::new())),
            BatchSize::LargeInput,
        )
    });
    // The agent reads the API's answer straight into the catalogue and keeps the text (checked
    // as JSON) for its cache; it went through `PopDocument` before (the next line's figure).
    group.bench_function("agent's path: Catalog::from_json + the text kept", |b| {
        b.iter(|| {
            let text = black_box(&text);
            let catalog = Catalog::from_json(text).expect("catalogue");
            (catalog, RawValue::from_string(text.clone()).expect("json"))
        })
    });
    group.bench_function(
        "a cached catalogue: PopDocument + Catalog::from_document",
        |b| {
            b.iter(|| {
                let document: PopDocument =
                    serde_json::from_slice(black_box(text.as_bytes())).expect("document");
                Catalog::from_document(&document)
            })
        },
    );
    group.finish();
}

/// serde_json into the catalogue's shape with nothing checked: the floor a typed parse of the
/// same bytes can reach.
#[derive(Deserialize)]
struct MinimalDocument {
    #[serde(rename = "ipSecLocations")]
    _countries: Vec<MinimalCountry>,
}

#[derive(Deserialize)]
struct MinimalCountry {
    #[serde(rename = "country")]
    _country: String,
    #[serde(rename = "locations")]
    _locations: Vec<MinimalLocation>,
}

#[derive(Deserialize)]
struct MinimalLocation {
    #[serde(rename = "city")]
    _city: String,
    #[serde(rename = "latitude")]
    _latitude: String,
    #[serde(rename = "longitude")]
    _longitude: String,
    #[serde(rename = "provider")]
    _provider: String,
    #[serde(rename = "fqdn")]
    _fqdn: Vec<MinimalFqdn>,
}

#[derive(Deserialize)]
struct MinimalFqdn {
    #[serde(rename = "name")]
    _name: String,
    #[serde(rename = "ip")]
    _ip: Vec<String>,
}

fn parse_throughput(c: &mut Criterion) {
    let text = catalogue_json();
    let mut group = c.benchmark_group("parse 10k-PoP document");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("popsel Catalog::from_json (parse + validate)", |b| {
        b.iter(|| Catalog::from_json(black_box(&text)).expect("catalogue"))
    });
    group.bench_function("serde_json::Value", |b| {
        b.iter(|| {
            serde_json::from_slice::<serde_json::Value>(black_box(text.as_bytes())).expect("json")
        })
    });
    group.bench_function("serde_json minimal typed struct", |b| {
        b.iter(|| {
            serde_json::from_slice::<MinimalDocument>(black_box(text.as_bytes())).expect("json")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8));
    targets = rank_catalogue, parse_throughput
}
criterion_main!(benches);
