//! The latency lab: a network namespace in which 198.18.0.0/15 answers ICMP echo with real,
//! chosen latency, so that popsel's ranking can be shown to follow it. `popsel demo` measures
//! in one; the network tests, `examples/lab.rs` and the benchmarks run `popsel` in one.
//!
//! [`Lab::start`] takes a [`world::World`] (which address answers after how long, which loses
//! what) and starts a thread that
//! 1. enters the lab's namespace: a new one of its own (`unshare`), or the one it is given
//!    ([`Options::netns`], e.g. a named `/run/netns/…` that other processes can `ip netns
//!    exec` into);
//! 2. there creates the TUN device `lab0` with 198.19.255.254/15 (ioctls, no `ip`), so that the
//!    whole benchmarking range routes to it;
//! 3. reads the echo requests from it and has the [`responder`] answer each at its time.
//!
//! Nothing leaves the namespace: its only interfaces are its loopback (down, unless whoever
//! named it brought it up) and the TUN device, which the lab reads. Sockets join it when they
//! are made on a thread that is inside it: [`Lab::inside`] runs a closure on a thread of its own
//! that has entered it (`setns` moves only the calling thread), so that the sockets it makes
//! live there for good, wherever they are used from, and no other thread ever changes
//! namespace.
//!
//! A namespace of the lab's own has no name: only the lab's handle on it, the sockets made
//! inside and its thread keep it alive, and the kernel removes it with the last of them, also
//! when the process is killed. Nothing is left behind to clean up. Dropping the [`Lab`] stops its
//! threads.
//!
//! Loss is even by default (exactly the configured share of any run of requests, which tests
//! rely on); a world with [`world::LossMode::Random`] has it drawn per request from a seed of
//! each start ([`Lab::loss_seed`], [`Options::loss_seed`] to repeat one).
//!
//! Needs CAP_SYS_ADMIN (a network namespace), CAP_NET_ADMIN (the TUN device) and, to probe in
//! it, CAP_NET_RAW (ping sockets are off in a new namespace): [`available`] says which are
//! missing.

pub mod responder;
pub mod world;

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns, unshare};

use responder::{Clock, Responder, Stats};
use world::{LAB_ADDRESS, LAB_PREFIX, LossMode, World};

/// Name of the TUN device inside the namespace.
pub const TUN_NAME: &str = "lab0";
/// How long the lab may take to start.
const START_LIMIT: Duration = Duration::from_secs(15);

/// The capabilities a lab needs (bit numbers of linux/capability.h), and what for.
const NEEDED: [(u32, &str, &str); 3] = [
    (21, "CAP_SYS_ADMIN", "a network namespace"),
    (12, "CAP_NET_ADMIN", "a TUN device"),
    (13, "CAP_NET_RAW", "ICMP sockets in it"),
];

/// Why this process cannot run a lab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "the latency lab needs CAP_SYS_ADMIN (a network namespace), CAP_NET_ADMIN (a TUN device) and CAP_NET_RAW (ICMP sockets in it); this process lacks {}",
        missing.join(", ")
    )]
    Capabilities { missing: Vec<&'static str> },
    #[error("the latency lab needs /dev/net/tun (the tun kernel module)")]
    NoTun,
    #[error("cannot tell this process's capabilities: {0}")]
    Unknown(String),
}

/// A lab that did not start, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabError(String);

impl From<Unavailable> for LabError {
    fn from(e: Unavailable) -> Self {
        LabError(e.to_string())
    }
}

/// The capabilities of [`NEEDED`] missing from the effective set in `status` (the text of
/// `/proc/self/status`), by name.
pub fn missing_capabilities(status: &str) -> Result<Vec<&'static str>, String> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or("no CapEff line in /proc/self/status")?
        .trim();
    let effective =
        u64::from_str_radix(hex, 16).map_err(|e| format!("CapEff {hex:?} is not hex: {e}"))?;
    Ok(NEEDED
        .iter()
        .filter(|(bit, _, _)| effective & (1 << bit) == 0)
        .map(|(_, name, _)| *name)
        .collect())
}

