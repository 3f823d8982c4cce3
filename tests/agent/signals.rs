//! SIGTERM and SIGHUP.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support::assert_contains;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_promptly_and_leaves_selection_json() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    let sent = Instant::now();
    agent.signal("TERM");
    let status = agent
        .wait_exit(Duration::from_secs(6))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running 6 s after SIGTERM\nstderr:\n{}",
                agent.stderr_tail()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstderr:\n{}",
        agent.stderr_tail()
    );
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    assert!(agent.stderr().contains("shutting down"));
    assert!(
        get_status(&format!("{base}/healthz")).await.is_none(),
        "the metrics server outlived the process"
    );

    let text = std::fs::read_to_string(site.state_dir().join("selection.json"))
        .expect("selection.json in the state dir");
    let selection: Value = serde_json::from_str(&text).expect("selection.json is JSON");
    for loc in ["chicago", "frankfurt"] {
        for role in ["primary", "secondary"] {
            assert!(
                selection["locations"][loc][role]["choice"]["fqdn"].is_string(),
                "{loc} {role} in selection.json:\n{text}"
            );
        }
    }
    assert_eq!(
        selection["locations"]["chicago"]["primary"]["choice"]["pop"]["city"],
        "Chicago, Illinois"
    );
}

// ---- 5. SIGHUP ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_old_config_when_invalid_and_applies_a_valid_one() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    // Garbage: reported, and the old config stays.
    std::fs::write(site.config_path(), "this is [not a config\n= at all").expect("write");
    agent.signal("HUP");
    let line = agent
        .wait_line(Stream::Stderr, "not reloaded", Duration::from_secs(5))
        .await;
    assert_contains(&line, "ERROR");
    assert_contains(&line, "config");
    assert!(
        line.contains(&site.config_path().display().to_string()),
        "the error does not name the file: {line}"
    );
    let runs_before = scrape(&base)
        .await
        .expect("metrics after a bad reload")
        .value("popsel_stage_runs_total", &[("stage", "reconcile")])
        .unwrap_or(0.0);
    // Still running the old config: the stages go on, the tunnels stay as they were.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(8),
            "two more reconcile runs after the bad reload",
            |s| {
                s.value("popsel_stage_runs_total", &[("stage", "reconcile")])
                    >= Some(runs_before + 2.0)
            },
        )
        .await;
    assert!(agent.running());
    assert_eq!(s.series("popsel_tunnel_status", &[]).len(), 9);
    assert_eq!(s.failures("reconcile"), 0.0);
    assert_eq!(tunnel_names(&sim), sorted(&TUNNELS));

    // A valid config with a third tunnel for Frankfurt: applied.
    site.write_config(true);
    agent.signal("HUP");
    agent
        .wait_line(Stream::Stderr, "config reloaded", Duration::from_secs(5))
        .await;
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "the added tunnel created and polled",
            |s| extra_tunnel_done(&sim, s),
        )
        .await;
    assert_eq!(s.series("popsel_tunnel_status", &[]).len(), 12);
    let id = tunnel_id(&sim, EXTRA_TUNNEL.1);
    assert!(
        sim.with_store(|st| st.tunnel_psk_is(&id, PSK_FRA_2))
            .expect("PSK check"),
        "the added tunnel does not carry its PSK"
    );
    assert!(agent.running());
}

/// A SIGHUP (logrotate, `systemctl reload`) while the first catalogue fetch is still retrying
/// must not kill the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_the_first_catalogue_fetch_does_not_kill_the_agent() {
    // An API URL where nothing listens: the first catalogue fetch keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let site = Site::new(&format!("http://{closed}"));
    let (mut agent, base) = site.start_agent(&[]).await;
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));

    agent.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        agent.running(),
        "the agent died of SIGHUP: {:?}\nstderr:\n{}",
        agent.child.try_wait(),
        agent.stderr_tail()
    );
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));
}
