//! `--once`, JSON logs and `popsel demo`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support;
use crate::support::assert_contains;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_zero_after_one_cycle() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let started = Instant::now();
    let out = support::run(site.run_command(&["--once"])).await;
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_contains(&stderr, "metrics on http://");
    assert!(!stderr.contains("stage failed"), "{stderr}");
    assert_eq!(tunnel_names(&sim), sorted(&TUNNELS));
    assert!(site.state_dir().join("selection.json").is_file());
    assert!(site.state_dir().join("tunnels.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_makes_every_stderr_line_a_json_object() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let out = support::run(site.run_command(&["--once", "--log-format", "json"])).await;
    let stderr = support::stderr(&out);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    let mut messages = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr:\n{stderr}"));
        assert!(v.is_object(), "{line}");
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["timestamp"].is_string(), "no timestamp: {line}");
        // Flattened: the event's fields, message included, beside level and timestamp.
        if let Some(m) = v["message"].as_str() {
            messages.push(m.to_owned());
        }
    }
    assert!(
        messages.iter().any(|m| m.starts_with("metrics on http://")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("selection changed")),
        "{messages:?}"
    );
}

/// The JSON log lines of a command's stderr, each parsed (a line that is not a JSON object
/// fails), after checking that none carries a secret.
fn json_lines(stderr: &str, secrets: &[&str]) -> Vec<Value> {
    for secret in secrets {
        assert!(!stderr.contains(secret), "a secret in the log:\n{stderr}");
    }
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr:\n{stderr}"));
            assert!(v.is_object(), "{line}");
            v
        })
        .collect()
}

/// A field's value as a Rust `Debug` rendering would show it: `Some(..)`, `Create { .. }`.
fn looks_like_debug(value: &str) -> bool {
    value.contains("Some(")
        || value.contains("None")
        || (value.contains(" { ") && value.contains(": "))
        || value.starts_with('[') && value.contains('"')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_fact_as_a_plain_field_and_no_secret() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let rotated = "agent-Chicago-one-rotated-5a7c";
    let mut secrets = SECRETS.to_vec();
    secrets.push(rotated);
    let mut lines = Vec::new();
    for psk in [PSK_CHI_1, rotated] {
        // The first run creates the tunnels; the second pushes the rotated PSK.
        let mut cmd = site.run_command(&["--once", "--log-format", "json"]);
        cmd.env("POPSEL_LOG", "popsel=debug")
            .env(PSK_ENV_CHI_1, psk);
        let out = support::run(cmd).await;
        let stderr = support::stderr(&out);
        assert!(out.status.success(), "{:?}\n{stderr}", out.status);
        lines.extend(json_lines(&stderr, &secrets));
    }
    for v in &lines {
        let object = v.as_object().expect("an object");
        assert!(
            !object.contains_key("fields"),
            "fields at the top level: {v}"
        );
        assert!(
            !object.contains_key("span") && !object.contains_key("spans"),
            "{v}"
        );
        assert!(v["message"].is_string(), "{v}");
        for (key, value) in object {
            if let (false, Some(text)) = (key == "message", value.as_str()) {
                assert!(!looks_like_debug(text), "{key} is a Debug rendering: {v}");
            }
        }
    }
    let reconciled: Vec<&Value> = lines
        .iter()
        .filter(|v| v["message"] == "tunnel reconciled")
        .collect();
    let names: Vec<&str> = TUNNELS.iter().map(|(_, tunnel)| *tunnel).collect();
    let locations: Vec<&str> = TUNNELS.iter().map(|(location, _)| *location).collect();
    for v in &reconciled {
        for field in ["action", "location", "tunnel", "id", "result"] {
            assert!(v[field].is_string(), "{field} is not a string: {v}");
        }
        assert!(
            names.contains(&v["tunnel"].as_str().unwrap_or_default()),
            "{v}"
        );
        assert!(
            locations.contains(&v["location"].as_str().unwrap_or_default()),
            "{v}"
        );
        assert!(v["psk_pushed"].is_boolean(), "{v}");
    }
    let created = reconciled
        .iter()
        .filter(|v| v["action"] == "create" && v["result"] == "created")
        .count();
    assert_eq!(created, TUNNELS.len(), "{reconciled:#?}");
    for v in reconciled.iter().filter(|v| v["action"] == "create") {
        assert_eq!(v["psk_pushed"], true, "a create sends the PSK: {v}");
    }
    let rotation = reconciled
        .iter()
        .find(|v| v["action"] == "update")
        .unwrap_or_else(|| panic!("no update after the rotation: {reconciled:#?}"));
    assert_eq!(rotation["tunnel"], TUNNELS[0].1, "{rotation}");
    assert_eq!(rotation["result"], "updated", "{rotation}");
    assert_eq!(rotation["psk_pushed"], true, "{rotation}");
    assert_contains(
        rotation["psk_pushed_because"].as_str().unwrap_or_default(),
        "changed in the config",
    );
}

// ---- 7. the demo ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_metrics_until_sigterm() {
    let mut cmd = support::popsel();
    cmd.args(["demo", "--metrics-listen", "127.0.0.1:0"]);
    let mut demo = AgentProc::spawn(cmd);
    let line = demo
        .wait_line(
            Stream::Stdout,
            "Metrics on http://",
            Duration::from_secs(30),
        )
        .await;
    assert!(line.trim_end().ends_with("(Ctrl-C to stop)"), "{line}");
    let base = base_url_in(&line, "Metrics on http://");
    let s = scrape(&base).await.expect("the demo's /metrics");
    assert!(
        !s.series("popsel_selected_pop_info", &[]).is_empty(),
        "{}",
        s.summary()
    );
    assert_eq!(s.value("popsel_catalog_pops", &[]), Some(52.0));
    assert_eq!(
        s.value(
            "popsel_selected_pop_info",
            &[("location", "chicago"), ("role", "primary")]
        ),
        Some(1.0)
    );

    demo.signal("TERM");
    let status = demo
        .wait_exit(Duration::from_secs(6))
        .await
        .expect("the demo exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstderr:\n{}",
        demo.stderr_tail()
    );
    let state = std::env::temp_dir().join(format!("popsel-demo-{}", demo.pid()));
    assert!(!state.exists(), "the demo left {}", state.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_once_exits_zero_and_shows_the_tunnels() {
    let mut cmd = support::popsel();
    cmd.args(["demo", "--once"]);
    let out = support::run(cmd).await;
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for (_, tunnel) in TUNNELS {
        assert!(stdout.contains(tunnel), "{tunnel} missing:\n{stdout}");
    }
    assert!(!stdout.contains("(not created)"), "{stdout}");
    assert!(!stdout.contains("Metrics on"), "{stdout}");
}
