//! Status changes in the emulator, and the API going away and coming back.

use popsel::atmos::{Connector, Tunnel};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use popsel::sim::{Sim, SimOptions};

use crate::emulator::*;
use crate::exposition::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_in_the_emulator_show_on_the_next_poll() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    let id = tunnel_id(&sim, "Chicago IPSec1");
    support::sim_set_status(&sim, "tunnels", &id, "Connected").await;
    let connector = sim
        .with_store(|s| s.list::<Connector>())
        .into_iter()
        .find(|c| c.name == CONNECTOR)
        .expect("the connector")
        .id;
    support::sim_set_status(&sim, "connectors", &connector, "Available").await;

    let state = |s: &Scrape, tunnel: &str, state: &str| {
        s.value(
            "popsel_tunnel_status",
            &[("tunnel", tunnel), ("state", state)],
        )
    };
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(5),
            "Chicago IPSec1 Connected",
            |s| {
                state(s, "Chicago IPSec1", "Connected") == Some(1.0)
                    && s.value(
                        "popsel_connector_status",
                        &[("connector", CONNECTOR), ("state", "Available")],
                    ) == Some(1.0)
            },
        )
        .await;
    assert_eq!(state(&s, "Chicago IPSec1", "Disconnected"), Some(0.0));
    assert_eq!(state(&s, "Chicago IPSec1", "Unknown"), Some(0.0));
    assert_eq!(
        s.value(
            "popsel_tunnel_up",
            &[("location", "chicago"), ("tunnel", "Chicago IPSec1")]
        ),
        Some(1.0)
    );
    // The others are untouched.
    for t in ["Chicago IPSec2", "Frankfurt IPSec1"] {
        assert_eq!(state(&s, t, "Disconnected"), Some(1.0), "{t}");
        assert_eq!(s.value("popsel_tunnel_up", &[("tunnel", t)]), Some(0.0));
    }
    assert_eq!(
        s.value(
            "popsel_connector_status",
            &[("connector", CONNECTOR), ("state", "Pending")]
        ),
        Some(0.0)
    );

    // And back.
    support::sim_set_status(&sim, "tunnels", &id, "Disconnected").await;
    agent
        .scrape_until(
            &base,
            Duration::from_secs(5),
            "Chicago IPSec1 Disconnected again",
            |s| {
                state(s, "Chicago IPSec1", "Disconnected") == Some(1.0)
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(0.0)
            },
        )
        .await;
}

// ---- 3. the API goes away and comes back ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_outage_keeps_the_agent_serving_and_it_recovers_on_the_same_port() {
    let sim = sim_with_connector().await;
    let addr = sim.addr();
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    let before = agent.first_cycle(&base).await;
    let (catalog_before, reconcile_before) =
        (before.failures("catalog"), before.failures("reconcile"));

    sim.stop().await;

    // The API client retries a refused connection for several seconds before a stage gives
    // up, so the failures take a while to be counted; popsel_api_up drops at the first one.
    let mut pops_during_outage = Vec::new();
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(40),
            "catalogue and reconcile failures counted during the outage",
            |s| {
                pops_during_outage.push(s.value("popsel_catalog_pops", &[]));
                s.value("popsel_api_up", &[]) == Some(0.0)
                    && s.failures("catalog") > catalog_before
                    && s.failures("reconcile") > reconcile_before
            },
        )
        .await;
    assert!(
        pops_during_outage.iter().all(|p| *p == Some(52.0)),
        "the catalogue in use changed during the outage: {pops_during_outage:?}"
    );
    let refused: f64 = s
        .series(
            "popsel_api_requests_total",
            &[("code", "connection_refused")],
        )
        .iter()
        .map(|x| x.value)
        .sum();
    assert!(refused >= 1.0, "no refused request counted");
    assert!(agent.running(), "the agent exited during the outage");
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));
    assert_eq!(
        get_status(&format!("{base}/readyz")).await,
        Some(200),
        "a catalogue in hand keeps the agent ready"
    );

    // The API returns on the same port, with an empty account.
    let restarted_at = unix_now();
    let deadline = Instant::now() + Duration::from_secs(5);
    let sim2 = loop {
        let mut options = SimOptions::local(support::token());
        options.listen = addr;
        match Sim::start(options).await {
            Ok(sim) => break sim,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot restart the emulator on {addr}: {e}"),
        }
    };
    // A stage may be in the middle of a backoff wait of up to 10 s.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(40),
            "recovery: API up, catalogue refreshed, tunnels re-created",
            |s| {
                s.value("popsel_api_up", &[]) == Some(1.0)
                    && s.value(
                        "popsel_stage_last_success_timestamp_seconds",
                        &[("stage", "catalog")],
                    ) >= Some(restarted_at)
                    && tunnel_names(&sim2) == sorted(&TUNNELS)
            },
        )
        .await;
    assert_eq!(s.value("popsel_catalog_pops", &[]), Some(52.0));
    assert!(agent.running());
    // Re-created once each, no duplicates.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tunnel_names(&sim2), sorted(&TUNNELS));
}

