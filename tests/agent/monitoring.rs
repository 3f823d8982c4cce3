//! The fleet's monitoring kit: the dashboard shows each agent (`by (instance, pop)`), not the
//! best of all, and asks only for series the agent exports or the recording rules record; the
//! recording rules and the Prometheus configs pass promtool; every alert has a runbook_url
//! whose anchor is a heading of the README.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::deploy::{assert_promtool, exported, promtool};

const DASHBOARD: &str = "deploy/grafana/popsel.json";
const ALERTS: &str = "deploy/prometheus/alerts.yml";
const RECORDING: &str = "deploy/prometheus/recording.yml";

/// Where every runbook_url points (alerts.yml says why, and how to change it).
const RUNBOOK_BASE: &str = "https://popsel.example/README.md#";

/// The PromQL identifiers of `expr` that name popsel series: exported families (`popsel_…`,
/// with a histogram's suffixes) and recorded ones (`level:popsel_…:operation`).
fn popsel_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut quoted = false;
    let mut token = String::new();
    for c in expr.chars().chain([' ']) {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            token.push(c);
            continue;
        }
        if token.contains("popsel_") {
            names.insert(std::mem::take(&mut token));
        }
        token.clear();
    }
    names
}

/// `record:` name and expression of each recording rule.
fn recording_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(RECORDING).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("- record: ") else {
            continue;
        };
        // The expression: `expr: X`, or `expr: >` and the more indented lines after it.
        let expr_line = lines[i + 1].trim();
        let expr = match expr_line.strip_prefix("expr: ") {
            Some(">") => lines[i + 2..]
                .iter()
                .take_while(|l| {
                    let t = l.trim_start();
                    !t.is_empty() && !t.starts_with('-') && !t.starts_with('#')
                })
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join(" "),
            Some(e) => e.to_owned(),
            None => panic!("{RECORDING}: no expr after {name}"),
        };
        rules.push((name.to_owned(), expr));
    }
    rules
}

