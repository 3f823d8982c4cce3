//! The latency lab: a network namespace of its own in which 198.18.0.0/15 answers ICMP echo
//! with real, chosen latency, so that `popsel rank` can be shown to follow it.
//!
//! [`Lab::start`] takes a generated [`world::World`] and
//! 1. creates a namespace `popsel-lab-<pid>-<n>` ([`netns`]), loopback up;
//! 2. starts a thread that enters it (`setns`, that thread only) and there creates the TUN
//!    device `lab0` with 198.19.255.254/15, so the whole benchmarking range routes to it, and
//!    runs a current-thread tokio runtime with the ICMP [`responder`] (replies sent at their
//!    time by a clock thread) and the [`dns`] server for the world's FQDNs on the namespace's
//!    127.0.0.1;
//! 3. gives back the namespace's name and the DNS server's address.
//!
//! popsel then runs inside the namespace as a process: `ip netns exec <ns> popsel rank ...`
//! ([`Lab::command`]), and so can `popsel sim` ([`Lab::start_sim`]). Nothing leaves the
//! namespace: its only interfaces are its loopback and the TUN device, which the lab reads.
//! Dropping the [`Lab`] stops the thread and deletes the namespace, also when a test panics.
//!
//! Loss is even by default (exactly the configured share of any run of requests, which tests
//! rely on); a world with [`world::LossMode::Random`] has it drawn per request from a seed of
//! each start ([`Lab::loss_seed`]; [`Lab::start_with_loss_seed`] repeats one).
//!
//! Used by the network test binary (`tests/network/`: `lab_rank`) and by `examples/lab.rs` (by
//! hand, and by the benchmarks `benches/fping_compare.py` and `benches/rank_adaptive.py`); both
//! include this directory with `#[path]`. The namespace guard and bounded commands are the
//! IPsec lab's too: `../netns.rs` and `../bounded.rs`, included here with `#[path]` (so that
//! `examples/lab.rs` needs no `support`).

#![allow(dead_code)]

// The namespace guard and bounded commands are the IPsec lab's (`support`) too. The network
// test binary holds both labs and so two copies of these two modules, each lab using its own:
// the price of `examples/lab.rs` needing no `support`.
#[allow(clippy::duplicate_mod)]
#[path = "../bounded.rs"]
pub mod bounded;
#[path = "../dns.rs"]
pub mod dns;
#[allow(clippy::duplicate_mod)]
#[path = "../netns.rs"]
pub mod netns;
pub mod responder;
pub mod world;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns::NetNs;
use responder::{Clock, Responder, Stats};
use world::{LAB_ADDRESS, LAB_PREFIX, LossMode, World};

/// Name of the TUN device inside the namespace.
pub const TUN_NAME: &str = "lab0";
/// How long the lab, or `popsel sim` in it, may take to start.
const START_LIMIT: Duration = Duration::from_secs(15);
/// The lab's namespaces are `popsel-lab-<pid>-<n>` ([`netns`]).
const NETNS_PREFIX: &str = "popsel-lab-";
static NEXT_NETNS: AtomicUsize = AtomicUsize::new(0);

/// A running lab. Everything it started stops when it is dropped.
pub struct Lab {
    world: World,
    /// Seeds the losses drawn in [`LossMode::Random`] (unused with even loss).
    loss_seed: u64,
    nameserver: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    // Last: the namespace goes after the thread that lives in it has ended.
    ns: NetNs,
}

/// Ok when this process can run a lab: root, `/dev/net/tun`, the `ip` command.
pub fn available() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!(
            "the latency lab needs root (network namespaces, TUN); effective uid is {euid}"
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err("the latency lab needs /dev/net/tun".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`ip -V` failed: {}", o.status)),
        Err(e) => Err(format!(
            "the latency lab needs the `ip` command (iproute2): {e}"
        )),
    }
}

impl Lab {
    /// Starts a lab for `world` (see the module docs). With random loss, the losses are drawn
    /// from a seed of this start ([`Lab::loss_seed`]): two labs of one world lose differently.
    pub fn start(world: World) -> Result<Lab, String> {
        Lab::start_with_loss_seed(world, fastrand::u64(..))
    }

