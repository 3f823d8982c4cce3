//! What one agent costs the API: its own tunnels read by id, the account listed only when
//! needed; every API call held back while the API throttles or fails, one probe deciding when
//! to resume.

use std::time::Duration;

use popsel::atmos::Tunnel;
use popsel::sim::{Faults, Sim};
use serde_json::json;

use crate::emulator::*;
use crate::exposition::Scrape;
use crate::site::*;
use crate::support::site::CHICAGO_1;

/// Tunnels of other sites in the account: three pages of 100.
const OTHER_SITES: usize = 250;

/// The requests the agent made to `endpoint` with `method`, whatever the answer.
fn requests(s: &Scrape, endpoint: &str, method: &str) -> f64 {
    s.series(
        "popsel_api_requests_total",
        &[("endpoint", endpoint), ("method", method)],
    )
    .iter()
    .map(|sample| sample.value)
    .sum()
}

fn listings(s: &Scrape) -> f64 {
    requests(s, "/api/v1/tunnels", "GET")
}

fn reconcile_runs(s: &Scrape) -> f64 {
    s.value("popsel_stage_runs_total", &[("stage", "reconcile")])
        .unwrap_or(0.0)
}

/// The requests the emulator has received, all methods.
fn received(sim: &Sim) -> u64 {
    let counts = sim.request_counts();
    ["GET", "PUT", "POST", "DELETE"]
        .iter()
        .map(|m| counts[m].as_u64().unwrap_or(0))
        .sum()
}

/// The emulator with a connector and the tunnels of [`OTHER_SITES`] other sites.
async fn busy_account() -> Sim {
    let sim = sim_with_connector().await;
    sim.with_store(|s| {
        for i in 0..OTHER_SITES {
            s.create_tunnel(&json!({
                "name": format!("site-{i:04} IPSec1"),
                "authenticationID": format!("site-{i:04}@fleet.example"),
                "authenticationPSK": "another-sites-psk",
                "locationID": format!("loc-{i:04}"),
            }))
            .expect("another site's tunnel");
        }
    });
    sim
}

