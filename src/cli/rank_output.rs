//! How `popsel rank` prints a ranking. The JSON form is a stable interface (README, "popsel
//! rank JSON"): add fields, never rename or remove them.
//!
//! What was not measured is never shown as a measure: an endpoint to which no echo request was
//! sent (`--no-probe`, no ICMP socket for its family) has no reachability and no loss (`null`
//! in JSON, an empty CSV field, `-` in the table), where one that was sent requests and never
//! answered is unreachable with a loss of 1. Decided here, from what each endpoint was sent.

use serde::Serialize;
use serde_json::json;

use super::Table;
use crate::probe::{Probe, RttStats};
use crate::rank::contenders::score_range;
use crate::rank::{Basis, RankedPop, Ranking};
use crate::resolve::Endpoint;

/// Totals for the footer, taken before `--top` cuts the list.
pub struct Counts {
    pops: usize,
    endpoints: usize,
    skipped: usize,
    /// Probed and never answered.
    unreachable: usize,
    /// Not sent a single request (no socket for their family, say) in a run that probed.
    unprobed: usize,
    probed: bool,
}

impl Counts {
    pub fn of(r: &Ranking) -> Counts {
        Counts {
            pops: r.pops.len(),
            endpoints: r.endpoint_count(),
            skipped: r.skipped.len(),
            unreachable: r
                .pops
                .iter()
                .filter(|p| probed(r, p) && !p.reachable)
                .count(),
            unprobed: r.pops.iter().filter(|p| !probed(r, p)).count(),
            probed: r.probed(),
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

/// What probing the endpoint found, if at least one echo request was sent to it.
fn measured<'a>(r: &'a Ranking, e: &Endpoint) -> Option<&'a Probe> {
    r.probe(e).filter(|p| p.sent > 0)
}

/// Whether any endpoint of the PoP was sent an echo request: only then do its reachability
/// and loss say something.
fn probed(r: &Ranking, p: &RankedPop) -> bool {
    p.endpoints.iter().any(|e| measured(r, e).is_some())
}

/// The PoP's reachability and loss (its best endpoint's), `None` when it was not probed.
fn reach_and_loss(r: &Ranking, p: &RankedPop) -> Option<(bool, f64)> {
    probed(r, p).then_some((p.reachable, p.loss))
}

fn endpoint_json(r: &Ranking, e: &Endpoint) -> serde_json::Value {
    let probe = r.probe(e);
    let measured = measured(r, e);
    json!({
        "fqdn": e.fqdn,
        "ip": e.ip,
        "source": e.source,
        "reachable": measured.map(Probe::reachable),
        "loss": measured.map(|p| round(p.loss(), 4)),
        "rtt_ms": rtt_json(probe.and_then(|p| p.stats())),
        "sent": probe.map(|p| p.sent),
        "received": probe.map(|p| p.received),
    })
}

/// The plausible range of a PoP's score (its best endpoint's): see `rank::contenders`.
fn score_range_json(r: &Ranking, p: &RankedPop) -> serde_json::Value {
    let range = p
        .best_endpoint()
        .and_then(|e| r.probe(e))
        .and_then(|probe| score_range(&probe.rtts, probe.sent));
    match range {
        Some((low, high)) => json!({"low": round(low, 3), "high": round(high, 3)}),
        None => serde_json::Value::Null,
    }
}

fn pop_json(r: &Ranking, p: &RankedPop) -> serde_json::Value {
    json!({
        "rank": p.rank,
        "city": p.pop.city,
        "country": p.pop.country,
        "provider": p.pop.provider,
        "latitude": p.pop.latitude,
        "longitude": p.pop.longitude,
        "distance_km": round(p.distance_km, 1),
        "reachable": reach_and_loss(r, p).map(|(reachable, _)| reachable),
        "loss": reach_and_loss(r, p).map(|(_, loss)| round(loss, 4)),
        "score": p.score.map(|s| round(s, 3)),
        "score_range_ms": score_range_json(r, p),
        "rtt_ms": rtt_json(p.rtt),
        "endpoint": p.best_endpoint().map(|e| json!({"fqdn": e.fqdn, "ip": e.ip})),
        "endpoints": p.endpoints.iter().map(|e| endpoint_json(r, e)).collect::<Vec<_>>(),
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
        "probed": r.probed(),
        "pops": r.pops.iter().map(|p| pop_json(r, p)).collect::<Vec<_>>(),
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

/// How many columns the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// What fits an 80-column console: rank, city, country, provider, median RTT, loss,
    /// distance and score; long names shortened with `…`.
    Narrow,
    /// Every column (`--wide`): the best endpoint's FQDN and IP, and jitter, too.
    Wide,
}

/// The width of the console the narrow table is made for.
pub const NARROW_COLUMNS: usize = 80;

/// The columns of the table, in order; `wide`: shown only with `--wide`.
struct Column {
    header: &'static str,
    wide_only: bool,
    /// Its cells may be shortened to fit (names; never a number).
    shrinkable: bool,
}

const COLUMNS: [Column; 11] = [
    column("RANK", false, false),
    column("CITY", false, true),
    column("COUNTRY", false, false),
    column("PROVIDER", false, true),
    column("ENDPOINT", true, false),
    column("IP", true, false),
    column("MEDIAN ms", false, false),
    column("JITTER ms", true, false),
    column("LOSS", false, false),
    column("DIST km", false, false),
    column("SCORE", false, false),
];

const fn column(header: &'static str, wide_only: bool, shrinkable: bool) -> Column {
    Column {
        header,
        wide_only,
        shrinkable,
    }
}

/// Every cell of a PoP's row, in [`COLUMNS`] order.
fn row(r: &Ranking, p: &RankedPop) -> [String; 11] {
    let best = p.best_endpoint();
    let loss = match reach_and_loss(r, p) {
        Some((true, loss)) => format!("{:.0}%", loss * 100.0),
        Some((false, _)) => "100%".into(),
        None => "-".into(),
    };
    let score = match (p.score, r.basis) {
        (Some(s), _) => format!("{s:.1}"),
        (None, Basis::Latency) if !probed(r, p) => "not probed".into(),
        (None, _) => "unreachable".into(),
    };
    [
        p.rank.to_string(),
        p.pop.city.to_string(),
        p.pop.country.to_string(),
        p.pop.provider.to_string(),
        best.map_or("-".into(), |e| e.fqdn.to_string()),
        best.map_or("-".into(), |e| e.ip.to_string()),
        cell_ms(p.rtt.map(|s| s.median)),
        cell_ms(p.rtt.map(|s| s.jitter)),
        loss,
        format!("{:.0}", p.distance_km),
        score,
    ]
}

/// The table that fits an 80-column console (what `popsel demo` prints too).
pub fn table(r: &Ranking, counts: &Counts) -> String {
    table_of_width(r, counts, Width::Narrow)
}

pub fn table_of_width(r: &Ranking, counts: &Counts, width: Width) -> String {
    let shown: Vec<usize> = (0..COLUMNS.len())
        .filter(|&i| width == Width::Wide || !COLUMNS[i].wide_only)
        .collect();
    let headers: Vec<&str> = shown.iter().map(|&i| COLUMNS[i].header).collect();
    let mut t = Table::new(&headers);
    for p in &r.pops {
        let cells = row(r, p);
        t.row(shown.iter().map(|&i| cells[i].clone()).collect());
    }
    let footer = footer(r.basis, counts);
    match width {
        Width::Wide => format!("{}\n{}\n", t.render(), footer.join("; ")),
        Width::Narrow => {
            let shrinkable: Vec<usize> = (0..shown.len())
                .filter(|&at| COLUMNS[shown[at]].shrinkable)
                .collect();
            t.fit(NARROW_COLUMNS, &shrinkable);
            let mut out = t.render();
            out.push('\n');
            for part in footer {
                out.push_str(&wrap(&part, NARROW_COLUMNS));
            }
            out
        }
    }
}

/// The totals, then the basis of the ranking.
fn footer(basis: Basis, counts: &Counts) -> [String; 2] {
    let basis = match basis {
        Basis::Latency => {
            "latency (score = median RTT ms + 500 × loss + 0.2 × jitter ms; distance breaks ties)"
        }
        Basis::Distance if counts.probed => "distance (no address answered ICMP; score = km)",
        Basis::Distance => "distance (not probed; score = km)",
    };
    let unreachable = match (counts.probed, counts.unprobed) {
        (false, _) => "not probed".to_owned(),
        (true, 0) => format!("{} unreachable", counts.unreachable),
        (true, unprobed) => format!("{} unreachable, {unprobed} not probed", counts.unreachable),
    };
    [
        format!(
            "{} PoPs, {} endpoints, {} skipped, {unreachable}",
            counts.pops, counts.endpoints, counts.skipped,
        ),
        format!("basis: {basis}"),
    ]
}

/// `text` in lines of at most `max` characters, broken between words (a word longer than a
/// line stands alone on its line), each ended by a newline.
fn wrap(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= max;
        if !line.is_empty() && !fits {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
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
            p.pop.city.to_string(),
            p.pop.country.to_string(),
            p.pop.provider.to_string(),
            best.map(|e| e.fqdn.to_string()).unwrap_or_default(),
            best.map(|e| e.ip.to_string()).unwrap_or_default(),
            reach_and_loss(r, p)
                .map(|(reachable, _)| reachable.to_string())
                .unwrap_or_default(),
            p.rtt.map(|s| ms(s.median).to_string()).unwrap_or_default(),
            p.rtt.map(|s| ms(s.jitter).to_string()).unwrap_or_default(),
            reach_and_loss(r, p)
                .map(|(_, loss)| round(loss, 4).to_string())
                .unwrap_or_default(),
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
