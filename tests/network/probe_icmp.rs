//! The probe stage against the real kernel: ICMP echo over loopback, and inside network
//! namespaces the tests create themselves (198.18.0.0/15 there). No packet goes anywhere else.
//!
//! Most tests need root (raw sockets, `ip netns`); they start with `support::can_run_privileged`,
//! which skips them elsewhere and fails them under CI=true. The unprivileged cases run the
//! `popsel` binary inside a namespace as uid/gid 65534 with every capability dropped.

use crate::support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use popsel::location::{Location, Site};
use popsel::pipeline::{Notice, ProberSlot, Report};
use popsel::probe::icmp::{Prober, SocketKind};
use popsel::probe::{Probe, ProbeSettings, Probes};
use popsel::progress::{Phase, Progress};
use serde_json::Value;
use support::assert_contains;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Calls `support::can_run_privileged` with the outcome of a precondition and hands back its
/// value when the test may go on.
fn privileged<T>(ready: Result<T, String>) -> Option<T> {
    match ready {
        Ok(v) => support::can_run_privileged(Ok(())).then_some(v),
        Err(why) => {
            support::can_run_privileged(Err(why));
            None
        }
    }
}

/// An executable by name, from PATH or the usual system directories (root's tools live in
/// /usr/sbin, which a test runner's PATH may lack).
fn tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("`{name}` is not installed"))
}

/// One field of /proc/self/status.
fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Root with CAP_NET_RAW (bit 13) in the effective set: raw ICMP sockets open.
fn raw_icmp_allowed() -> Result<(), String> {
    support::is_root()?;
    let eff = status_field("CapEff").ok_or("no CapEff in /proc/self/status")?;
    let eff = u64::from_str_radix(&eff, 16).map_err(|e| format!("CapEff {eff:?}: {e}"))?;
    if eff & (1 << 13) == 0 {
        return Err("root without CAP_NET_RAW".into());
    }
    Ok(())
}

/// Root, raw ICMP, and the `ip` tool: what a namespace test needs before it makes one.
fn netns_allowed() -> Result<PathBuf, String> {
    raw_icmp_allowed()?;
    tool("ip")
}

/// The host's `net.ipv4.ping_group_range`, as (low, high).
fn ping_group_range() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0));
    (it.next().unwrap_or(1), it.next().unwrap_or(0))
}