/// An agent that starts while the API is down with no catalogue cached can select nothing: it
/// tries again after the shortest API interval, backed off, not a catalogue interval (an hour)
/// later, and is ready soon after the API returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_started_during_an_outage_with_nothing_cached_fetches_the_catalogue_when_the_api_returns()
 {
    let sim = sim_with_connector().await;
    let addr = sim.addr();
    let site = Site::new(&sim.url());
    site.write_config_with("[agent]\ncatalog_interval = \"1h\"\n");
    sim.stop().await;
    let (agent, base) = site.start_agent(&[]).await;
    agent
        .scrape_until(
            &base,
            Duration::from_secs(20),
            "the first catalogue fetch failed",
            |s| s.failures("catalog") >= 1.0,
        )
        .await;
    assert_eq!(get_status(&format!("{base}/readyz")).await, Some(503));
    let mut options = SimOptions::local(support::token());
    options.listen = addr;
    let _sim = Sim::start(options)
        .await
        .expect("the emulator on the same port");
    // The tries so far were 1 s apart (the shortest API interval), doubling: one is due
    // within 16 s of the API's return.
    agent
        .scrape_until(
            &base,
            Duration::from_secs(25),
            "the catalogue fetched once the API is back",
            |s| s.value("popsel_catalog_pops", &[]) == Some(52.0),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&format!("{base}/readyz")).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent that starts while the API is down uses the catalogue cached in the state dir by an
/// earlier run, and becomes ready on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_started_during_an_outage_uses_the_cached_catalogue() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let out = support::run(site.run_command(&["--once"])).await;
    assert!(out.status.success(), "{}", support::stderr(&out));
    let cached = site.state_dir().join("catalog.json");
    assert!(cached.is_file(), "no catalog.json after a cycle");
    // The answer as sent, under `document`.
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cached).expect("catalog.json")).expect("JSON");
    let sample: serde_json::Value =
        serde_json::from_str(popsel::sim::SAMPLE_CATALOG).expect("sample");
    assert_eq!(cache["document"], sample, "catalog.json holds the answer");
    let fetched_by_then = unix_now();
    sim.stop().await;

    let (agent, base) = site.start_agent(&[]).await;
    // The first fetch gives up after its retries, then the cache is used.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(35),
            "the cached catalogue in use, the failed fetch counted",
            // The stage puts the cached catalogue in place, then its failure is counted.
            |s| s.value("popsel_catalog_pops", &[]) == Some(52.0) && s.failures("catalog") >= 1.0,
        )
        .await;
    assert_eq!(s.value("popsel_api_up", &[]), Some(0.0));
    let fetched = s
        .value("popsel_catalog_last_update_timestamp_seconds", &[])
        .expect("catalogue timestamp");
    assert!(
        fetched > 0.0 && fetched <= fetched_by_then,
        "a cached catalogue keeps its fetch time: {fetched} > {fetched_by_then}"
    );
    agent
        .wait_line(
            Stream::Stderr,
            "using the cached catalogue",
            Duration::from_secs(1),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&format!("{base}/readyz")).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready on the cached catalogue\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The selection is made from it.
    agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "a selection from the cached catalogue",
            |s| {
                s.value(
                    "popsel_selected_pop_info",
                    &[
                        ("location", "chicago"),
                        ("role", "primary"),
                        ("pop", "US/Chicago, Illinois/GCP"),
                    ],
                ) == Some(1.0)
            },
        )
        .await;
}

/// While the API is down, the status stage should fail (and stop reporting the last known
/// tunnel states as current) within a few status intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_reflected_in_tunnel_status_within_a_few_status_intervals() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;
    let id = tunnel_id(&sim, "Chicago IPSec1");
    support::sim_set_status(&sim, "tunnels", &id, "Connected").await;
    let s = agent
        .scrape_until(&base, Duration::from_secs(5), "tunnel up", |s| {
            s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(1.0)
        })
        .await;
    let status_before = s.failures("status");

    sim.stop().await;

    // status_interval is 1 s: 10 s is plenty for a stage that cannot reach the API.
    agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "status failure counted and the tunnel no longer reported up",
            |s| {
                s.failures("status") > status_before
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(0.0)
            },
        )
        .await;
}

/// Tunnels deleted on the API (by hand, or an account reset) are re-created under new ids;
/// the status poll must follow the new ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_tunnels_are_polled_by_their_new_ids() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    // Three rounds of deletion: each leaves one more stale id per name, so that a wrong pick
    // is all but certain (a random pick of the right one for all three: 1 in 64).
    let mut seen: BTreeSet<String> = sim
        .with_store(|s| s.list::<Tunnel>())
        .into_iter()
        .map(|t| t.id)
        .collect();
    for round in 0..3 {
        sim.with_store(|s| {
            for t in s.list::<Tunnel>() {
                s.delete::<Tunnel>(&t.id).expect("delete");
            }
        });
        until(
            Duration::from_secs(10),
            &format!("round {round}: tunnels re-created"),
            || {
                let now = sim.with_store(|s| s.list::<Tunnel>());
                now.len() == TUNNELS.len() && now.iter().all(|t| !seen.contains(&t.id))
            },
        )
        .await;
        seen.extend(
            sim.with_store(|s| s.list::<Tunnel>())
                .into_iter()
                .map(|t| t.id),
        );
    }
    sim.with_store(|s| {
        for t in s.list::<Tunnel>() {
            s.set_status::<Tunnel>(&t.id, popsel::atmos::TunnelState::Connected)
                .expect("set status");
        }
    });
    agent
        .scrape_until(
            &base,
            Duration::from_secs(8),
            "every re-created tunnel reported Connected",
            |s| {
                TUNNELS.iter().all(|(loc, t)| {
                    s.value("popsel_tunnel_up", &[("location", loc), ("tunnel", t)]) == Some(1.0)
                })
            },
        )
        .await;
}
