//! The latency lab as the tests and `examples/lab.rs` run it: popsel's own lab (`popsel::lab`:
//! the world, the TUN device and the ICMP responder) set up in a *named* namespace,
//! `popsel-lab-<pid>-<n>` (the namespace guard of `netns.rs`), so that `ip netns exec` can run
//! `popsel rank`, `popsel run`, `popsel sim` and fping in it; with its loopback up and a DNS
//! server (`dns.rs`) for the world's FQDNs on its 127.0.0.1; and the lab's threads at a
//! real-time priority (SCHED_FIFO 10, through `chrt`), so that replies leave on time even when
//! the tests, run in parallel on 2 cores, keep the machine busy.
//!
//! The network test binary (`lab_rank`, `lab_agent`) and `examples/lab.rs` declare this file,
//! `dns.rs`, `netns.rs` and `bounded.rs` at their crate root, where this file finds them.
//! Dropping the [`Lab`] stops the DNS server and the lab, then deletes the namespace, also when
//! a test panics.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::{self, NetNs};

use popsel::lab::StopOnDrop;
pub use popsel::lab::responder::Stats;
pub use popsel::lab::world;
use world::World;

/// How long the DNS server, or `popsel sim` in the lab, may take to start.
const START_LIMIT: Duration = Duration::from_secs(15);
/// The lab's namespaces are `popsel-lab-<pid>-<n>` ([`netns`]).
const NETNS_PREFIX: &str = "popsel-lab-";
static NEXT_NETNS: AtomicUsize = AtomicUsize::new(0);

/// Ok when this process can run a lab: popsel's conditions (root), and the `ip` command that
/// names the namespace.
pub fn available() -> Result<(), String> {
    popsel::lab::available().map_err(|e| e.to_string())?;
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`ip -V` failed: {}", o.status)),
        Err(e) => Err(format!(
            "the latency lab's tests need the `ip` command (iproute2): {e}"
        )),
    }
}

/// A running lab. Everything it started stops when it is dropped.
pub struct Lab {
    // Dropped in this order: the threads that live in the namespace, then the namespace.
    dns: DnsThread,
    lab: popsel::lab::Lab,
    ns: NetNs,
}

impl Lab {
    /// Starts a lab for `world` (see the module docs). With random loss, the losses are drawn
    /// from a seed of this start ([`Lab::loss_seed`]): two labs of one world lose differently.
    pub fn start(world: World) -> Result<Lab, String> {
        Lab::start_with(world, None)
    }

    /// [`Lab::start`], drawing random losses from `loss_seed`: to repeat a run.
    pub fn start_with_loss_seed(world: World, loss_seed: u64) -> Result<Lab, String> {
        Lab::start_with(world, Some(loss_seed))
    }

    fn start_with(world: World, loss_seed: Option<u64>) -> Result<Lab, String> {
        available()?;
        netns::sweep_stale(NETNS_PREFIX);
        let ns = NetNs::create(
            NETNS_PREFIX,
            &NEXT_NETNS.fetch_add(1, Ordering::Relaxed).to_string(),
        )?;
        let handle =
            File::open(ns.path()).map_err(|e| format!("open {}: {e}", ns.path().display()))?;
        let zone = world
            .zone
            .iter()
            .map(|(name, ips)| (name.clone(), ips.iter().copied().map(IpAddr::V4).collect()))
            .collect();
        let options = popsel::lab::Options {
            netns: Some(handle),
            loss_seed,
            prepare_thread: Some(prioritize_this_thread),
        };
        // On an error below, what started is dropped: the namespace last.
        let lab = popsel::lab::Lab::start(world, options).map_err(|e| e.to_string())?;
        let dns = DnsThread::start(ns.name(), zone)?;
        Ok(Lab { dns, lab, ns })
    }

    pub fn world(&self) -> &World {
        self.lab.world()
    }

    /// The seed random losses are drawn from (see [`Lab::start`]); print it to repeat a run.
    pub fn loss_seed(&self) -> u64 {
        self.lab.loss_seed()
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn netns(&self) -> &str {
        self.ns.name()
    }

    /// The DNS server for the world's FQDNs (127.0.0.1 inside the namespace).
    pub fn nameserver(&self) -> SocketAddr {
        self.dns.addr
    }

    /// What the responder has seen so far.
    pub fn stats(&self) -> &Stats {
        self.lab.stats()
    }

    /// `ip netns exec <ns> <program>`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns.command(program)
    }

    /// Writes the world's catalogue to `path`.
    pub fn write_catalog(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.world().catalog_json())
            .map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// The world's catalogue written to `dir/catalog.json` and served by [`Lab::start_sim`]:
    /// what a test of `popsel` against the lab's API needs.
    pub fn serve_world(
        &self,
        popsel: &Path,
        dir: &Path,
        token: &str,
    ) -> Result<SimProcess, String> {
        let catalog = dir.join("catalog.json");
        self.write_catalog(&catalog)?;
        self.start_sim(popsel, &catalog, token)
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

/// The DNS server of the world's zone, on a thread of its own inside the namespace (on its
/// 127.0.0.1); stopped when dropped.
struct DnsThread {
    addr: SocketAddr,
    #[allow(dead_code)] // Held for its `Drop`, which stops the thread.
    thread: StopOnDrop,
}

impl DnsThread {
    fn start(ns: &str, zone: BTreeMap<String, Vec<IpAddr>>) -> Result<DnsThread, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = ns.to_owned();
        let thread = std::thread::Builder::new()
            .name("popsel-lab-dns".into())
            .spawn(move || {
                let started = netns::enter(&ns).and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("the DNS server's runtime: {e}"))
                });
                let runtime = match started {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async {
                    match crate::dns::start(world::DOMAIN, &zone).await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server.addr));
                            let _ = stop_rx.await;
                            drop(server);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| format!("start the DNS thread: {e}"))?;
        // On an error below, dropping `thread` stops it.
        let thread = StopOnDrop::new(stop_tx, thread);
        let addr = match ready_rx.recv_timeout(START_LIMIT) {
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "the DNS server did not start within {START_LIMIT:?}"
                ));
            }
        };
        Ok(DnsThread { addr, thread })
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