/// Which socket kind `Prober::new` should pick in this process: a ping socket when the range
/// admits the effective gid or a supplementary group, else a raw one.
fn expected_socket_kind() -> SocketKind {
    let (low, high) = ping_group_range();
    let egid = status_field("Gid")
        .and_then(|g| g.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let groups: Vec<u64> = status_field("Groups")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    if std::iter::once(egid)
        .chain(groups)
        .any(|g| low <= g && g <= high)
    {
        SocketKind::Ping
    } else {
        SocketKind::Raw
    }
}

fn has_ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Checks that `probe` of `ip` got every reply and nothing else.
fn assert_clean(ip: IpAddr, probe: &Probe, count: u16) {
    let count = u32::from(count);
    assert_eq!(probe.sent, count, "{ip}: sent, {probe:?}");
    assert_eq!(probe.received, count, "{ip}: received, {probe:?}");
    assert_eq!(probe.rtts.len(), count as usize, "{ip}: rtts, {probe:?}");
    assert_eq!(probe.loss(), 0.0, "{ip}: loss, {probe:?}");
    assert!(probe.reachable(), "{ip}: {probe:?}");
    assert_eq!(probe.error, None, "{ip}: {probe:?}");
}

/// What the engine counted into its progress: every address done with and answered, every
/// request and reply (`count` of each to each of `n` clean addresses).
fn assert_counted(progress: &Progress, n: usize, count: u64) {
    let s = progress.snapshot();
    let n = n as u64;
    assert_eq!(s.phase, Phase::Probe, "{s:?}");
    assert_eq!(s.answered, (n, n), "{s:?}");
    assert_eq!(s.addresses_done, n, "{s:?}");
    assert_eq!((s.requests, s.replies), (n * count, n * count), "{s:?}");
}

static NETNS_SERIAL: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of this test run, deleted on drop (also when the test panics).
struct Netns {
    ip: PathBuf,
    name: String,
}

impl Netns {
    /// `popsel-t-<pid>-<n>` with `lo` up.
    fn create(ip: &Path) -> Result<Netns, String> {
        let name = format!(
            "popsel-t-{}-{}",
            std::process::id(),
            NETNS_SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(ip)
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("ip netns add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add {name}: {}",
                support::stderr(&out).trim()
            ));
        }
        // From here on the guard owns the namespace.
        let ns = Netns {
            ip: ip.to_owned(),
            name,
        };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Moves the calling thread into this namespace, with a runtime of its own to probe from
    /// there (sockets opened on it live in the namespace).
    fn enter_with_runtime(&self) -> tokio::runtime::Runtime {
        support::netns::enter(&self.name).expect("enter the namespace");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// `ip netns exec NAME program args...`, not yet run.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", &self.name, program]);
        for var in ["POPSEL_API_URL", "POPSEL_API_TOKEN", "POPSEL_LOG"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Runs a command inside the namespace; Err with its stderr when it fails.
    fn run(&self, argv: &[&str]) -> Result<String, String> {
        let out = self
            .command(argv[0])
            .args(&argv[1..])
            .output()
            .map_err(|e| format!("{argv:?} in {}: {e}", self.name))?;
        if out.status.success() {
            Ok(support::stdout(&out))
        } else {
            Err(format!(
                "{argv:?} in {}: {} {}",
                self.name,
                out.status,
                support::stderr(&out).trim()
            ))
        }
    }

    /// Sets `net.ipv4.ping_group_range` of this namespace only, and reads it back.
    fn set_ping_group_range(&self, range: &str) {
        let script = format!("echo '{range}' > /proc/sys/net/ipv4/ping_group_range");
        self.run(&["sh", "-c", &script])
            .expect("set ping_group_range in the namespace");
        let now = self
            .run(&["cat", "/proc/sys/net/ipv4/ping_group_range"])
            .expect("read ping_group_range in the namespace");
        assert_eq!(
            now.split_whitespace().collect::<Vec<_>>(),
            range.split_whitespace().collect::<Vec<_>>(),
            "ping_group_range in {}",
            self.name
        );
    }

    /// Makes 198.18.0.0/15 a silent network: it lives behind one end of a veth pair whose other
    /// end has no address, and 198.18.0.1 has a fixed MAC nobody owns, so requests leave the
    /// interface and are never answered (no ARP, no ICMP error). Returns the interface whose
    /// transmit counter shows the requests went out; `None` when veth is not available here and
    /// a blackhole route stands in (the send then fails locally, which is silent too).
    fn make_silent_network(&self) -> Option<&'static str> {
        let veth = self
            .run(&[
                "ip", "link", "add", "pv0", "type", "veth", "peer", "name", "pv1",
            ])
            .and_then(|_| self.run(&["ip", "link", "set", "pv1", "up"]))
            .and_then(|_| self.run(&["ip", "addr", "add", "198.18.255.254/15", "dev", "pv0"]))
            .and_then(|_| self.run(&["ip", "link", "set", "pv0", "up"]))
            .and_then(|_| {
                self.run(&[
                    "ip",
                    "neigh",
                    "replace",
                    "198.18.0.1",
                    "lladdr",
                    "02:00:00:00:00:01",
                    "dev",
                    "pv0",
                    "nud",
                    "permanent",
                ])
            });
        match veth {
            Ok(_) => Some("pv0"),
            Err(why) => {
                eprintln!("veth not available ({why}); using a blackhole route");
                self.run(&["ip", "route", "add", "blackhole", "198.18.0.0/15"])
                    .expect("blackhole route");
                None
            }
        }
    }

    /// Packets sent by `dev` in this namespace.
    fn tx_packets(&self, dev: &str) -> u64 {
        let path = format!("/sys/class/net/{dev}/statistics/tx_packets");
        self.run(&["cat", &path])
            .expect("read tx_packets")
            .trim()
            .parse()
            .expect("tx_packets is a number")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .output();
        match deleted {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "could not delete netns {}: {}",
                self.name,
                support::stderr(&out).trim()
            ),
            Err(e) => eprintln!("could not delete netns {}: {e}", self.name),
        }
    }
}

/// How to run a program as uid/gid 65534 with no capability at all, and a `popsel` binary that
/// user can execute. Holds the temporary copy of the binary when one was needed.
struct Unprivileged {
    prefix: Vec<String>,
    popsel: PathBuf,
    _copy: Option<tempfile::TempDir>,
}

const NOBODY: &str = "65534";

impl Unprivileged {
    fn new() -> Result<Unprivileged, String> {
        let prefix: Vec<String> = match tool("setpriv") {
            Ok(setpriv) => vec![
                setpriv.display().to_string(),
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--no-new-privs".into(),
            ],
            // runuser drops every capability when it switches root to another user.
            Err(_) => match tool("runuser") {
                Ok(runuser) => vec![
                    runuser.display().to_string(),
                    "-u".into(),
                    "nobody".into(),
                    "--".into(),
                ],
                Err(_) => return Err("neither setpriv nor runuser is installed".into()),
            },
        };
        let built = PathBuf::from(env!("CARGO_BIN_EXE_popsel"));
        let mut me = Unprivileged {
            prefix,
            popsel: built.clone(),
            _copy: None,
        };
        // The target directory may not be traversable by other users: then copy the binary
        // to a world-readable temporary directory.
        if !me.can_execute_popsel() {
            let dir = world_readable_dir()?;
            let copy = dir.path().join("popsel");
            std::fs::copy(&built, &copy).map_err(|e| format!("copy popsel: {e}"))?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            me.popsel = copy;
            me._copy = Some(dir);
            if !me.can_execute_popsel() {
                return Err(format!("uid {NOBODY} cannot run a copy of popsel"));
            }
        }
        Ok(me)
    }

    fn can_execute_popsel(&self) -> bool {
        Command::new(&self.prefix[0])
            .args(&self.prefix[1..])
            .arg(&self.popsel)
            .arg("--version")
            .current_dir("/")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `program args...` as the unprivileged user, inside `ns`.
    fn command_in(&self, ns: &Netns, program: &Path) -> Command {
        let mut cmd = ns.command(&self.prefix[0]);
        cmd.args(&self.prefix[1..]).arg(program).current_dir("/");
        cmd
    }

    /// `popsel rank` (see [`rank_args`]) on `catalog` as the unprivileged user, inside `ns`.
    fn rank_in(&self, ns: &Netns, catalog: &Path) -> Output {
        self.command_in(ns, &self.popsel)
            .args(rank_args(catalog))
            .output()
            .expect("run popsel as the unprivileged user")
    }

    /// Asserts that a process started this way in `ns` really has uid 65534 and no capability.
    fn assert_unprivileged_in(&self, ns: &Netns) {
        let cat = tool("cat").expect("cat");
        let out = self
            .command_in(ns, &cat)
            .arg("/proc/self/status")
            .output()
            .expect("run cat as the unprivileged user");
        assert!(out.status.success(), "{}", support::stderr(&out));
        let status = support::stdout(&out);
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert!(field("Uid").iter().all(|u| *u == NOBODY), "{status}");
        assert!(field("Gid").iter().all(|g| *g == NOBODY), "{status}");
        for caps in ["CapEff", "CapPrm", "CapAmb"] {
            assert_eq!(field(caps), ["0000000000000000"], "{caps}: {status}");
        }
    }
}

/// The unprivileged user, and a namespace of its own whose `net.ipv4.ping_group_range` is
/// `range`; `None` where the test cannot run (see [`privileged`]).
fn unprivileged_in_netns(range: &str) -> Option<(Unprivileged, Netns)> {
    let (ip, nobody) =
        privileged(netns_allowed().and_then(|ip| Unprivileged::new().map(|n| (ip, n))))?;
    let ns = Netns::create(&ip).expect("create a network namespace");
    ns.set_ping_group_range(range);
    nobody.assert_unprivileged_in(&ns);
    Some((nobody, ns))
}

/// A temporary directory anybody may read and traverse (tempfile makes them 0700).
fn world_readable_dir() -> Result<tempfile::TempDir, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A PoP of the catalogue: (city, provider, latitude, longitude, address).
type PopSpec<'a> = (&'a str, &'a str, f64, f64, &'a str);

/// A catalogue file (readable by everyone) listing `pops`, each with one FQDN and address.
fn write_catalog(dir: &Path, pops: &[PopSpec]) -> PathBuf {
    let locations: Vec<Value> = pops
        .iter()
        .map(|(city, provider, lat, lon, ip)| {
            serde_json::json!({
                "city": city,
                "latitude": lat.to_string(),
                "longitude": lon.to_string(),
                "provider": provider,
                "fqdn": [{"name": format!("{}.pop.example.test", city.to_lowercase()), "ip": [ip]}],
            })
        })
        .collect();
    let doc = serde_json::json!({"ipSecLocations": [{"country": "DE", "locations": locations}]});
    let path = dir.join("catalog.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).expect("write catalogue");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

/// `rank` arguments from (0, 0) on `catalog`, without DNS, as JSON, then `more`.
fn rank_args_and(catalog: &Path, more: &[&str]) -> Vec<String> {
    let catalog = catalog.display().to_string();
    let common = [
        "rank",
        "--site",
        "0,0",
        "--catalog",
        &catalog,
        "--no-dns",
        "--output",
        "json",
    ];
    common.iter().chain(more).map(|a| a.to_string()).collect()
}

/// `rank` arguments with a short probe: 2 requests, 50 ms apart, 300 ms timeout.
fn rank_args(catalog: &Path) -> Vec<String> {
    rank_args_and(
        catalog,
        &["--count", "2", "--interval", "50ms", "--timeout", "300ms"],
    )
}

/// The JSON document `popsel rank --output json` printed, after checking it exited 0.
fn rank_json(out: &Output) -> Value {
    support::assert_exit(out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            support::stdout(out),
            support::stderr(out)
        )
    })
}

/// The PoP named `city` in a ranking document.
fn pop<'a>(doc: &'a Value, city: &str) -> &'a Value {
    doc["pops"]
        .as_array()
        .expect("pops is a list")
        .iter()
        .find(|p| p["city"] == city)
        .unwrap_or_else(|| panic!("no PoP {city} in {doc:#}"))
}

