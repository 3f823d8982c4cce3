//! Just enough of the Prometheus text format to assert on a scrape.

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    /// Sorted by name, so that lookups do not depend on the order of the exposition.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// One sample line: `name{a="x",b="y"} value [timestamp]`. Label values may hold commas,
/// spaces, braces and escaped quotes.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut key = String::new();
        let mut value = String::new();
        let (mut in_value, mut escaped) = (false, false);
        let mut end = None;
        for (i, c) in body.char_indices() {
            if in_value {
                if escaped {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    labels.insert(
                        std::mem::take(&mut key).trim().to_owned(),
                        std::mem::take(&mut value),
                    );
                    in_value = false;
                } else {
                    value.push(c);
                }
            } else {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '"' => in_value = true,
                    ',' | '=' => {}
                    c => key.push(c),
                }
            }
        }
        rest = &body[end? + 1..];
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// One scrape of `/metrics`.
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: String) -> Scrape {
        let samples = text.lines().filter_map(parse_sample).collect();
        Scrape { text, samples }
    }

    /// The samples of `name` carrying every label of `labels` (others may be present).
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with `labels`; `None` when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.series(name, labels);
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series: {found:?}",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    pub fn has_type_line(&self, family: &str) -> bool {
        let prefix = format!("# TYPE {family} ");
        self.text.lines().any(|l| l.starts_with(&prefix))
    }

    pub fn failures(&self, stage: &str) -> f64 {
        self.value("popsel_stage_failures_total", &[("stage", stage)])
            .unwrap_or(0.0)
    }

    /// The exposition without the long per-PoP and histogram lines, for failure messages.
    pub fn summary(&self) -> String {
        self.text
            .lines()
            .filter(|l| {
                !l.starts_with('#') && !l.starts_with("popsel_pop_") && !l.contains("_bucket{")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
