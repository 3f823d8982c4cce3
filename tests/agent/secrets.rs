//! Secrets never leak into output, metrics or state.

use std::time::Duration;

use crate::emulator::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak_to_output_metrics_or_state() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    // Debug logs: the most the agent ever says.
    let mut cmd = site.run_command(&[]);
    cmd.env("POPSEL_LOG", "debug");
    let mut agent = AgentProc::spawn(cmd);
    let base = agent.metrics_base().await;
    agent.first_cycle(&base).await;

    // Exercise more paths: a status change, a reload that adds a tunnel (a fourth PSK pushed),
    // a reload with a broken config.
    let id = tunnel_id(&sim, "Chicago IPSec1");
    support::sim_set_status(&sim, "tunnels", &id, "Connected").await;
    site.write_config(true);
    agent.signal("HUP");
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "four tunnels created and polled",
            |s| {
                extra_tunnel_done(&sim, s)
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(1.0)
            },
        )
        .await;
    std::fs::write(site.config_path(), "[api]\nbase_url = 42\n").expect("write");
    agent.signal("HUP");
    agent
        .wait_line(Stream::Stderr, "not reloaded", Duration::from_secs(5))
        .await;
    let (_, _, healthz) = get(&format!("{base}/healthz")).await.expect("healthz");
    let (_, _, readyz) = get(&format!("{base}/readyz")).await.expect("readyz");

    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(6)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    // The reader threads drain the pipes once the process is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), agent.stdout().into_bytes()),
        ("stderr".into(), agent.stderr().into_bytes()),
        ("/metrics".into(), s.text.clone().into_bytes()),
        ("/healthz".into(), healthz.into_bytes()),
        ("/readyz".into(), readyz.into_bytes()),
    ];
    let state_files = support::files_under(&site.state_dir());
    for name in [
        "selection.json",
        "tunnels.json",
        "catalog.json",
        "audit.log",
        "fingerprint.key",
    ] {
        assert!(
            state_files.iter().any(|(p, _)| p.ends_with(name)),
            "{name} not in the state dir: {:?}",
            state_files.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
    }
    places.extend(
        state_files
            .into_iter()
            .map(|(p, bytes)| (p.display().to_string(), bytes)),
    );
    assert!(
        places[1].1.len() > 1000,
        "suspiciously little debug output: {}",
        String::from_utf8_lossy(&places[1].1)
    );
    for (place, bytes) in &places {
        for secret in SECRETS {
            assert!(
                !support::contains_bytes(bytes, secret.as_bytes()),
                "a secret ({}…) leaked into {place}",
                &secret[..6]
            );
        }
    }
}