fn ranks(doc: &Value) -> Vec<u64> {
    doc["pops"]
        .as_array()
        .expect("pops is a list")
        .iter()
        .map(|p| p["rank"].as_u64().expect("rank is a number"))
        .collect()
}

/// Every PoP scored by distance: score == distance_km (as rounded in the output), ascending;
/// nothing probed, so reachability and loss are null.
fn assert_distance_ranking(doc: &Value) {
    assert_eq!(doc["basis"], "distance", "{doc:#}");
    let pops = doc["pops"].as_array().expect("pops is a list");
    let mut previous = f64::NEG_INFINITY;
    for (i, p) in pops.iter().enumerate() {
        assert_eq!(p["rank"].as_u64(), Some(i as u64 + 1), "{p:#}");
        // Nothing was sent: neither reachable nor unreachable, no loss (not 100%).
        assert!(p["reachable"].is_null(), "{p:#}");
        assert!(p["loss"].is_null(), "{p:#}");
        let km = p["distance_km"].as_f64().expect("distance_km");
        let score = p["score"]
            .as_f64()
            .expect("a distance basis scores every PoP");
        assert!(
            (score - km).abs() <= 0.05 + 1e-9,
            "score {score} vs {km} km"
        );
        assert!(score >= previous, "not ascending: {doc:#}");
        previous = score;
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

const V6_LOOPBACK: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// As root the engine opens its sockets and measures loopback, IPv4 and IPv6, without loss.
#[tokio::test]
async fn root_probes_loopback_v4_and_v6_without_loss() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let prober = Prober::new(&ProbeSettings::default()).expect("as root the ICMP sockets open");
    assert_eq!(prober.socket_kind(), Some(expected_socket_kind()));

    let mut targets = vec![v4(1), v4(2)];
    if has_ipv6_loopback() {
        targets.push(V6_LOOPBACK);
    } else {
        eprintln!("no IPv6 loopback here: probing IPv4 only");
    }
    let settings = ProbeSettings {
        count: 3,
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        ..ProbeSettings::default()
    };
    let progress = Progress::default();
    let started = Instant::now();
    let results = prober.probe(&targets, &settings, &progress).await;
    let elapsed = started.elapsed();

    assert_eq!(results.len(), targets.len(), "{results:?}");
    for ip in &targets {
        let probe = &results[ip];
        assert_clean(*ip, probe, 3);
        let stats = probe.stats().expect("stats of 3 replies");
        assert!(
            stats.median < Duration::from_millis(50),
            "{ip}: loopback median {:.3} ms",
            ms(stats.median)
        );
        assert!(stats.min <= stats.median && stats.median <= stats.max);
    }
    assert_counted(&progress, targets.len(), 3);
    // Three requests 20 ms apart, all answered: far less than one timeout.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

/// The results come in the order of the targets, not in the order the addresses finished: the
/// rank core reads them in the order of the survey's endpoints. A silent address listed first
/// finishes last (at its timeout), after the loopback address listed after it.
#[test]
fn results_come_in_the_order_of_the_targets() {
    let Some(ip) = privileged(netns_allowed()) else {
        return;
    };
    let ns = Netns::create(&ip).expect("create a network namespace");
    ns.make_silent_network();
    let silent: IpAddr = Ipv4Addr::new(198, 18, 0, 1).into();
    let targets = [silent, v4(1)];
    let settings = ProbeSettings {
        count: 2,
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(300),
        ..ProbeSettings::default()
    };
    let results = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter_with_runtime().block_on(async {
                    let prober = Prober::new(&settings).expect("ICMP sockets as root");
                    prober
                        .probe(&targets, &settings, &Progress::default())
                        .await
                })
            })
            .join()
            .expect("the probing thread")
    });
    assert_eq!(results[&silent].received, 0, "{results:?}");
    assert_clean(v4(1), &results[&v4(1)], 2);
    assert!(
        results.keys().eq(targets.iter()),
        "results in the order of the targets {targets:?}: {:?}",
        results.keys().collect::<Vec<_>>()
    );
}

