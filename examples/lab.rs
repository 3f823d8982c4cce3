//! The latency lab by hand (needs root): generates a world from a site, starts the lab (a
//! network namespace where 198.18.0.0/15 answers ICMP echo with latency derived from distance,
//! and a DNS server for the world's FQDNs), writes the catalogue, prints how to run popsel in
//! it, and stays up until Ctrl-C (or SIGTERM), then removes everything it started.
//!
//!     cargo build --bin popsel --example lab
//!     sudo target/debug/examples/lab --site 41.88,-87.63 --pops 60 --write-catalog /tmp/world.json
//!
//!     # the benchmark world of issue 14: a 40%-lossy PoP next to the best, random loss
//!     sudo target/debug/examples/lab --world lossy-neighbour --write-world /tmp/world.json
//!
//! The lab is popsel's (`src/lab.rs`, as `popsel demo` uses it), set up as the network tests
//! set it up (`tests/support/lab.rs`: a named namespace for `ip netns exec`, a DNS server in it,
//! real-time priority); `benches/fping_compare.py`, `benches/rank_adaptive.py` and
//! `benches/agent_resources.py` drive this example.

// The latency lab's test side, with what it finds at the crate root (as in the network tests);
// test support, of which this example uses a part.
#[allow(dead_code)]
#[path = "../tests/support/bounded.rs"]
mod bounded;
#[allow(dead_code)]
#[path = "../tests/support/dns.rs"]
mod dns;
#[allow(dead_code)]
#[path = "../tests/support/lab.rs"]
mod lab;
#[allow(dead_code)]
#[path = "../tests/support/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use lab::Lab;
use lab::world::{LossMode, NEIGHBOUR_POPS, Spec, World};
use popsel::location::Site;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "The popsel latency lab: emulated PoP latency in a network namespace")]
struct Args {
    /// Where the world is seen from, as LAT,LON
    #[arg(long, value_parser = Site::parse, allow_hyphen_values = true, default_value = "41.88,-87.63")]
    site: Site,
    /// Which world: `standard` (delay from distance, with the anomalies below) or
    /// `lossy-neighbour` (the benchmark of adaptive probing: a 40%-lossy PoP under 1 ms behind
    /// the best, two PoPs within 1 ms of each other just behind, one silent; 2 FQDNs per PoP,
    /// random loss)
    #[arg(long, value_enum, default_value_t = WorldKind::Standard)]
    world: WorldKind,
    /// PoPs in the catalogue [default: 60; lossy-neighbour: 45]
    #[arg(long)]
    pops: Option<usize>,
    /// FQDNs per PoP (one address each; the standard world)
    #[arg(long, default_value_t = 2)]
    fqdns_per_pop: usize,
    /// Seed of the world (city order, jitter)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No congested, lossy, silent, DNS-only or NXDOMAIN anomaly: every address answers (the
    /// standard world)
    #[arg(long)]
    no_anomalies: bool,
    /// Drop each echo request at random with its address's loss ratio (Bernoulli), rather
    /// than evenly (exactly 2 of every 5 at 40%); the lossy-neighbour world always does
    #[arg(long)]
    random_loss: bool,
    /// Seed of the random losses [default: a new one each start, printed]
    #[arg(long)]
    loss_seed: Option<u64>,
    /// Write the catalogue here [default: a file in the temp directory, removed at exit]
    #[arg(long)]
    write_catalog: Option<PathBuf>,
    /// Write a JSON description here: namespace, name server, every target with its delay,
    /// jitter and loss, and the expected order (as `popsel rank` probes it without DNS)
    #[arg(long)]
    write_world: Option<PathBuf>,
    /// At exit, write what the responder saw here (JSON: per address requests and replies)
    #[arg(long)]
    write_stats: Option<PathBuf>,
    /// Also run `popsel sim` with the catalogue inside the namespace
    #[arg(long)]
    sim: bool,
    /// The popsel binary [default: `popsel` in the directory above this example's]
    #[arg(long)]
    popsel: Option<PathBuf>,
    /// API token of the emulator (--sim)
    #[arg(long, default_value = "lab-token-0123456789")]
    token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WorldKind {
    Standard,
    LossyNeighbour,
}

impl Args {
    fn world(&self) -> Result<World, String> {
        match self.world {
            WorldKind::Standard => {
                let pops = self.pops.unwrap_or(60);
                if pops == 0 || self.fqdns_per_pop == 0 {
                    return Err("--pops and --fqdns-per-pop must be at least 1".into());
                }
                if pops < 6 && !self.no_anomalies {
                    return Err("the anomalies need --pops 6 or more (or --no-anomalies)".into());
                }
                let loss = if self.random_loss {
                    LossMode::Random
                } else {
                    LossMode::Even
                };
                Ok(World::generate(Spec {
                    fqdns_per_pop: self.fqdns_per_pop,
                    seed: self.seed,
                    anomalies: !self.no_anomalies,
                    loss,
                    ..Spec::new(self.site, pops)
                }))
            }
            WorldKind::LossyNeighbour => {
                let pops = self.pops.unwrap_or(NEIGHBOUR_POPS);
                if pops < 6 {
                    return Err("the lossy-neighbour world needs --pops 6 or more".into());
                }
                Ok(World::lossy_neighbour(self.site, pops, self.seed))
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let world = args.world()?;
    let popsel = args.popsel.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("popsel")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("popsel"))
    });
    let lab = match args.loss_seed {
        Some(seed) => Lab::start_with_loss_seed(world, seed)?,
        None => Lab::start(world)?,
    };
    let ns = lab.netns().to_owned();
    let (catalog, temporary) = match &args.write_catalog {
        Some(path) => (path.clone(), false),
        None => (
            std::env::temp_dir().join(format!("{ns}-catalog.json")),
            true,
        ),
    };
    lab.write_catalog(&catalog)?;
    let sim = if args.sim {
        Some(lab.start_sim(&popsel, &catalog, &args.token)?)
    } else {
        None
    };
    if let Some(path) = &args.write_world {
        write_world(path, &lab, &catalog, sim.as_ref())?;
    }
    print_how_to_run(&args, &lab, &popsel, &catalog, sim.as_ref());

