//! A flood of connections against popsel's HTTP servers, the agent's `/metrics` and `popsel
//! sim`, each a process with the open-file limit it gets in production: the systemd unit's
//! for the agent (its `LimitNOFILE=`, or systemd's default 1,024 when it sets none), a login
//! shell's usual 1,024 for the emulator. 1,100 half-open connections are more than either
//! limit: unbounded, they took every descriptor, and the stages' API calls and state writes
//! failed with them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use popsel::http_server::Limits;

use crate::emulator::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support::flood::*;
use crate::support::{self, TOKEN};

const FLOOD: usize = 1_100;

fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

/// GET `url` (with the test token), timed: status and elapsed.
async fn timed_get(url: &str) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = support::http()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_within_a_second_while_1100_half_open_connections_are_held() {
    if !support::can_run_privileged(allow_open_files(FLOOD as u64)) {
        return;
    }
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let limit = unit_nofile_limit();
    let agent = AgentProc::spawn(with_nofile_limit(&site.run_command(&[]), limit));
    let base = agent.metrics_base().await;
    assert_eq!(
        nofile_limit_of(agent.pid()),
        limit,
        "the agent does not run with the unit's limit"
    );
    let before = agent.first_cycle(&base).await;
    let fds_before = open_fds(agent.pid());

    let flood = half_open_connections(addr_of(&base), FLOOD).await;
    let (status, took) = timed_get(&format!("{base}/metrics")).await;
    eprintln!("/metrics under the flood: {status:?} in {took:?}");
    assert_eq!(status, Some(200), "stderr:\n{}", agent.stderr_tail());
    assert!(took < Duration::from_secs(1), "/metrics took {took:?}");
    // The flood holds no more of the agent's descriptors than the server's cap, far from the
    // limit: the stages' own (DNS lookups, API calls, state files) have room.
    let held = held_connections(
        agent.pid(),
        addr_of(&base).port(),
        Limits::METRICS.max_connections,
    )
    .await;
    let fds = open_fds(agent.pid());
    eprintln!(
        "agent: {held} connections on the metrics port, {fds} descriptors ({fds_before} before the flood; limit {limit})"
    );
    assert!(
        fds < limit as usize / 2,
        "{fds} descriptors open, of {limit}"
    );

    // The stages go on, API calls and state writes included, while the flood is held.
    let runs = |s: &crate::exposition::Scrape, stage| {
        s.value("popsel_stage_runs_total", &[("stage", stage)])
            .unwrap_or(0.0)
    };
    let during = agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "two more runs of every API stage under the flood",
            |s| {
                ["reconcile", "status", "select"]
                    .iter()
                    .all(|st| runs(s, st) >= runs(&before, st) + 2.0)
            },
        )
        .await;
    for stage in STAGES {
        assert_eq!(
            during.failures(stage),
            before.failures(stage),
            "{stage} failed under the flood\nstderr:\n{}",
            agent.stderr_tail()
        );
    }
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));
    drop(flood);
}

/// The connections a server holds on `port`, asserted to be at most `cap`. At its cap an
/// accepted connection replaces the oldest idle one, which is closed a moment later: under
/// load a count can catch a few of those on their way out, so it is taken again until it is
/// within `cap` or a second has passed.
async fn held_connections(pid: u32, port: u16, cap: usize) -> usize {
    let mut held = connections_on_port(pid, port);
    for _ in 0..10 {
        if held <= cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        held = connections_on_port(pid, port);
    }
    assert!(
        held <= cap,
        "the flood holds {held} connections, over {cap}"
    );
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_answers_within_a_second_while_1100_half_open_connections_are_held() {
    if !support::can_run_privileged(allow_open_files(FLOOD as u64)) {
        return;
    }
    let mut cmd = support::popsel();
    cmd.args(["sim", "--listen", "127.0.0.1:0"])
        .env("POPSEL_API_TOKEN", TOKEN);
    let sim = AgentProc::spawn(with_nofile_limit(&cmd, SYSTEMD_DEFAULT_NOFILE));
    let line = sim
        .wait_line(
            Stream::Stdout,
            "listening on http://",
            Duration::from_secs(15),
        )
        .await;
    let url = line.split_whitespace().last().expect("the URL").to_owned();
    assert_eq!(nofile_limit_of(sim.pid()), SYSTEMD_DEFAULT_NOFILE);

    let flood = half_open_connections(addr_of(&url), FLOOD).await;
    let (status, took) = timed_get(&format!("{url}/api/v1/pops/ipsec")).await;
    eprintln!("the catalogue under the flood: {status:?} in {took:?}");
    assert_eq!(status, Some(200), "stderr:\n{}", sim.stderr_tail());
    assert!(took < Duration::from_secs(1), "the catalogue took {took:?}");
    let held = held_connections(sim.pid(), addr_of(&url).port(), Limits::SIM.max_connections).await;
    let fds = open_fds(sim.pid());
    eprintln!("the emulator holds {held} connections, {fds} descriptors");
    assert!(
        fds < SYSTEMD_DEFAULT_NOFILE as usize / 2,
        "{fds} descriptors"
    );
    drop(flood);
}