/// `popsel rank` in a namespace where 198.18.0.1 never answers: loopback is measured and ranked
/// first (even though it is much farther), the silent PoP is unreachable, unscored, and last.
#[test]
fn silent_address_ranks_after_a_reachable_one() {
    let Some(ip) = privileged(netns_allowed()) else {
        return;
    };
    let ns = Netns::create(&ip).expect("create a network namespace");
    let silent_dev = ns.make_silent_network();
    let dir = world_readable_dir().expect("temp dir");
    let catalog = write_catalog(
        dir.path(),
        &[
            ("Silent", "GCP", 1.0, 1.0, "198.18.0.1"),
            ("Loop", "AWS", 50.0, 50.0, "127.0.0.1"),
        ],
    );
    let tx_before = silent_dev.map(|d| ns.tx_packets(d));

    let started = Instant::now();
    let out = ns
        .command(env!("CARGO_BIN_EXE_popsel"))
        .args(rank_args(&catalog))
        .output()
        .expect("run popsel in the namespace");
    let elapsed = started.elapsed();
    let doc = rank_json(&out);

    assert_eq!(doc["basis"], "latency", "{doc:#}");
    assert_eq!(doc["probed"], true, "{doc:#}");
    assert_eq!(ranks(&doc), [1, 2]);
    let near = pop(&doc, "Loop");
    assert_eq!(near["rank"], 1, "{doc:#}");
    assert_eq!(near["reachable"], true, "{doc:#}");
    assert_eq!(near["loss"], 0.0, "{doc:#}");
    assert!(near["score"].as_f64().is_some_and(|s| s < 50.0), "{near:#}");
    assert_eq!(near["endpoint"]["ip"], "127.0.0.1");

    let silent = pop(&doc, "Silent");
    assert_eq!(silent["rank"], 2, "{doc:#}");
    assert_eq!(silent["reachable"], false, "{silent:#}");
    assert_eq!(silent["score"], Value::Null, "{silent:#}");
    assert_eq!(silent["rtt_ms"], Value::Null, "{silent:#}");
    assert_eq!(silent["loss"], 1.0, "{silent:#}");
    assert_eq!(silent["endpoints"][0]["ip"], "198.18.0.1");
    assert_eq!(silent["endpoints"][0]["reachable"], false);
    assert_eq!(silent["endpoints"][0]["loss"], 1.0);
    // The ranking is by latency, not distance: the silent PoP is 50 times nearer.
    assert!(silent["distance_km"].as_f64() < near["distance_km"].as_f64());

    if let (Some(dev), Some(before)) = (silent_dev, tx_before) {
        // Both requests left the interface and went unanswered: the timeout path, not a send
        // error. (The counter may also include the odd IPv6 neighbour discovery packet.)
        let sent = ns.tx_packets(dev) - before;
        assert!(sent >= 2, "{sent} packets left {dev}");
        assert!(elapsed >= Duration::from_millis(300), "took {elapsed:?}");
    }
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
}

