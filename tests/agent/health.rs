//! `/healthz`: unhealthy (503, naming the stage) when a stage has not completed a run for 3 of
//! its intervals, so that a supervisor restarts an agent whose loop is stuck; healthy through
//! an API outage, whose failed runs still complete (that is for the alerts).

use std::time::{Duration, Instant};

use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support::toml_str;

/// Polls `/healthz` until its status is `want`, at most `timeout`; returns the body.
async fn healthz_until(agent: &AgentProc, base: &str, want: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok((status, _, body)) = get(&format!("{base}/healthz")).await {
            if status == want {
                return body;
            }
            last = Some((status, body));
        }
        assert!(
            Instant::now() < deadline,
            "/healthz not {want} within {timeout:?}; last answer {last:?}\nstderr:\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_naming_a_stage_that_stopped_completing_runs() {
    let sim = crate::emulator::sim_with_connector().await;
    let site = Site::new(&sim.url());
    // The selection stage hangs: its hook (run for the first selection) does not return
    // within the probe interval of 1 s, nor for a minute. The hook notes its pid.
    let pid_file = site.path("hook.pid");
    site.write_config_with(&format!(
        "[edge]\non_change = [\"/bin/sh\", \"-c\", {}]\non_change_timeout = \"60s\"\n",
        toml_str(&format!("echo $$ > {}; exec sleep 60", pid_file.display()))
    ));
    let (mut agent, base) = site.start_agent(&[]).await;

    let body = healthz_until(&agent, &base, 503, Duration::from_secs(20)).await;
    assert!(
        body.contains("select"),
        "the body does not name the stuck stage: {body}"
    );
    assert!(
        !body.contains("reconcile") && !body.contains("status"),
        "stages that complete their runs are named: {body}"
    );
    assert!(agent.running());

    // Shutting down abandons the stuck stage, and its hook with it.
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "stderr:\n{}",
        agent.stderr_tail()
    );
    let hook: u32 = std::fs::read_to_string(&pid_file)
        .expect("the hook ran")
        .trim()
        .parse()
        .expect("the hook's pid");
    let gone = std::fs::read_to_string(format!("/proc/{hook}/status")).map_or(true, |s| {
        s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    });
    if !gone {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &hook.to_string()])
            .status();
    }
    assert!(gone, "the abandoned hook {hook} outlived the agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_stays_ok_through_an_api_outage() {
    // Nothing listens at the API's address: every API stage fails, and completes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let site = Site::new(&format!("http://{closed}"));
    let (agent, base) = site.start_agent(&[]).await;
    // Longer than 3 intervals of every stage (the catalogue's is the longest, 2 s).
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let answer = get(&format!("{base}/healthz")).await;
        assert!(
            matches!(&answer, Ok((200, _, _))),
            "/healthz during an API outage: {answer:?}\nstderr:\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let s = scrape(&base).await.expect("/metrics");
    assert!(
        s.failures("catalog") >= 2.0 && s.failures("status") >= 2.0,
        "the stages did not fail and run again:\n{}",
        s.summary()
    );
}

/// `/` is a page for whoever opens the agent's address in a browser, as node_exporter's: HTML
/// linking `/metrics`, `/healthz` and `/readyz`, each of which answers where the link points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_is_a_landing_page_linking_metrics_healthz_and_readyz() {
    let sim = crate::emulator::sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    let (status, content_type, body) = get(&format!("{base}/")).await.expect("GET /");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("text/html"),
        "Content-Type {content_type}"
    );
    assert!(body.contains(env!("CARGO_PKG_VERSION")), "{body}");
    let links: Vec<&str> = body
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(links, ["metrics", "healthz", "readyz"], "{body}");
    agent.first_cycle(&base).await;
    for link in links {
        let (status, _, body) = get(&format!("{base}/{link}")).await.expect(link);
        assert_eq!(status, 200, "/{link}: {body}");
    }
    // Anything else is still not found.
    assert_eq!(get_status(&format!("{base}/nothing-here")).await, Some(404));
}
