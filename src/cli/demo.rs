//! `popsel demo`: the agent end to end with no account. Starts the Atmos API emulator
//! in-process on loopback with the sample catalogue, configures two locations, runs one full
//! agent cycle (catalogue, rank, select, reconcile, status), prints the ranking, the selection
//! and what it provisioned, then serves `/metrics` until Ctrl-C (`--once`: exits instead).
//!
//! The demo never probes: the sample catalogue's addresses are placeholders in the benchmarking
//! range (198.18.0.0/15) that only answer inside the latency lab, so it ranks by distance and
//! says so.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::rank_output::{self, Counts};
use super::{Table, provision, shutdown_signal};
use crate::agent::{self, Agent};
use crate::atmos::{Client, ClientConfig, Observer, Tunnel};
use crate::config::Config;
use crate::sim::{Sim, SimOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Exit after the cycle instead of serving metrics
    #[arg(long)]
    pub once: bool,
    /// Where to serve /metrics
    #[arg(long, default_value = "127.0.0.1:9469")]
    pub metrics_listen: SocketAddr,
}

/// A throwaway secret; it is never printed.
fn random_secret() -> SecretString {
    SecretString::from(
        std::iter::repeat_with(fastrand::alphanumeric)
            .take(24)
            .collect::<String>(),
    )
}

/// The demo's locations. The tests build their sites on the same file (src/fixtures.rs).
const SITE: &str = include_str!("../../config/demo-site.toml");

fn demo_config(api_url: &str, state_dir: &std::path::Path) -> anyhow::Result<Config> {
    let text = format!(
        r#"
[api]
base_url = "{api_url}"
[state]
dir = "{state}"
{SITE}"#,
        state = state_dir.display()
    );
    let psk = random_secret();
    Ok(Config::parse_with(
        &text,
        "(demo)",
        std::path::Path::new("."),
        &|_| Some(psk.expose_secret().to_owned()),
    )?)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown_signal();
    let token = random_secret();
    let sim = Sim::start(SimOptions::local(token.clone())).await?;
    let state_dir = std::env::temp_dir().join(format!("popsel-demo-{}", std::process::id()));
    println!(
        "Atmos API emulator on {} with the sample catalogue; state in {}",
        sim.url(),
        state_dir.display()
    );
    println!(
        "(the demo ranks by distance: the sample PoPs only answer ICMP inside the latency lab)\n"
    );
    let config = demo_config(&sim.url(), &state_dir)?;
    let url = sim.url();
    let factory: agent::ClientFactory = Box::new(move |_config, metrics| {
        let mut cc = ClientConfig::new(url.clone(), token.clone());
        cc.observer = Observer(Some(metrics.clone()));
        cc.retry = agent::STAGE_RETRY;
        Ok(Client::new(cc)?)
    });
    let agent = Agent::new(config.clone(), factory, true)?;
    tokio::pin!(shutdown);
    let ok = tokio::select! {
        ok = agent.cycle() => ok,
        stop = &mut shutdown => {
            sim.stop().await;
            let _ = std::fs::remove_dir_all(&state_dir);
            return Ok(stop.exit_code());
        }
    };

    for (location, ranking) in agent.rankings().iter() {
        let counts = Counts::of(ranking);
        let mut top = ranking.clone();
        top.pops.truncate(5);
        println!(
            "Ranking for {location} (top 5):\n{}",
            rank_output::table(&top, &counts)
        );
    }
    print!("{}", provision::selection_text(&config, &agent.selection()));
    let mut table = Table::new(&["LOCATION", "TUNNEL", "ID", "AUTHENTICATION ID", "STATUS"]);
    let provisioned = sim.with_store(|s| s.list::<Tunnel>());
    for (loc, t) in config.tunnels() {
        let found = provisioned.iter().find(|p| p.name == t.name);
        let status = found
            .and_then(|p| sim.with_store(|s| s.status::<Tunnel>(&p.id).ok()))
            .map_or("-".to_owned(), |s| s.to_string());
        table.row(vec![
            loc.name.clone(),
            t.name.clone(),
            found.map_or("(not created)".into(), |p| p.id.clone()),
            t.authentication_id.clone(),
            status,
        ]);
    }
    println!("\nTunnels provisioned through the API:\n{}", table.render());

    if !args.once {
        let (addr, server) = agent::serve_metrics(agent.clone(), args.metrics_listen).await?;
        println!("Metrics on http://{addr}/metrics (Ctrl-C to stop)");
        shutdown.await;
        server.abort();
    }
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