/// A user without any capability measures latency through an unprivileged ping socket when the
/// namespace's `net.ipv4.ping_group_range` admits its group.
#[test]
fn unprivileged_user_measures_loopback_through_a_ping_socket() {
    let host_range = ping_group_range();
    let Some((nobody, ns)) = unprivileged_in_netns("0 2147483647") else {
        return;
    };
    let dir = world_readable_dir().expect("temp dir");
    let catalog = write_catalog(dir.path(), &[("Loop", "AWS", 50.0, 50.0, "127.0.0.1")]);

    let out = nobody.rank_in(&ns, &catalog);
    let doc = rank_json(&out);
    let stderr = support::stderr(&out);

    assert!(!stderr.contains("ICMP is not available"), "{stderr}");
    assert_eq!(doc["basis"], "latency", "{doc:#}\n{stderr}");
    assert_eq!(doc["probed"], true, "{doc:#}");
    let lo = pop(&doc, "Loop");
    assert_eq!(lo["reachable"], true, "{lo:#}");
    assert_eq!(lo["loss"], 0.0, "{lo:#}");
    assert!(lo["rtt_ms"]["median"].as_f64().is_some(), "{lo:#}");
    // The namespace's setting never touched the host's.
    assert_eq!(ping_group_range(), host_range);
}

