//! The deployment kit: alert rules pass their unit tests, the systemd unit verifies and stays
//! hardened, the container recipe sends the builder only what it needs, and every metric the
//! rules and the dashboard use is one the agent exports.

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use popsel::metrics::FAMILIES;

fn has(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// promtool is installed by `.ci/run`; locally it may be missing.
/// Whether promtool can run here (`.ci/run` installs it; locally it may be missing).
pub fn promtool() -> bool {
    support::can_run_privileged(if has("promtool") {
        Ok(())
    } else {
        Err("promtool is not installed (apt-get install prometheus)".into())
    })
}

/// Runs `promtool ARGS` and fails with its output unless it succeeds.
#[track_caller]
pub fn assert_promtool(args: &[&str]) {
    let out = Command::new("promtool").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !promtool() {
        return;
    }
    assert_promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    assert_promtool(&["test", "rules", "deploy/prometheus/alerts_test.yml"]);
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

/// `popsel_…` names used in a text (a metric name, possibly with a histogram suffix). A
/// recorded series (`level:popsel_…:operation`) is not one: `monitoring.rs` checks those
/// against the recording rules.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("popsel_") {
        let recorded = rest[..i].ends_with(':');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !recorded {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Whether the agent exports `name` (a family, or a histogram's `_bucket`, `_count`, `_sum`).
pub fn exported(name: &str) -> bool {
    let base = ["_bucket", "_count", "_sum"]
        .iter()
        .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
    FAMILIES.contains(&base)
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/recording.yml",
        "deploy/grafana/popsel.json",
    ] {
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

const UNIT: &str = "deploy/systemd/popsel.service";
/// The drop-in for systemd older than 253, which has no `Type=notify-reload`.
const BEFORE_253: &str = "deploy/systemd/before-253.conf";

#[test]
fn the_systemd_unit_is_hardened_and_verifies_where_systemd_analyze_exists() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify-reload",
        "NotifyAccess=main",
        "ExecStartPre=/usr/bin/popsel check --config /etc/popsel/popsel.toml",
        "ExecStart=/usr/bin/popsel run --config /etc/popsel/popsel.toml --log-format json",
        "WatchdogSec=2min",
        "LoadCredential=popsel:/etc/popsel/credentials",
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
    // notify-reload sends SIGHUP itself and waits for popsel's READY=1: no ExecReload=.
    assert!(!unit.lines().any(|l| l.starts_with("ExecReload=")));
    let Some(version) = systemd_version() else {
        eprintln!(
            "systemd-analyze is not installed: verification skipped (it runs where the tool exists)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("popsel-ran");
    let unit_file = unit_under_test(&unit, dir.path(), &ran);
    let problems = verify(&unit_file);
    if version >= 253 {
        assert!(problems.is_empty(), "systemd-analyze verify:\n{problems}");
    } else {
        // This systemd predates notify-reload: the type is all it may object to, and the unit
        // with the drop-in it then needs verifies.
        assert!(
            problems
                .lines()
                .all(|l| l.contains("Failed to parse service type, ignoring: notify-reload")),
            "systemd {version}, systemd-analyze verify:\n{problems}"
        );
        let without_type: String = unit
            .lines()
            .filter(|l| *l != "Type=notify-reload")
            .map(|l| format!("{l}\n"))
            .collect();
        let unit_file = unit_under_test(&without_type, dir.path(), &ran);
        let drop_ins = dir.path().join("popsel.service.d");
        std::fs::create_dir_all(&drop_ins).unwrap();
        std::fs::copy(BEFORE_253, drop_ins.join("before-253.conf")).unwrap();
        let problems = verify(&unit_file);
        assert!(problems.is_empty(), "with {BEFORE_253}:\n{problems}");
    }
    // Verifying runs none of the unit's commands (the binary's `check` among them).
    assert!(!ran.exists(), "systemd-analyze ran the unit's commands");
}

#[test]
fn the_systemd_unit_exposure_stays_at_most_2() {
    if systemd_version().is_none() {
        eprintln!("systemd-analyze is not installed: the exposure is measured where it exists");
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", UNIT])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for popsel.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
}

/// The version of the systemd whose `systemd-analyze` is installed, if any.
fn systemd_version() -> Option<u32> {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The unit in `dir`, its commands pointing at a script that would leave `ran` behind if it
/// ever ran (the binary the unit names is not installed here).
fn unit_under_test(unit: &str, dir: &Path, ran: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("popsel");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {}\n", ran.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("popsel.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/popsel", &script.display().to_string()),
    )
    .unwrap();
    path
}

/// What `systemd-analyze verify` says about the unit (the man page named in Documentation= is
/// installed by the package, not here).
fn verify(unit_file: &Path) -> String {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "systemd-analyze verify:\n{stderr}");
    stderr
        .lines()
        .filter(|l| l.contains("popsel.service"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The top-level entries of the repository the build context sends, by `.containerignore`:
/// an allow-list (`*`, then `!name` lines).
fn sent_to_the_builder() -> BTreeSet<String> {
    let ignore = std::fs::read_to_string(".containerignore").unwrap();
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules.first(), Some(&"*"), "an allow-list: {rules:?}");
    rules[1..]
        .iter()
        .map(|r| {
            r.strip_prefix('!')
                .unwrap_or_else(|| panic!("not an exception: {r}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_container_recipe_sends_only_what_the_build_reads_and_caches_the_dependencies() {
    let recipe = std::fs::read_to_string("deploy/container/Containerfile").unwrap();
    assert!(recipe.contains("cargo build --release --locked") && recipe.contains("USER 65534"));
    let sent = sent_to_the_builder();
    for never in ["target", ".git", "fuzz", "tests"] {
        assert!(!sent.contains(never), "{never} is sent to the builder");
    }
    assert_eq!(
        std::fs::read_link(".dockerignore").ok(),
        Some(".containerignore".into()),
        "docker reads .dockerignore: the same file"
    );
    // Every COPY from the context is sent.
    for line in recipe
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(sent.contains(*source), "{line}: {source} is not sent");
        }
    }
    // The dependency layer: the manifest alone, then a build, before popsel's own code.
    let manifest = recipe
        .find("COPY Cargo.toml Cargo.lock")
        .expect("the manifest first");
    let first_build = recipe.find("cargo build").unwrap();
    let code = recipe.find("COPY src src").expect("then the code");
    assert!(manifest < first_build && first_build < code, "{recipe}");
    // cargo reads no manifest whose targets are missing: each bench has its stand-in.
    let cargo: toml::Table = std::fs::read_to_string("Cargo.toml")
        .unwrap()
        .parse()
        .unwrap();
    let stand_ins = recipe[manifest..first_build]
        .lines()
        .find(|l| l.contains("for bench in"))
        .expect("the benches' stand-ins");
    for bench in cargo["bench"].as_array().unwrap() {
        let name = bench["name"].as_str().unwrap();
        assert!(
            stand_ins
                .split_whitespace()
                .any(|w| w.trim_end_matches(';') == name),
            "no stand-in for bench {name}: {stand_ins}"
        );
    }
    // The revision is passed in, after the dependency layer.
    let arg = recipe
        .find("ARG POPSEL_REVISION")
        .expect("the revision, a build arg");
    assert!(arg > first_build && recipe[arg..].contains("POPSEL_REVISION=\"$POPSEL_REVISION\""));
}

#[test]
fn the_scrape_config_exists() {
    let scrape = std::fs::read_to_string("deploy/prometheus/scrape.yml").unwrap();
    assert!(scrape.contains("job_name: popsel") && scrape.contains("alerts.yml"));
    assert!(Path::new("deploy/prometheus/alerts.yml").exists());
}