/// Ok when this process can run a lab: the capabilities of the module's docs (root has them)
/// and `/dev/net/tun`.
pub fn available() -> Result<(), Unavailable> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Unavailable::Unknown(format!("read /proc/self/status: {e}")))?;
    let missing = missing_capabilities(&status).map_err(Unavailable::Unknown)?;
    if !missing.is_empty() {
        return Err(Unavailable::Capabilities { missing });
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(Unavailable::NoTun);
    }
    Ok(())
}

/// How to start a lab.
#[derive(Debug, Default)]
pub struct Options {
    /// The namespace to set up in (an open `/run/netns/NAME`); `None`: a new one of the lab's
    /// own (see the module's docs).
    pub netns: Option<File>,
    /// Seeds the losses of a world with random loss; `None`: a new seed each start.
    pub loss_seed: Option<u64>,
    /// Called first on the lab's reader and clock threads, inside the namespace: the tests and
    /// benchmarks give them a real-time priority there, so that replies leave on time on a
    /// busy machine.
    pub prepare_thread: Option<fn()>,
}

/// A running lab. Its threads stop when it is dropped.
pub struct Lab {
    world: World,
    /// Seeds the losses drawn in [`LossMode::Random`] (unused with even loss).
    loss_seed: u64,
    stats: Arc<Stats>,
    // Held for its `Drop`, which stops the thread. First: the thread ends before the handle on
    // its namespace is closed.
    #[allow(dead_code)]
    running: StopOnDrop,
    /// A handle on the namespace (`/proc/thread-self/ns/net` of the lab's thread).
    netns: File,
}