/// Without CAP_NET_RAW and with ping sockets closed to it, `popsel rank` names both fixes, ranks
/// by distance, and still succeeds.
#[test]
fn unprivileged_user_without_ping_sockets_falls_back_to_distance() {
    let Some((nobody, ns)) = unprivileged_in_netns("1 0") else {
        return;
    };
    let dir = world_readable_dir().expect("temp dir");
    let catalog = write_catalog(
        dir.path(),
        &[
            ("Far", "AWS", 50.0, 50.0, "127.0.0.1"),
            ("Near", "GCP", 1.0, 1.0, "127.0.0.2"),
        ],
    );

    let out = nobody.rank_in(&ns, &catalog);
    let doc = rank_json(&out);
    let stderr = support::stderr(&out);

    assert_contains(&stderr, "ICMP is not available");
    assert_contains(&stderr, "setcap cap_net_raw+ep");
    assert_contains(&stderr, "ping_group_range");
    assert_contains(&stderr, "Ranking by distance instead");
    assert_eq!(doc["probed"], false, "{doc:#}");
    assert_distance_ranking(&doc);
    assert_eq!(pop(&doc, "Near")["rank"], 1, "{doc:#}");
    assert_eq!(pop(&doc, "Far")["rank"], 2, "{doc:#}");
}

/// Replies go to whoever asked: two probers running at once, one prober probing twice at once,
/// and one prober probing twice in a row all get every reply exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_and_repeated_probes_do_not_share_replies() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let mut targets: Vec<IpAddr> = (1..=4).map(v4).collect();
    if has_ipv6_loopback() {
        targets.push(V6_LOOPBACK);
    }
    let count = 8;
    let settings = ProbeSettings {
        count,
        interval: Duration::from_millis(10),
        timeout: Duration::from_secs(1),
        ..ProbeSettings::default()
    };
    let check = |label: &str, results: &Probes| {
        assert_eq!(results.len(), targets.len(), "{label}: {results:?}");
        for ip in &targets {
            let probe = results
                .get(ip)
                .unwrap_or_else(|| panic!("{label}: no result for {ip}"));
            assert_clean(*ip, probe, count);
        }
    };

    // Two probers (two sockets per family), in two tasks.
    let a = Arc::new(Prober::new(&ProbeSettings::default()).expect("prober a"));
    let b = Arc::new(Prober::new(&ProbeSettings::default()).expect("prober b"));
    let spawn = |p: Arc<Prober>| {
        let (targets, settings) = (targets.clone(), settings.clone());
        tokio::spawn(async move { p.probe(&targets, &settings, &Progress::default()).await })
    };
    let (ra, rb) = tokio::join!(spawn(a.clone()), spawn(b.clone()));
    check("prober a, concurrent with b", &ra.expect("task a"));
    check("prober b, concurrent with a", &rb.expect("task b"));

    // One prober, twice at once: the same addresses in flight on the same socket.
    let (p1, p2) = (Progress::default(), Progress::default());
    let (r1, r2) = tokio::join!(
        a.probe(&targets, &settings, &p1),
        a.probe(&targets, &settings, &p2),
    );
    check("prober a, first of two at once", &r1);
    check("prober a, second of two at once", &r2);

    // One prober, twice in a row.
    for round in 1..=2 {
        let r = b.probe(&targets, &settings, &Progress::default()).await;
        check(&format!("prober b, round {round} in a row"), &r);
    }
}

/// `[probe] interface`: the sockets send by the device (here `lo`, through which loopback
/// answers), and a device that does not exist is an error naming it, not a silent unbound
/// socket that would send the probes into a tunnel.
#[tokio::test]
async fn probes_leave_by_the_configured_device_or_not_at_all() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let prober = Prober::new(&ProbeSettings {
        interface: Some("lo".into()),
        ..ProbeSettings::default()
    })
    .expect("bound to lo");
    let settings = ProbeSettings {
        count: 2,
        interval: Duration::from_millis(10),
        ..ProbeSettings::default()
    };
    let results = prober
        .probe(&[v4(1)], &settings, &Progress::default())
        .await;
    assert_clean(v4(1), &results[&v4(1)], 2);

    let Err(e) = Prober::new(&ProbeSettings {
        interface: Some("popsel-none0".into()),
        ..ProbeSettings::default()
    }) else {
        panic!("a device that does not exist must not give a prober");
    };
    let e = e.to_string();
    assert_contains(
        &e,
        "the probes cannot be sent by device \"popsel-none0\" (No such device",
    );
    assert!(
        !e.contains("CAP_NET_RAW"),
        "no advice about privileges: {e}"
    );
}

/// Notices a pipeline gives, as text.
#[derive(Default)]
struct Notices(std::sync::Mutex<Vec<String>>);

impl Report for Notices {
    fn notice(&self, notice: Notice) {
        self.0.lock().unwrap().push(notice.to_string());
    }
}

/// A location measured from this host.
fn local_location() -> Location {
    Location {
        name: "here".to_owned(),
        location_id: String::new(),
        site: Site {
            latitude: 0.0,
            longitude: 0.0,
        },
        local: true,
        tunnels: Vec::new(),
        local_ts: Vec::new(),
        remote_ts: Vec::new(),
    }
}

