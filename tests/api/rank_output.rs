//! What `popsel rank` prints: nothing unmeasured shown as a measure (`--no-probe` JSON and
//! CSV), a table that fits an 80-column console unless `--wide`, and no progress bytes when
//! stderr is not a terminal.

use std::process::Output;

use serde_json::Value;

use crate::support;
use crate::support::{assert_exit, show};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.sample.json");

/// Sites from which the sample's longest names come first, and the default of every PoP.
const SITES: [&str; 4] = [
    "41.88,-87.63",
    "-33.87,151.21",
    "34.05,-118.24",
    "-23.55,-46.63",
];

async fn rank(site: &str, extra: &[&str]) -> Output {
    let mut cmd = support::popsel();
    cmd.args([
        "rank",
        "--site",
        site,
        "--catalog",
        SAMPLE,
        "--no-dns",
        "--no-probe",
    ])
    .args(extra);
    let out = support::run(cmd).await;
    assert_exit(&out, 0);
    out
}

#[tokio::test]
async fn no_probe_json_says_null_for_reachability_and_loss() {
    for site in SITES {
        let out = rank(site, &["-o", "json"]).await;
        let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["probed"], false, "{doc:#}");
        let pops = doc["pops"].as_array().expect("pops");
        assert_eq!(pops.len(), 52);
        for p in pops {
            // Present (fields are never removed), and null: nothing was measured.
            for field in ["reachable", "loss", "rtt_ms", "score_range_ms"] {
                assert!(p.get(field).is_some_and(Value::is_null), "{field}: {p:#}");
            }
            assert!(p["score"].is_number(), "scored by distance: {p:#}");
            for e in p["endpoints"].as_array().expect("endpoints") {
                for field in ["reachable", "loss", "rtt_ms", "sent", "received"] {
                    assert!(e.get(field).is_some_and(Value::is_null), "{field}: {e:#}");
                }
            }
        }
    }
}

#[tokio::test]
async fn no_probe_csv_leaves_reachability_and_loss_empty() {
    let out = rank(SITES[0], &["-o", "csv"]).await;
    let text = support::stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (reachable, loss) = (at("reachable"), at("loss"));
    let mut rows = 0;
    for line in lines {
        // The sample's cities with a comma are quoted: split off the quoted part first.
        let fields = csv_fields(line);
        assert_eq!(fields.len(), header.len(), "{line}");
        assert_eq!(fields[reachable], "", "{line}");
        assert_eq!(fields[loss], "", "{line}");
        rows += 1;
    }
    assert_eq!(rows, 52);
}

/// The fields of one CSV line (RFC 4180 quoting, no embedded newline).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("a field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

const NARROW: [&str; 8] = [
    "RANK",
    "CITY",
    "COUNTRY",
    "PROVIDER",
    "MEDIAN ms",
    "LOSS",
    "DIST km",
    "SCORE",
];
const WIDE_ONLY: [&str; 3] = ["ENDPOINT", "IP", "JITTER ms"];

fn header(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn the_table_fits_80_columns_and_wide_shows_every_column() {
    for site in SITES {
        let out = rank(site, &[]).await;
        let text = support::stdout(&out);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{} characters: {line:?}\n{}",
                line.chars().count(),
                show(&out)
            );
        }
        for column in NARROW {
            assert!(header(&text).contains(column), "{column} in {text}");
        }
        for column in WIDE_ONLY {
            assert!(!header(&text).contains(column), "{column} in {text}");
        }
        let rows = text
            .lines()
            .filter(|l| l.starts_with(char::is_numeric) && !l.contains("PoPs"));
        assert_eq!(rows.count(), 52, "{text}");
        // Not probed: no loss or latency is made up, and the footer says so.
        assert!(text.contains("not probed"), "{text}");
        assert!(!text.contains('%'), "{text}");

        let wide = support::stdout(&rank(site, &["--wide"]).await);
        for column in NARROW.iter().chain(&WIDE_ONLY) {
            assert!(header(&wide).contains(column), "{column} in {wide}");
        }
        assert!(wide.contains(".pops.popsel.test"), "{wide}");
        assert!(wide.contains("198.18."), "{wide}");
        assert!(!wide.contains('…'), "nothing shortened: {wide}");
        assert!(
            wide.lines().any(|l| l.chars().count() > 80),
            "the sample's endpoints make a wide table: {wide}"
        );
    }
}

#[tokio::test]
async fn long_names_are_shortened_with_an_ellipsis() {
    // Sydney's "Sydney, New South Wales" is the sample's longest city.
    let out = rank(SITES[1], &["--top", "3"]).await;
    let text = support::stdout(&out);
    let sydney = text.lines().nth(1).unwrap_or_default();
    assert!(sydney.contains("Sydney, New South"), "{text}");
    assert!(sydney.contains('…') && !sydney.contains("Wales"), "{text}");
    let wide = support::stdout(&rank(SITES[1], &["--top", "3", "--wide"]).await);
    assert!(wide.contains("Sydney, New South Wales"), "{wide}");
}

#[tokio::test]
async fn no_progress_bytes_when_stderr_is_not_a_terminal() {
    for format in ["table", "json", "csv"] {
        let out = rank(SITES[0], &["-o", format]).await;
        assert!(out.stderr.is_empty(), "{}", show(&out));
        assert!(!out.stdout.contains(&b'\r'), "{}", show(&out));
        assert!(!out.stdout.contains(&0x1b), "{}", show(&out));
    }
}
