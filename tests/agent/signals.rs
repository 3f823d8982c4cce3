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

/// Makes the site's config file a named pipe: `popsel run` blocks reading it (start-up held
/// where the config is read) until the test sends on the returned channel, which lets one
/// reader through with the config's text.
fn config_behind_a_pipe(site: &Site) -> std::sync::mpsc::Sender<()> {
    let path = site.config_path();
    let text = site.config(false).render();
    std::fs::remove_file(&path).expect("remove the config file");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        while released.recv().is_ok() {
            // Blocks until popsel opens the pipe to read the config.
            std::fs::write(&path, &text).expect("write the config into the pipe");
        }
    });
    release
}

/// SIGHUP before popsel has read its config (logrotate, a `systemctl reload` racing the start)
/// is not fatal: it is kept, and reloads the config once the agent runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_while_the_config_is_read_is_not_fatal_and_reloads_once_started() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let config = config_behind_a_pipe(&site);
    let mut agent = AgentProc::spawn(site.run_command(&[]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agent.running(),
        "popsel died before reading its config: {:?}\nstderr:\n{}",
        agent.child.try_wait(),
        agent.stderr_tail()
    );
    agent.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        agent.running(),
        "a SIGHUP while the config was read killed popsel: {:?}\nstderr:\n{}",
        agent.child.try_wait(),
        agent.stderr_tail()
    );
    // Start-up reads the config, then the reload the SIGHUP asked for reads it again.
    config.send(()).expect("release the config");
    let base = agent.metrics_base().await;
    config.send(()).expect("release the config again");
    agent
        .wait_line(Stream::Stderr, "config reloaded", Duration::from_secs(10))
        .await;
    agent.first_cycle(&base).await;
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(8)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

/// SIGTERM before popsel has read its config: a clean stop once it gets to it, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_config_is_read_stops_cleanly() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let config = config_behind_a_pipe(&site);
    let mut agent = AgentProc::spawn(site.run_command(&[]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agent.running(),
        "a SIGTERM while the config was read ended popsel at once: {:?}",
        agent.child.try_wait()
    );
    config.send(()).expect("release the config");
    let status = agent.wait_exit(Duration::from_secs(8)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "stderr:\n{}",
        agent.stderr_tail()
    );
    assert!(
        !site.state_dir().join("selection.json").exists(),
        "the agent ran its stages although it was told to stop"
    );
}

/// An API that accepts connections and never answers: every call waits for the client's
/// timeout, so a cycle takes many seconds. Keep the listener alive for the test's length.
fn silent_api() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

/// `popsel run --once` stops on Ctrl-C and on SIGTERM mid-cycle instead of finishing it:
/// exit 130 (SIGINT) and 143 (SIGTERM), as a shell reports them, not 0 (the cycle did not
/// complete) nor 1 (a stage failed). A SIGHUP is logged and ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stops_on_sigint_and_sigterm_mid_cycle() {
    let (_api, url) = silent_api();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let site = Site::new(&url);
        let mut agent = AgentProc::spawn(site.run_command(&["--once"]));
        agent.metrics_base().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if signal == "INT" {
            agent.signal("HUP");
            agent
                .wait_line(Stream::Stderr, "SIGHUP ignored", Duration::from_secs(3))
                .await;
            assert!(agent.running(), "stderr:\n{}", agent.stderr_tail());
        }
        let sent = Instant::now();
        agent.signal(signal);
        let status = agent.wait_exit(Duration::from_secs(3)).await;
        let status = status.unwrap_or_else(|| {
            panic!(
                "--once still running 3 s after SIG{signal}\nstderr:\n{}",
                agent.stderr_tail()
            )
        });
        assert_eq!(
            status.code(),
            Some(code),
            "SIG{signal}\nstderr:\n{}",
            agent.stderr_tail()
        );
        eprintln!(
            "--once exited {code} {:?} after SIG{signal}",
            sent.elapsed()
        );
    }
}