/// A device deleted and created again (a PPP or LTE link that came back) is another device to
/// sockets bound to the first: they can no longer send, and the prober says it must be opened
/// anew (`Prober::device_changed`, which the agent checks before each probe round); a new one
/// sends again; the agent's `ProberSlot` keeps its sockets while the device is gone and opens
/// new ones when it is back. Inside a namespace of the test's own: a veth device holding 198.18.7.1, which
/// the kernel answers through loopback (this kernel has no dummy devices).
#[test]
fn a_device_created_again_is_another_device_to_the_probes() {
    let Some(ip) = privileged(netns_allowed()) else {
        return;
    };
    let ns = Netns::create(&ip).expect("namespace");
    let add_wan = || {
        for args in [
            &[
                "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p",
            ][..],
            &["ip", "link", "set", "wan0p", "up"],
            &["ip", "link", "set", "wan0", "up"],
            &["ip", "addr", "add", "198.18.7.1/32", "dev", "wan0"],
        ] {
            ns.run(args).expect("set up wan0");
        }
    };
    add_wan();
    let target: IpAddr = Ipv4Addr::new(198, 18, 7, 1).into();
    let settings = ProbeSettings {
        interface: Some("wan0".into()),
        count: 2,
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(500),
        ..ProbeSettings::default()
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            ns.enter_with_runtime().block_on(async {
                let first = Prober::new(&settings).expect("bound to wan0");
                let before = first
                    .probe(&[target], &settings, &Progress::default())
                    .await;
                assert_clean(target, &before[&target], 2);
                assert!(!first.device_changed(Some("wan0")));
                assert!(first.device_changed(Some("lo")), "another device asked for");
                assert!(first.device_changed(None), "no device asked for");

                ns.run(&["ip", "link", "del", "wan0"]).expect("delete wan0");
                assert!(first.device_changed(Some("wan0")), "wan0 gone");
                add_wan();
                assert!(first.device_changed(Some("wan0")), "wan0 created again");
                let stale = first
                    .probe(&[target], &settings, &Progress::default())
                    .await;
                assert_eq!(stale[&target].received, 0, "{stale:?}");

                let second = Prober::new(&settings).expect("bound to the new wan0");
                assert!(!second.device_changed(Some("wan0")));
                let after = second
                    .probe(&[target], &settings, &Progress::default())
                    .await;
                assert_clean(target, &after[&target], 2);
                drop((first, second));

                // The agent's slot: while the device is gone it keeps the sockets it has (every
                // PoP silent, so the selection holds), and opens new ones once it is back.
                let notices = Notices::default();
                let mut slot = ProberSlot::open(&[local_location()], false, &settings, &notices);
                let opened = slot.current(&settings, &notices).expect("open");
                ns.run(&["ip", "link", "del", "wan0"]).expect("delete wan0");
                let kept = slot
                    .current(&settings, &notices)
                    .expect("kept while wan0 is gone");
                assert!(Arc::ptr_eq(&opened, &kept));
                assert_eq!(slot.socket_up(), Some(true));
                add_wan();
                let reopened = slot.current(&settings, &notices).expect("reopened");
                assert!(
                    !Arc::ptr_eq(&opened, &reopened),
                    "new sockets for the new wan0"
                );
                let back = reopened
                    .probe(&[target], &settings, &Progress::default())
                    .await;
                assert_clean(target, &back[&target], 2);
                let said = notices.0.lock().unwrap().clone();
                assert_eq!(said.len(), 2, "{said:?}");
                assert_contains(&said[0], "wan0");
                assert_contains(&said[1], "opened again");
            });
        });
    });
}

/// An address listed twice is probed once: one result, `count` requests, `count` replies.
#[tokio::test]
async fn an_address_listed_twice_is_probed_once() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let prober = Prober::new(&ProbeSettings::default()).expect("prober");
    let mut targets = vec![v4(1), v4(5), v4(1)];
    if has_ipv6_loopback() {
        targets.extend([V6_LOOPBACK, v4(1), V6_LOOPBACK]);
    }
    let mut distinct = targets.clone();
    distinct.sort();
    distinct.dedup();
    let count = 4;
    let settings = ProbeSettings {
        count,
        interval: Duration::from_millis(10),
        timeout: Duration::from_secs(1),
        ..ProbeSettings::default()
    };
    let progress = Progress::default();
    let results = prober.probe(&targets, &settings, &progress).await;

    assert_eq!(results.len(), distinct.len(), "{results:?}");
    for ip in &distinct {
        assert_clean(*ip, &results[ip], count);
    }
    assert_counted(&progress, distinct.len(), u64::from(count));
}

