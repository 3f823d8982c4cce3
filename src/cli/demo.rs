//! `popsel demo`: the agent end to end with no account. Starts the Atmos API emulator
//! in-process on loopback with the sample catalogue and configures two locations. Where it
//! may (root), it builds the latency lab in a network namespace of its own, the sample PoPs
//! answering there after delays from their distance ([`network`]), and ranks the location
//! measured from here by measured latency; elsewhere it ranks by distance and says what it
//! would take. Then one agent cycle, shown as it goes: the rankings (and where latency and
//! distance disagree), the plan as `popsel plan` prints it, the reconcile that carries it out,
//! the tunnels, and the next steps; then `/metrics` until Ctrl-C (`--once`: exits instead).
//!
//! Ctrl-C or SIGTERM at any point stops the emulator and removes the state dir; the lab's
//! namespace has no name and goes with the process, whatever ends it.

mod network;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::rank_output::{self, Counts};
use super::{Table, provision, shutdown_signal};
use crate::agent::{self, Agent};
use crate::atmos::{Client, ClientConfig, Observer, Tunnel};
use crate::config::Config;
use crate::pipeline::JOBS;
use crate::reconcile;
use crate::sim::{Sim, SimOptions};
use network::Network;

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

/// The sample catalogue, in the source tree (the next steps name it).
const SAMPLE_PATH: &str = "config/catalog.sample.json";

fn demo_config(api_url: &str, state_dir: &Path) -> anyhow::Result<Config> {
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
        Path::new("."),
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
    // Whatever happens in the demo, the emulator stops and the state dir goes.
    let result = demo(&args, &sim, token, &state_dir, shutdown).await;
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}

async fn demo(
    args: &DemoArgs,
    sim: &Sim,
    token: SecretString,
    state_dir: &Path,
    shutdown: impl Future<Output = super::Stop>,
) -> anyhow::Result<ExitCode> {
    let config = demo_config(&sim.url(), state_dir)?;
    let mut network = Network::start(&config);
    println!("{}\n", network.note);
    let url = sim.url();
    let factory: agent::ClientFactory = Box::new(move |_config, metrics| {
        let mut cc = ClientConfig::new(url.clone(), token.clone());
        cc.observer = Observer(Some(metrics.clone()));
        cc.retry = agent::STAGE_RETRY;
        Ok(Client::new(cc)?)
    });
    let agent = Agent::with_prober(config.clone(), factory, network.prober.take())?;
    tokio::pin!(shutdown);
    let ok = tokio::select! {
        ok = cycle(&agent, &config, sim, &network) => ok,
        stop = &mut shutdown => return Ok(stop.exit_code()),
    };
    if args.once {
        print!("{}", next_steps(&config, None));
    } else {
        let (addr, server) = agent::serve_metrics(agent.clone(), args.metrics_listen).await?;
        print!("{}", next_steps(&config, Some(addr)));
        println!("Metrics on http://{addr}/metrics (Ctrl-C to stop)");
        shutdown.await;
        server.abort();
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One agent cycle, job by job as the agent runs them, shown as it goes: the rankings after
/// the probe and select job, the reconcile plan before the reconcile job carries it out, the
/// tunnels after. Returns whether every stage succeeded.
async fn cycle(agent: &Agent, config: &Config, sim: &Sim, network: &Network) -> bool {
    let (measure, provision) = JOBS.split_at(2);
    let mut ok = true;
    for job in measure {
        ok &= agent.run_job(job).await;
    }
    for (location, ranking) in agent.rankings().iter() {
        let counts = Counts::of(ranking);
        let mut top = ranking.clone();
        top.pops.truncate(5);
        println!(
            "Ranking for {location} (top 5):\n{}",
            rank_output::table(&top, &counts)
        );
        if let Some(sentence) = network.contrast(location, ranking) {
            println!("{sentence}\n");
        }
    }
    println!("Plan (as `popsel plan` prints it; nothing is written yet):");
    print!("{}", provision::selection_text(config, &agent.selection()));
    match agent.tunnel_plan().await {
        Ok(plan) => print!("\n{}", reconcile::plan_text(&plan, None)),
        Err(e) => println!("\n(no plan: {e})"),
    }
    println!("\nApplying it: the agent's reconcile job, then its status job.");
    for job in provision {
        ok &= agent.run_job(job).await;
    }
    println!(
        "\nTunnels provisioned through the API:\n{}",
        tunnels_table(config, sim)
    );
    println!(
        "The tunnels stay Disconnected: the emulator provisions them through the API, but no \
         IPsec peer stands behind it to bring them up. Against Atmos a tunnel turns Connected \
         once the router's IKE SA with the PoP is up (the README's \"Hand-off to the router\").\n"
    );
    ok
}

/// The configured tunnels as the emulator holds them: ID and status.
fn tunnels_table(config: &Config, sim: &Sim) -> String {
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
    table.render()
}

/// What to try next; `metrics`: where the demo serves them (`None`: `--once`).
fn next_steps(config: &Config, metrics: Option<SocketAddr>) -> String {
    let site = config
        .locations
        .iter()
        .find(|l| l.local)
        .or(config.locations.first())
        .map_or("LAT,LON".to_owned(), |l| {
            format!("{},{}", l.site.latitude, l.site.longitude)
        });
    let curl = match metrics {
        Some(addr) => format!("  curl http://{addr}/metrics\n      the agent's metrics, while the demo runs\n"),
        None => "  curl http://127.0.0.1:9469/metrics\n      the agent's metrics, while `popsel demo` (without --once) runs\n".to_owned(),
    };
    format!(
        "Next steps:\n\
         \x20 popsel rank --site {site} --catalog {SAMPLE_PATH} --no-probe\n\
         \x20     rank the sample catalogue from the source tree yourself (by distance: its PoPs \
         answer only in the emulated network)\n\
         \x20 popsel rank --site LAT,LON --catalog FILE\n\
         \x20     rank your own PoPs by latency measured from this host\n\
         {curl}\
         \x20 popsel check --config FILE; popsel plan --config FILE\n\
         \x20     with your Atmos account (config/popsel.example.toml documents every key)\n"
    )
}
