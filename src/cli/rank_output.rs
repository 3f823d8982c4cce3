//! How `popsel rank` prints a ranking. The JSON form is a stable interface (README, "popsel
//! rank JSON"): add fields, never rename or remove them.

use serde::Serialize;
use serde_json::json;

use super::Table;
use crate::probe::RttStats;
use crate::rank::contenders::score_range;
use crate::rank::{Basis, MeasuredEndpoint, RankedPop, Ranking};

/// Totals for the footer, taken before `--top` cuts the list.
pub struct Counts {
    pops: usize,
    endpoints: usize,
    skipped: usize,
    unreachable: usize,
    probed: bool,
}

impl Counts {
    pub fn of(r: &Ranking) -> Counts {
        Counts {
            pops: r.pops.len(),
            endpoints: r.endpoint_count(),
            skipped: r.skipped.len(),
            unreachable: r.unreachable(),
            probed: r.probed,
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    // Microsecond precision is all ICMP timing is worth.
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn rtt_json(rtt: Option<RttStats>) -> serde_json::Value {
    match rtt {
        Some(s) => json!({
            "min": ms(s.min), "median": ms(s.median), "max": ms(s.max), "jitter": ms(s.jitter)
        }),
        None => serde_json::Value::Null,
    }
}

fn endpoint_json(e: &MeasuredEndpoint) -> serde_json::Value {
    let probe = e.probe.as_ref();
    json!({
        "fqdn": e.endpoint.fqdn,
        "ip": e.endpoint.ip,
        "source": e.endpoint.source,
        "reachable": probe.is_some_and(|p| p.reachable()),
        "loss": probe.map(|p| round(p.loss(), 4)),
        "rtt_ms": rtt_json(probe.and_then(|p| p.stats())),
        "sent": probe.map(|p| p.sent),
        "received": probe.map(|p| p.received),
    })
}

/// The plausible range of a PoP's score (its best endpoint's): see `rank::contenders`.
fn score_range_json(p: &RankedPop) -> serde_json::Value {
    let range = p
        .best_endpoint()
        .and_then(|e| e.probe.as_ref())
        .and_then(|probe| score_range(&probe.rtts, probe.sent));
    match range {
        Some((low, high)) => json!({"low": round(low, 3), "high": round(high, 3)}),
        None => serde_json::Value::Null,
    }
}

fn pop_json(p: &RankedPop) -> serde_json::Value {
    json!({
        "rank": p.rank,
        "city": p.pop.city,
        "country": p.pop.country,
        "provider": p.pop.provider,
        "latitude": p.pop.latitude,
        "longitude": p.pop.longitude,
        "distance_km": round(p.distance_km, 1),
        "reachable": p.reachable,
        "loss": round(p.loss, 4),
        "score": p.score.map(|s| round(s, 3)),
        "score_range_ms": score_range_json(p),
        "rtt_ms": rtt_json(p.rtt),
        "endpoint": p.best_endpoint().map(|e| json!({"fqdn": e.endpoint.fqdn, "ip": e.endpoint.ip})),
        "endpoints": p.endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
    })
}

#[derive(Serialize)]
struct SiteJson {
    latitude: f64,
    longitude: f64,
}

pub fn json(r: &Ranking) -> String {
    let doc = json!({
        "site": SiteJson { latitude: r.site.latitude, longitude: r.site.longitude },
        "basis": r.basis,
        "probed": r.probed,
        "pops": r.pops.iter().map(pop_json).collect::<Vec<_>>(),
        "skipped": r.skipped,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

fn cell_ms(d: Option<std::time::Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}", ms(d)))
}

pub fn table(r: &Ranking, counts: &Counts) -> String {
    let mut t = Table::new(&[
        "RANK",
        "CITY",
        "COUNTRY",
        "PROVIDER",
        "ENDPOINT",
        "IP",
        "MEDIAN ms",
        "JITTER ms",
        "LOSS",
        "DIST km",
        "SCORE",
    ]);
    for p in &r.pops {
        let best = p.best_endpoint();
        t.row(vec![
            p.rank.to_string(),
            p.pop.city.clone(),
            p.pop.country.clone(),
            p.pop.provider.clone(),
            best.map_or("-".into(), |e| e.endpoint.fqdn.clone()),
            best.map_or("-".into(), |e| e.endpoint.ip.to_string()),
            cell_ms(p.rtt.map(|s| s.median)),
            cell_ms(p.rtt.map(|s| s.jitter)),
            if p.reachable {
                format!("{:.0}%", p.loss * 100.0)
            } else {
                "-".into()
            },
            format!("{:.0}", p.distance_km),
            p.score.map_or("unreachable".into(), |s| format!("{s:.1}")),
        ]);
    }
    let basis = match r.basis {
        Basis::Latency => {
            "latency (score = median RTT ms + 500 × loss + 0.2 × jitter ms; distance breaks ties)"
        }
        Basis::Distance if counts.probed => "distance (no address answered ICMP; score = km)",
        Basis::Distance => "distance (not probed; score = km)",
    };
    let unreachable = if counts.probed {
        format!("{} unreachable", counts.unreachable)
    } else {
        "not probed".to_owned()
    };
    format!(
        "{}\n{} PoPs, {} endpoints, {} skipped, {unreachable}; basis: {basis}\n",
        t.render(),
        counts.pops,
        counts.endpoints,
        counts.skipped,
    )
}

/// RFC 4180 quoting where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn csv(r: &Ranking) -> String {
    let mut out = String::from(
        "rank,city,country,provider,fqdn,ip,reachable,median_ms,jitter_ms,loss,distance_km,score\n",
    );
    for p in &r.pops {
        let best = p.best_endpoint();
        let fields = [
            p.rank.to_string(),
            p.pop.city.clone(),
            p.pop.country.clone(),
            p.pop.provider.clone(),
            best.map(|e| e.endpoint.fqdn.clone()).unwrap_or_default(),
            best.map(|e| e.endpoint.ip.to_string()).unwrap_or_default(),
            p.reachable.to_string(),
            p.rtt.map(|s| ms(s.median).to_string()).unwrap_or_default(),
            p.rtt.map(|s| ms(s.jitter).to_string()).unwrap_or_default(),
            round(p.loss, 4).to_string(),
            round(p.distance_km, 1).to_string(),
            p.score.map(|s| round(s, 3).to_string()).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "rank_output_tests.rs"]
mod tests;