/// `popsel rank --interface`: the probes leave by the device and PoPs answer; a device this
/// host does not have is said as such (not as missing privileges) and the ranking falls back to
/// distance rather than probing through whatever the routes say.
#[test]
fn rank_sends_by_the_interface_it_is_given() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let dir = world_readable_dir().expect("temp dir");
    let catalog = write_catalog(dir.path(), &[("One", "GCP", 0.0, 1.0, "127.0.0.2")]);
    let mut args = rank_args(&catalog);
    args.extend(["--interface".into(), "lo".into()]);
    let out = support::popsel()
        .args(&args)
        .output()
        .expect("run popsel rank");
    let doc = rank_json(&out);
    assert_eq!(doc["probed"], true, "{doc:#}");
    assert_eq!(pop(&doc, "One")["reachable"], true, "{doc:#}");

    let mut args = rank_args(&catalog);
    args.extend(["--interface".into(), "popsel-none0".into()]);
    let out = support::popsel()
        .args(&args)
        .output()
        .expect("run popsel rank");
    let doc = rank_json(&out);
    let stderr = support::stderr(&out);
    assert_contains(
        &stderr,
        "the probes cannot be sent by device \"popsel-none0\"",
    );
    assert!(!stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert_eq!(doc["probed"], false, "{doc:#}");
}

/// `--no-probe` needs no privilege: it ranks by distance, each score being the distance in km,
/// nearest first, and never tries ICMP.
#[test]
fn no_probe_ranks_by_distance_for_any_user() {
    let dir = world_readable_dir().expect("temp dir");
    // Listed out of order; from (0, 0) one degree of arc is about 111.2 km.
    let catalog = write_catalog(
        dir.path(),
        &[
            ("Ten", "AWS", 0.0, 10.0, "127.0.0.1"),
            ("One", "GCP", 0.0, 1.0, "127.0.0.2"),
            ("Five", "Azure", 5.0, 0.0, "127.0.0.3"),
        ],
    );
    let out = support::popsel()
        .args(rank_args_and(&catalog, &["--no-probe"]))
        .output()
        .expect("run popsel");
    let doc = rank_json(&out);
    let stderr = support::stderr(&out);

    assert!(!stderr.contains("ICMP"), "{stderr}");
    assert_eq!(doc["probed"], false, "{doc:#}");
    assert_distance_ranking(&doc);
    let cities: Vec<&str> = doc["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["city"].as_str().unwrap())
        .collect();
    assert_eq!(cities, ["One", "Five", "Ten"]);
    for (city, degrees) in [("One", 1.0), ("Five", 5.0), ("Ten", 10.0)] {
        let km = pop(&doc, city)["distance_km"].as_f64().unwrap();
        let expected = 111.195 * degrees;
        assert!(
            (km - expected).abs() < 1.0,
            "{city}: {km} km, not ~{expected}"
        );
    }
}

/// `popsel rank` on a terminal shows how probing goes (addresses answered of all, requests,
/// replies) while it probes, and clears it before the table; off a terminal, stderr has none
/// of it.
#[tokio::test]
async fn rank_on_a_terminal_shows_probing_progress_and_nothing_off_one() {
    if !support::can_run_privileged(raw_icmp_allowed()) {
        return;
    }
    let dir = world_readable_dir().expect("temp dir");
    let catalog = write_catalog(
        dir.path(),
        &[
            ("One", "AWS", 1.0, 1.0, "127.0.0.1"),
            ("Two", "GCP", 2.0, 2.0, "127.0.0.2"),
            ("Three", "Azure", 3.0, 3.0, "127.0.0.3"),
        ],
    );
    let catalog = catalog.display().to_string();
    let rank = || {
        let mut cmd = support::popsel();
        cmd.args(["rank", "--site", "0,0", "--catalog", &catalog, "--no-dns"])
            // Five requests 300 ms apart: over a second of probing, ten redraws of the line.
            .args(["--count", "5", "--interval", "300ms", "--timeout", "500ms"]);
        cmd
    };
    let out = support::terminal::on_terminal(&rank()).await;
    let console = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{console:?}");
    assert!(console.contains("probing: "), "{console:?}");
    assert!(console.contains("/3 addresses answered"), "{console:?}");
    assert!(console.contains("3/3 addresses answered"), "{console:?}");
    assert!(!support::terminal::has_sgr(&out.stdout), "{console:?}");
    let table = &console[console.find("RANK  CITY").expect("the table")..];
    assert!(
        !table.contains("probing"),
        "cleared before the table: {table:?}"
    );
    assert!(table.contains("0%"), "{table:?}");

    let piped = support::run(rank()).await;
    support::assert_exit(&piped, 0);
    assert!(piped.stderr.is_empty(), "{}", support::show(&piped));
}