    wait_for_signal()?;

    if let Some(path) = &args.write_stats {
        write_stats(path, &lab)?;
    }
    drop(sim);
    if temporary {
        let _ = std::fs::remove_file(&catalog);
    }
    drop(lab);
    eprintln!("lab: stopped, namespace {ns} deleted");
    Ok(())
}

/// The world as JSON, with where the lab serves it, for scripts (`--write-world`).
fn write_world(
    path: &Path,
    lab: &Lab,
    catalog: &Path,
    sim: Option<&lab::SimProcess>,
) -> Result<(), String> {
    let mut doc = lab.world().describe(false);
    doc["netns"] = json!(lab.netns());
    doc["nameserver"] = json!(lab.nameserver().to_string());
    doc["catalog"] = json!(catalog.display().to_string());
    doc["sim_url"] = json!(sim.map(|s| s.url.clone()));
    doc["loss_seed"] = json!(lab.loss_seed());
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// What the lab holds and the commands that run popsel in it.
fn print_how_to_run(
    args: &Args,
    lab: &Lab,
    popsel: &Path,
    catalog: &Path,
    sim: Option<&lab::SimProcess>,
) {
    let world = lab.world();
    let ns = lab.netns();
    let site = format!("{},{}", args.site.latitude, args.site.longitude);
    let targets = world.targets(true);
    let answering = targets
        .iter()
        .filter(|ip| world.links.contains_key(ip))
        .count();
    println!(
        "popsel lab ready: netns {ns} nameserver {} catalog {}",
        lab.nameserver(),
        catalog.display()
    );
    println!(
        "  {} PoPs, {} addresses with DNS ({answering} answer ICMP), seen from {site}",
        world.pops.len(),
        targets.len()
    );
    let label = |i: usize| world.pops[i].pop.id().to_string();
    if world.spec.loss == LossMode::Random {
        println!(
            "  random loss, seed {} (--loss-seed {} repeats it)",
            lab.loss_seed(),
            lab.loss_seed()
        );
    }
    if let Some(n) = &world.lossy_neighbour {
        println!(
            "  lossy neighbour: best {}, lossy {}, close pair {} and {}, silent {}",
            label(n.best),
            label(n.lossy),
            label(n.close[0]),
            label(n.close[1]),
            label(n.silent)
        );
    }
    if let Some(a) = &world.anomalies {
        println!(
            "  anomalies: congested {}, lossy {}, silent {}, DNS-only {} for {}, NXDOMAIN {}",
            label(a.congested),
            label(a.lossy),
            label(a.silent),
            a.dns_only_address,
            a.dns_extra_fqdn,
            a.nxdomain_fqdn
        );
    }
    println!(
        "  run:  ip netns exec {ns} {} rank --site {site} --catalog {} --nameserver {}",
        popsel.display(),
        catalog.display(),
        lab.nameserver()
    );
    if let Some(sim) = sim {
        println!(
            "  API:  POPSEL_API_URL={} POPSEL_API_TOKEN={} ip netns exec {ns} {} rank --site {site} --nameserver {}",
            sim.url,
            args.token,
            popsel.display(),
            lab.nameserver()
        );
    }
    println!("  Ctrl-C stops the lab and deletes the namespace");
}

/// What the responder did, per address (`--write-stats`).
fn write_stats(path: &Path, lab: &Lab) -> Result<(), String> {
    let stats = lab.stats();
    let mut per: Vec<_> = stats.snapshot().into_iter().collect();
    per.sort_by_key(|(ip, _)| *ip);
    let (mean, max) = stats.lateness();
    let doc = json!({
        "late_us_mean": mean.as_micros() as u64,
        "late_us_max": max.as_micros() as u64,
        "replies_sent": stats.sent.load(std::sync::atomic::Ordering::Relaxed),
        "send_errors": stats.send_errors.load(std::sync::atomic::Ordering::Relaxed),
        "addresses": per.iter().map(|(ip, s)| json!({
            "ip": ip.to_string(), "requests": s.requests, "replies": s.replies,
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string()),
            _ = term.recv() => Ok(()),
        }
    })
}
