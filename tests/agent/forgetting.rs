//! Managed tunnels are never forgotten on one listing: an empty or partial page from a flaky
//! API costs no PSK push and no adoption; only a tunnel missing from three consecutive
//! listings is forgotten, with a warning each time before.

use std::time::Duration;

use popsel::sim::Sim;
use serde_json::Value;

use crate::http::until;
use crate::process::*;
use crate::support::site::{CHICAGO_1, CHICAGO_2};
use crate::support::state_faults::{ListingFault, ListingProxy, PSKS, StateSite};
use crate::support::{self, assert_contains, assert_exit, show};

fn count(sim: &Sim, key: &str) -> u64 {
    sim.request_counts()[key].as_u64().unwrap_or(0)
}

/// What `tunnels.json` says of each tunnel, but the count of listings it was missing from.
fn records(site: &StateSite) -> Vec<(String, Value, Value)> {
    let managed = site.managed();
    let mut out: Vec<(String, Value, Value)> = managed["tunnels"]
        .as_object()
        .expect("tunnels")
        .iter()
        .map(|(id, m)| (id.clone(), m["name"].clone(), m["psk_fingerprint"].clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_or_partial_listing_forgets_nothing_and_pushes_no_psk() {
    let sim = support::start_sim(support::no_faults()).await;
    let proxy = ListingProxy::start(&sim.url()).await;
    let site = StateSite::new(&proxy.url);
    assert_exit(&site.apply().await, 0);
    let remembered = records(&site);
    assert_eq!(remembered.len(), PSKS.len());

    for faults in [
        vec![ListingFault::Empty],
        vec![ListingFault::Without(CHICAGO_1.into())],
        vec![ListingFault::Empty],
    ] {
        proxy.fault_next_listings(&faults);
        let puts = count(&sim, "PUT");
        let out = site.apply().await;
        assert_exit(&out, 0);
        assert_eq!(proxy.pending(), 0, "{faults:?}: the fault was used");
        assert_eq!(
            count(&sim, "PUT"),
            puts,
            "{faults:?}: a PSK pushed\n{}",
            show(&out)
        );
        assert_eq!(
            records(&site),
            remembered,
            "{faults:?}: tunnels.json changed"
        );
        assert_eq!(
            sim.with_store(|s| s.list::<popsel::atmos::Tunnel>()).len(),
            PSKS.len(),
            "{faults:?}: no duplicate"
        );
        assert!(!support::stdout(&out).contains("adopted"), "{}", show(&out));
    }
    let writes = count(&sim, "writes");
    assert_exit(&site.apply().await, 0);
    assert_eq!(count(&sim, "writes"), writes);
}

/// The agent, its reconcile stage meeting empty pages in a row (in its audits of the account,
/// here every second): nothing forgotten, no PSK pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_forgets_nothing_over_empty_listings() {
    let sim = support::start_sim(support::no_faults()).await;
    let proxy = ListingProxy::start(&sim.url()).await;
    let mut site = StateSite::new(&proxy.url);
    site.edit_config(|c| c.with("[agent]\naudit_interval = \"1s\"\n"));
    assert_exit(&site.apply().await, 0);
    let remembered = records(&site);
    let puts = count(&sim, "PUT");

    let agent = AgentProc::spawn(site.command("run", &[]));
    proxy.fault_next_listings(&[ListingFault::Empty, ListingFault::Empty]);
    until(
        Duration::from_secs(30),
        "both empty listings served",
        || proxy.pending() == 0,
    )
    .await;
    // A reconcile run or two after the faults.
    agent
        .wait_line(
            Stream::Stderr,
            "missing from the API",
            Duration::from_secs(10),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&sim, "PUT"), puts, "{}", agent.stderr_tail());
    let now: Vec<_> = records(&site);
    assert_eq!(now, remembered, "{}", agent.stderr_tail());
}

/// A tunnel the operator removed from the config and then deleted in the console is
/// remembered, with a warning, until three listings in a row have missed it; a configured
/// tunnel deleted in the console is created anew at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_deleted_in_the_console_is_forgotten_after_three_listings() {
    let sim = support::start_sim(support::no_faults()).await;
    let mut site = StateSite::new(&sim.url());
    assert_exit(&site.apply().await, 0);
    let secondary = crate::emulator::tunnel_id(&sim, CHICAGO_2);
    site.edit_config(|c| c.without_tunnel(CHICAGO_2));
    sim.with_store(|s| s.delete::<popsel::atmos::Tunnel>(&secondary))
        .expect("delete in the console");
    for listing in 1..=2 {
        let out = site.apply().await;
        assert_exit(&out, 0);
        let stderr = support::stderr(&out);
        assert_contains(&stderr, "missing from the API's tunnel list");
        assert_contains(&stderr, &format!("{listing} listing(s) in a row"));
        assert!(
            site.managed()["tunnels"].get(&secondary).is_some(),
            "forgotten after {listing} listing(s)"
        );
    }
    let out = site.apply().await;
    assert_exit(&out, 0);
    assert_contains(&support::stderr(&out), "forgotten");
    assert!(site.managed()["tunnels"].get(&secondary).is_none());
    let out = site.apply().await;
    assert_exit(&out, 0);
    assert!(!support::stderr(&out).contains(CHICAGO_2), "{}", show(&out));

    // A configured tunnel deleted in the console comes back on the next apply.
    let chicago = crate::emulator::tunnel_id(&sim, CHICAGO_1);
    sim.with_store(|s| s.delete::<popsel::atmos::Tunnel>(&chicago))
        .expect("delete in the console");
    let out = site.apply().await;
    assert_exit(&out, 0);
    assert_contains(&support::stdout(&out), "→ created");
    let recreated = crate::emulator::tunnel_id(&sim, CHICAGO_1);
    assert_ne!(recreated, chicago);
    assert!(
        site.managed()["tunnels"].get(&chicago).is_none(),
        "the old id is let go"
    );
    assert!(site.managed()["tunnels"].get(&recreated).is_some());
}