fn set_faults(sim: &Sim, faults: Faults) {
    sim.set_faults(faults).expect("faults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_reconcile_runs_read_the_sites_own_tunnels_by_id_never_the_account() {
    let sim = busy_account().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    let first = agent.first_cycle(&base).await;
    assert!(
        listings(&first) >= 3.0,
        "creating the tunnels takes a listing of the account's 3 pages:\n{}",
        first.summary()
    );
    let runs = reconcile_runs(&first);
    let later = agent
        .scrape_until(
            &base,
            Duration::from_secs(20),
            "three more reconcile runs",
            |s| reconcile_runs(s) >= runs + 3.0,
        )
        .await;
    assert_eq!(
        listings(&later),
        listings(&first),
        "a steady run lists nothing:\n{}",
        later.summary()
    );
    let by_id = requests(&later, "/api/v1/tunnels/{id}", "GET")
        - requests(&first, "/api/v1/tunnels/{id}", "GET");
    assert!(
        by_id >= 3.0 * TUNNELS.len() as f64,
        "each run reads the {} tunnels by id: {by_id} reads",
        TUNNELS.len()
    );
    assert_eq!(later.failures("reconcile"), 0.0, "{}", agent.stderr_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_tunnel_deleted_behind_popsels_back_is_created_again_once() {
    let sim = busy_account().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;
    let old = tunnel_id(&sim, CHICAGO_1);
    sim.with_store(|s| s.delete::<Tunnel>(&old))
        .expect("delete in the console");
    crate::http::until(Duration::from_secs(15), "the tunnel created again", || {
        sim.with_store(|s| s.list::<Tunnel>())
            .iter()
            .any(|t| t.name == CHICAGO_1 && t.id != old)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let named = sim
        .with_store(|s| s.list::<Tunnel>())
        .into_iter()
        .filter(|t| t.name == CHICAGO_1)
        .count();
    assert_eq!(named, 1, "created once\n{}", agent.stderr_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_audited_every_audit_interval() {
    let sim = busy_account().await;
    let site = Site::new(&sim.url());
    site.write_config_with("[agent]\naudit_interval = \"2s\"\n");
    let (agent, base) = site.start_agent(&[]).await;
    let first = agent.first_cycle(&base).await;
    agent
        .scrape_until(
            &base,
            Duration::from_secs(20),
            "two audits after the first cycle",
            |s| listings(s) >= listings(&first) + 2.0 * 3.0,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_every_stage_back_until_its_retry_after_then_one_probe_resumes() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    set_faults(
        &sim,
        Faults {
            throttle_rate: 1.0,
            retry_after_secs: 4,
            ..Faults::default()
        },
    );
    agent
        .scrape_until(&base, Duration::from_secs(10), "throttled", |s| {
            s.value("popsel_api_throttled", &[]) == Some(1.0)
        })
        .await;
    // Every stage runs each second, some ten requests a second unchecked; held back, none
    // until the 4 s are over (one in flight when the 429 came may land).
    let before = received(&sim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = received(&sim) - before;
    assert!(
        during <= 1,
        "{during} requests while held back\n{}",
        agent.stderr_tail()
    );
    // Still throttled: one probe at a time, each 4 s apart at least.
    let before = received(&sim);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let probes = received(&sim) - before;
    assert!(
        probes <= 4,
        "{probes} requests in 9 s of throttling\n{}",
        agent.stderr_tail()
    );
    let s = crate::http::scrape(&base).await.expect("/metrics");
    assert!(
        s.value("popsel_api_held_back_total", &[("reason", "throttled")]) > Some(0.0),
        "{}",
        s.summary()
    );

    set_faults(&sim, Faults::default());
    agent
        .scrape_until(
            &base,
            Duration::from_secs(30),
            "resumed after the throttling",
            |s| {
                s.value("popsel_api_throttled", &[]) == Some(0.0)
                    && s.value("popsel_api_up", &[]) == Some(1.0)
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_the_api_less_than_steady_state_and_the_agent_comes_back() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    let window = Duration::from_secs(6);
    let before = received(&sim);
    tokio::time::sleep(window).await;
    let steady = received(&sim) - before;

    set_faults(
        &sim,
        Faults {
            fail_rate: 1.0,
            ..Faults::default()
        },
    );
    // The calls under way when it began, and their retries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = received(&sim);
    tokio::time::sleep(window).await;
    let outage = received(&sim) - before;
    assert!(
        outage * 2 < steady,
        "{outage} requests in {window:?} of outage against {steady} in steady state\n{}",
        agent.stderr_tail()
    );

    set_faults(&sim, Faults::default());
    let successes = |s: &Scrape| {
        s.value("popsel_stage_runs_total", &[("stage", "status")])
            .unwrap_or(0.0)
            - s.failures("status")
    };
    let at_recovery = successes(&crate::http::scrape(&base).await.expect("/metrics"));
    agent
        .scrape_until(
            &base,
            Duration::from_secs(30),
            "a status poll succeeding again",
            |s| s.value("popsel_api_up", &[]) == Some(1.0) && successes(s) > at_recovery,
        )
        .await;
}

/// A fleet restarted at once (an upgrade, a power cut) does not fetch the catalogue together:
/// an agent whose cached catalogue is fresh starts on it and refreshes it in its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_starts_on_its_fresh_cached_catalogue_without_fetching_it() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    site.write_config_with("[agent]\ncatalog_interval = \"1h\"\n");
    let fetches = |s: &Scrape| requests(s, "/api/v1/pops/ipsec", "GET");
    {
        let (agent, base) = site.start_agent(&[]).await;
        let first = agent.first_cycle(&base).await;
        assert_eq!(fetches(&first), 1.0, "{}", first.summary());
    }
    let (agent, base) = site.start_agent(&[]).await;
    let first = agent
        .scrape_until(
            &base,
            Duration::from_secs(15),
            "selections and tunnel states",
            |s| {
                s.series("popsel_selected_pop_info", &[]).len() == 4
                    && s.value("popsel_stage_runs_total", &[("stage", "status")]) >= Some(1.0)
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = crate::http::scrape(&base).await.expect("/metrics");
    assert_eq!(
        fetches(&later),
        0.0,
        "the cached catalogue was fetched again\n{}",
        agent.stderr_tail()
    );
    assert_eq!(first.value("popsel_catalog_pops", &[]), Some(52.0));
    assert_eq!(
        crate::http::get_status(&format!("{base}/readyz")).await,
        Some(200)
    );
}