/// Every target of every panel (rows' panels included): the panel's title and the expression.
fn targets(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            for t in panel["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().expect("every target has an expr");
                out.push((title.clone(), expr.to_owned()));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The label lists of the `by (…)` clauses of `expr`.
fn by_clauses(expr: &str) -> Vec<Vec<String>> {
    expr.split("by (")
        .skip(1)
        .map(|rest| {
            rest.split(')')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|l| l.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_recording_rules_use_only_exported_or_recorded_series() {
    let rules = recording_rules();
    assert!(rules.len() >= 6, "{rules:?}");
    let recorded: BTreeSet<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
    for (name, expr) in &rules {
        assert_eq!(
            name.split(':').count(),
            3,
            "{name}: level:metric:operations, as Prometheus names recording rules"
        );
        for used in popsel_names(expr) {
            assert!(
                exported(&used) || recorded.contains(used.as_str()),
                "{name} uses {used}, which neither the agent exports nor a rule records"
            );
        }
    }
}

#[test]
fn the_dashboard_shows_each_agent_and_asks_only_for_series_that_exist() {
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let recorded: BTreeSet<String> = recording_rules().into_iter().map(|(n, _)| n).collect();
    let variable = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("an instance variable");
    assert_eq!(variable["type"], "query");
    assert_eq!(variable["multi"], true);
    let targets = targets(&dash);
    assert!(targets.len() >= 10, "{targets:?}");
    let mut fleet_panels = 0;
    for (title, expr) in &targets {
        let names = popsel_names(expr);
        assert!(
            !names.is_empty(),
            "{title}: {expr} asks for no popsel series"
        );
        for name in &names {
            assert!(
                exported(name) || recorded.contains(name),
                "{title}: {name} is neither exported by the agent nor recorded"
            );
        }
        if title.starts_with("Fleet:") {
            // Fleet panels read what the recording rules aggregated over every agent.
            fleet_panels += 1;
            assert!(
                names.iter().all(|n| recorded.contains(n)),
                "{title}: {expr}"
            );
            continue;
        }
        // Every other panel is per agent: its series are the chosen agents', and no
        // aggregation folds agents together (the best of all agents hides a bad site).
        for name in names.iter().filter(|n| !recorded.contains(*n)) {
            assert!(
                expr.contains(&format!("{name}{{instance=~\"$instance\"")),
                "{title}: {name} is not limited to the chosen agents: {expr}"
            );
        }
        for labels in by_clauses(expr) {
            assert!(
                labels.iter().any(|l| l == "instance"),
                "{title}: `by ({})` folds agents together: {expr}",
                labels.join(", ")
            );
        }
        assert!(!expr.contains("without ("), "{title}: {expr}");
    }
    assert!(fleet_panels >= 2, "a fleet row from the recording rules");
    // The two panels the issue names: RTT and loss per agent and PoP.
    for want in ["popsel_pop_rtt_seconds", "popsel_pop_loss_ratio"] {
        assert!(
            targets
                .iter()
                .any(|(_, e)| e.contains(want) && e.contains("by (instance, pop)")),
            "no {want} panel by (instance, pop)"
        );
    }
}

/// GitHub's anchor of a Markdown heading: lower case, spaces to hyphens, and everything but
/// letters, digits, hyphens and underscores dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn github_anchors_are_computed_as_github_does() {
    assert_eq!(github_anchor("Metrics"), "metrics");
    assert_eq!(
        github_anchor("Deployment kit (`deploy/`)"),
        "deployment-kit-deploy"
    );
    assert_eq!(
        github_anchor("Driving the router's charon (`[edge] vici_socket`)"),
        "driving-the-routers-charon-edge-vici_socket"
    );
    assert_eq!(
        github_anchor("Locations, selection and reconciliation: `popsel plan` / `popsel apply`"),
        "locations-selection-and-reconciliation-popsel-plan--popsel-apply"
    );
}

/// Each alert's name and its runbook_url.
fn runbooks() -> Vec<(String, Option<String>)> {
    let text = std::fs::read_to_string(ALERTS).unwrap();
    let mut alerts: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            alerts.push((name.to_owned(), None));
        } else if let Some(url) = line.strip_prefix("runbook_url: ") {
            if let Some((_, runbook)) = alerts.last_mut() {
                assert!(runbook.is_none(), "two runbook_urls in one alert");
                *runbook = Some(url.trim_matches('"').to_owned());
            }
        }
    }
    alerts
}

#[test]
fn every_alert_has_a_runbook_url_whose_anchor_is_a_readme_heading() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| github_anchor(l.trim_start_matches('#')))
        .collect();
    let alerts = runbooks();
    assert!(alerts.len() >= 16, "{alerts:?}");
    let mut missing = Vec::new();
    for (alert, runbook) in &alerts {
        let runbook = runbook
            .as_deref()
            .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        let anchor = runbook
            .strip_prefix(RUNBOOK_BASE)
            .unwrap_or_else(|| panic!("{alert}: {runbook} is not under {RUNBOOK_BASE}"));
        if !anchors.contains(anchor) {
            missing.push(format!("#{anchor} ({alert})"));
        }
    }
    assert!(
        missing.is_empty(),
        "README.md has no heading for: {}",
        missing.join(", ")
    );
}

#[test]
fn the_recording_rules_and_the_fleet_configs_pass_promtool() {
    if !promtool() {
        return;
    }
    assert_promtool(&["check", "rules", RECORDING]);
    assert_promtool(&["check", "config", "deploy/prometheus/scrape.yml"]);
    assert_promtool(&["check", "config", "deploy/prometheus/remote_write.yml"]);
    let remote = std::fs::read_to_string("deploy/prometheus/remote_write.yml").unwrap();
    assert!(remote.contains("/api/v1/push"), "Mimir's push endpoint");
    assert!(remote.contains("/api/v1/receive"), "Thanos Receive's");
}
