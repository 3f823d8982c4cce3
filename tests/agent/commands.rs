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
        if let Some(m) = v["fields"]["message"].as_str() {
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