/// A thread that runs until told to stop (`stop`, the sending end of what it waits on): told
/// and joined when dropped. The lab's; the tests' DNS server in a lab runs on one too.
pub struct StopOnDrop {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StopOnDrop {
    pub fn new(stop: tokio::sync::oneshot::Sender<()>, thread: JoinHandle<()>) -> StopOnDrop {
        StopOnDrop {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Lab {
    /// Starts a lab for `world` (see the module's docs). With random loss, the losses are
    /// drawn from `options.loss_seed`, or a seed of this start: two labs of one world then
    /// lose differently.
    pub fn start(world: World, options: Options) -> Result<Lab, LabError> {
        available()?;
        let loss_seed = options.loss_seed.unwrap_or_else(|| fastrand::u64(..));
        let stats = Arc::new(Stats::default());
        let links = world.links.iter().map(|(ip, l)| (*ip, *l)).collect();
        let mut responder = Responder::new(links, world.spec.seed, stats.clone());
        if world.spec.loss == LossMode::Random {
            responder = responder.random_loss(loss_seed);
        }
        let job = LabThread {
            netns: options.netns,
            prepare: options.prepare_thread,
            responder,
            stats: stats.clone(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("popsel-lab".into())
            .spawn(move || job.run(ready_tx, stop_rx))
            .map_err(|e| LabError(format!("start the lab's thread: {e}")))?;
        // On an error below, dropping `running` stops the thread.
        let running = StopOnDrop::new(stop_tx, thread);
        let netns = match ready_rx.recv_timeout(START_LIMIT) {
            Ok(Ok(netns)) => netns,
            Ok(Err(e)) => return Err(LabError(e)),
            Err(_) => {
                return Err(LabError(format!(
                    "the lab did not start within {START_LIMIT:?}"
                )));
            }
        };
        Ok(Lab {
            world,
            loss_seed,
            stats,
            running,
            netns,
        })
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// The seed random losses are drawn from (see [`Lab::start`]); print it to repeat a run.
    pub fn loss_seed(&self) -> u64 {
        self.loss_seed
    }

    /// What the responder has seen so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Runs `f` on a thread of its own inside the lab's namespace and returns what it returns:
    /// sockets `f` makes live in the namespace for good, wherever they are used from. The
    /// thread ends with `f`; no other thread changes namespace. To open ICMP sockets for a
    /// tokio runtime, enter the runtime's handle in `f`.
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
        let netns = &self.netns;
        std::thread::scope(|scope| {
            let inside = std::thread::Builder::new()
                .name("popsel-lab-inside".into())
                .spawn_scoped(scope, move || {
                    setns(netns, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| LabError(format!("enter the lab's namespace: {e}")))?;
                    Ok(f())
                })
                .map_err(|e| LabError(format!("start a thread in the lab's namespace: {e}")))?;
            inside.join().unwrap_or_else(|_| {
                Err(LabError(
                    "the thread in the lab's namespace panicked".into(),
                ))
            })
        })
    }
}

/// What the lab's thread needs.
struct LabThread {
    netns: Option<File>,
    prepare: Option<fn()>,
    /// Built by [`Lab::start`], with the world's links and loss mode.
    responder: Responder,
    stats: Arc<Stats>,
}

/// What the lab's thread has set up: the handle on its namespace, the TUN device, a duplicate
/// of its descriptor for the clock thread to write replies through, and the reader's runtime.
struct SetUp {
    netns: File,
    device: tun_rs::SyncDevice,
    writer: File,
    runtime: tokio::runtime::Runtime,
}

impl LabThread {
    /// Enters the namespace (a new one, or the one given) and sets the TUN device up in it.
    fn setup(&mut self) -> Result<SetUp, String> {
        match self.netns.take() {
            Some(given) => setns(&given, CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("enter the lab's network namespace: {e}"))?,
            None => unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("create a network namespace: {e}"))?,
        }
        let netns = File::open("/proc/thread-self/ns/net")
            .map_err(|e| format!("open the lab's namespace (/proc/thread-self/ns/net): {e}"))?;
        // The reader time-stamps arrivals: it must not wait for a CPU either.
        if let Some(prepare) = self.prepare {
            prepare();
        }
        let device = tun_rs::DeviceBuilder::new()
            .name(TUN_NAME)
            .ipv4(LAB_ADDRESS, LAB_PREFIX, None)
            .mtu(1500)
            .enable(true)
            .build_sync()
            .map_err(|e| format!("create the TUN device {TUN_NAME}: {e}"))?;
        // The clock thread writes replies through a duplicate of the descriptor (the same TUN
        // queue; a second queue would also be handed packets to read).
        let writer = device
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|e| format!("duplicate the TUN descriptor: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the lab's runtime: {e}"))?;
        Ok(SetUp {
            netns,
            device,
            writer,
            runtime,
        })
    }

    fn run(
        mut self,
        ready: mpsc::Sender<Result<File, String>>,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let SetUp {
            netns,
            device,
            writer,
            runtime,
        } = match self.setup() {
            Ok(parts) => parts,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let clock = Arc::new(Clock::default());
        let clock_thread = {
            let (clock, stats, prepare) = (clock.clone(), self.stats.clone(), self.prepare);
            std::thread::Builder::new()
                .name("popsel-lab-clock".into())
                .spawn(move || {
                    if let Some(prepare) = prepare {
                        prepare();
                    }
                    clock.run(|p| (&writer).write(p), &stats)
                })
        };
        let clock_thread = match clock_thread {
            Ok(t) => t,
            Err(e) => {
                let _ = ready.send(Err(format!("start the lab's clock thread: {e}")));
                return;
            }
        };
        let mut responder = self.responder;
        runtime.block_on(async {
            let reader = match tun_rs::AsyncDevice::new(device) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready.send(Err(format!("the TUN device on tokio: {e}")));
                    return;
                }
            };
            let _ = ready.send(Ok(netns));
            let mut buf = vec![0u8; 65536];
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    read = reader.recv(&mut buf) => match read {
                        Ok(n) => {
                            let arrival = Instant::now();
                            let packet = buf.get(..n).unwrap_or_default();
                            if let Some((at, reply)) = responder.answer(packet, arrival) {
                                clock.schedule(at, reply);
                            }
                        }
                        Err(e) => {
                            tracing::warn!("lab: reading the TUN device failed: {e}");
                            break;
                        }
                    },
                }
            }
        });
        clock.stop();
        let _ = clock_thread.join();
    }
}

#[cfg(test)]
#[path = "lab_tests.rs"]
mod tests;