    /// [`Lab::start`], drawing random losses from `loss_seed`: to repeat a run.
    pub fn start_with_loss_seed(world: World, loss_seed: u64) -> Result<Lab, String> {
        available()?;
        netns::sweep_stale(NETNS_PREFIX);
        let ns = NetNs::create(
            NETNS_PREFIX,
            &NEXT_NETNS.fetch_add(1, Ordering::Relaxed).to_string(),
        )?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let stats = Arc::new(Stats::default());
        let links = world.links.iter().map(|(ip, l)| (*ip, *l)).collect();
        let mut responder = Responder::new(links, world.spec.seed, stats.clone());
        if world.spec.loss == LossMode::Random {
            responder = responder.random_loss(loss_seed);
        }
        let job = LabThread {
            ns: ns.name().to_owned(),
            responder,
            zone: world.zone.clone(),
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("popsel-lab".into())
            .spawn(move || job.run(ready_tx, stop_rx))
            .map_err(|e| format!("start the lab thread: {e}"))?;
        let mut lab = Lab {
            world,
            loss_seed,
            nameserver: None,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
            ns,
        };
        // On any error below, dropping `lab` stops the thread and deletes the namespace.
        match ready_rx.recv_timeout(START_LIMIT) {
            Ok(Ok(addr)) => lab.nameserver = Some(addr),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("the lab did not start within {START_LIMIT:?}")),
        }
        Ok(lab)
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// The seed random losses are drawn from (see [`Lab::start`]); print it to repeat a run.
    pub fn loss_seed(&self) -> u64 {
        self.loss_seed
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn netns(&self) -> &str {
        self.ns.name()
    }

    /// The DNS server for the world's FQDNs (127.0.0.1 inside the namespace).
    pub fn nameserver(&self) -> SocketAddr {
        self.nameserver.expect("a started lab has a name server")
    }

    /// What the responder has seen so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// `ip netns exec <ns> <program>`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns.command(program)
    }

    /// Writes the world's catalogue to `path`.
    pub fn write_catalog(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.world.catalog_json())
            .map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// Runs `popsel sim --listen 127.0.0.1:0 --catalog <catalog>` inside the namespace with
    /// `token`, and waits until it says where it listens.
    pub fn start_sim(
        &self,
        popsel: &Path,
        catalog: &Path,
        token: &str,
    ) -> Result<SimProcess, String> {
        let mut cmd = self.command(popsel);
        cmd.args(["sim", "--listen", "127.0.0.1:0", "--catalog"])
            .arg(catalog)
            .env("POPSEL_API_TOKEN", token)
            .env_remove("POPSEL_API_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("run {cmd:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads stdout until the emulator ends, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("popsel sim listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let mut sim = SimProcess {
            child,
            url: String::new(),
        };
        sim.url = rx
            .recv_timeout(START_LIMIT)
            .map_err(|_| format!("`popsel sim` did not start within {START_LIMIT:?}"))?;
        Ok(sim)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `popsel sim` running in a lab; killed when dropped.
pub struct SimProcess {
    child: Child,
    /// Where it listens (`http://127.0.0.1:PORT`, inside the namespace).
    pub url: String,
}

impl SimProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives the calling thread a real-time priority (SCHED_FIFO 10, through `chrt`), so that
/// replies leave on time even when the machine is busy (tests run in parallel on 2 cores). A
/// best effort: without `chrt` or the privilege the thread keeps its normal priority.
fn prioritize_this_thread() {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|link| Some(link.file_name()?.to_string_lossy().into_owned()))
    else {
        return;
    };
    let _ = Command::new("chrt")
        .args(["--fifo", "--pid", "10", &tid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What the lab thread needs.
struct LabThread {
    ns: String,
    /// Built by [`Lab::start`], with the world's links and loss mode.
    responder: Responder,
    zone: std::collections::BTreeMap<String, Vec<std::net::Ipv4Addr>>,
    stats: Arc<Stats>,
}

impl LabThread {
    /// In the namespace: the TUN device, a duplicate of its descriptor for the clock thread to
    /// write replies through, and the runtime of the reader and the DNS server.
    fn setup(
        &self,
    ) -> Result<(tun_rs::SyncDevice, std::fs::File, tokio::runtime::Runtime), String> {
        netns::enter(&self.ns)?;
        // The reader time-stamps arrivals: it must not wait for a CPU either.
        prioritize_this_thread();
        let device = tun_rs::DeviceBuilder::new()
            .name(TUN_NAME)
            .ipv4(LAB_ADDRESS, LAB_PREFIX, None)
            .mtu(1500)
            .enable(true)
            .build_sync()
            .map_err(|e| format!("create the TUN device in {}: {e}", self.ns))?;
        // The clock thread writes replies through a duplicate of the descriptor (the same TUN
        // queue; a second queue would also be handed packets to read).
        let writer = device
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| format!("duplicate the TUN descriptor: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("lab runtime: {e}"))?;
        Ok((device, writer, runtime))
    }

    fn run(
        self,
        ready: mpsc::Sender<Result<SocketAddr, String>>,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let (device, writer, runtime) = match self.setup() {
            Ok(parts) => parts,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let clock = Arc::new(Clock::default());
        let clock_thread = {
            let (clock, stats) = (clock.clone(), self.stats.clone());
            std::thread::Builder::new()
                .name("popsel-lab-clock".into())
                .spawn(move || {
                    prioritize_this_thread();
                    clock.run(|p| (&writer).write(p), &stats)
                })
        };
        let clock_thread = match clock_thread {
            Ok(t) => t,
            Err(e) => {
                let _ = ready.send(Err(format!("start the clock thread: {e}")));
                return;
            }
        };
        let mut responder = self.responder;
        runtime.block_on(async {
            let reader = match tun_rs::AsyncDevice::new(device) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(format!("TUN device on tokio: {e}")));
                    return;
                }
            };
            let zone = self
                .zone
                .iter()
                .map(|(name, ips)| {
                    (
                        name.clone(),
                        ips.iter().copied().map(std::net::IpAddr::V4).collect(),
                    )
                })
                .collect();
            let dns = match dns::start(world::DOMAIN, &zone).await {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(dns.addr));
            let mut buf = vec![0u8; 65536];
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    read = reader.recv(&mut buf) => match read {
                        Ok(n) => {
                            let arrival = Instant::now();
                            if let Some((at, reply)) = responder.answer(&buf[..n], arrival) {
                                clock.schedule(at, reply);
                            }
                        }
                        Err(e) => {
                            eprintln!("lab: reading the TUN device failed: {e}");
                            break;
                        }
                    },
                }
            }
            drop(dns);
        });
        clock.stop();
        let _ = clock_thread.join();
    }
}
