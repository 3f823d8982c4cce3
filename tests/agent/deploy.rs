//! The deployment kit: alert rules pass their unit tests, the systemd unit verifies, and every
//! metric the rules and the dashboard use is one the agent exports.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use popsel::metrics::FAMILIES;

fn has(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// promtool is installed by `.ci/run`; locally it may be missing.
fn promtool() -> bool {
    support::can_run_privileged(if has("promtool") {
        Ok(())
    } else {
        Err("promtool is not installed (apt-get install prometheus)".into())
    })
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !promtool() {
        return;
    }
    for args in [
        ["check", "rules", "deploy/prometheus/alerts.yml"],
        ["test", "rules", "deploy/prometheus/alerts_test.yml"],
    ] {
        let out = Command::new("promtool").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_alert_tests_cover_every_alert() {
    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").unwrap();
    let tests = std::fs::read_to_string("deploy/prometheus/alerts_test.yml").unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 9, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}\n")),
            "no unit test for {alert}"
        );
    }
}

/// `popsel_…` names used in a text (a metric name, possibly with a histogram suffix).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("popsel_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn exported(name: &str) -> bool {
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
    FAMILIES.contains(&base)
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/popsel.json"] {
        let text = std::fs::read_to_string(file).unwrap();
        let names = metric_names(&text);
        assert!(!names.is_empty(), "{file} uses no popsel metric");
        for name in names {
            assert!(
                exported(&name),
                "{file} uses {name}, which the agent does not export"
            );
        }
    }
}

#[test]
fn the_readme_documents_exactly_the_exported_metrics() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme
        .find("### Metrics")
        .expect("README has a Metrics section");
    let end = start
        + readme[start..]
            .find("### Deployment kit")
            .expect("and it ends");
    let documented = metric_names(&readme[start..end]);
    let exported: BTreeSet<String> = FAMILIES.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        documented, exported,
        "the README's metric table and the agent differ"
    );
}

#[test]
fn the_dashboard_is_importable_json() {
    let text = std::fs::read_to_string("deploy/grafana/popsel.json").unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["uid"], "popsel");
    let titles: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for want in [
        "RTT per PoP",
        "Current selection",
        "Tunnels",
        "Connector states",
    ] {
        assert!(titles.iter().any(|t| t.starts_with(want)), "{titles:?}");
    }
    for panel in dash["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panels use the dashboard's data source variable"
        );
    }
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies_where_systemd_analyze_exists() {
    let unit = std::fs::read_to_string("deploy/systemd/popsel.service").unwrap();
    for line in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "StateDirectory=popsel",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "LimitNOFILE=1024",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    if !has("systemd-analyze") {
        eprintln!(
            "systemd-analyze is not installed: verification skipped (it runs where the tool exists)"
        );
        return;
    }
    // Point ExecStart at the binary under test, which exists here.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("popsel.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/popsel", env!("CARGO_BIN_EXE_popsel")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("popsel.service:"),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn the_container_recipe_and_scrape_config_exist() {
    let recipe = std::fs::read_to_string("deploy/container/Containerfile").unwrap();
    assert!(recipe.contains("cargo build --release --locked") && recipe.contains("USER 65534"));
    let scrape = std::fs::read_to_string("deploy/prometheus/scrape.yml").unwrap();
    assert!(scrape.contains("job_name: popsel") && scrape.contains("alerts.yml"));
    assert!(Path::new("deploy/prometheus/alerts.yml").exists());
}
