//! The IPsec lab: real strongSwan charons in network namespaces, PoP responders that accept
//! what the emulator holds, and a service that tells which PoP carried a packet. popsel's
//! strongSwan hand-off is tested on it; the lab's own tests are `tests/network/ipsec_lab.rs`.
//!
//! ```text
//!                         hub namespace: bridge br0 (198.18.0.0/16, no address)
//!            ┌──────────────────┬──────────┴───────┬──────────────────┐
//!   branch: eth0 198.18.0.1   pop0: eth0 198.18.1.1, .2   pop1: 198.18.2.1, .2   ...
//!   charon (initiator)        charon (responder)          charon (responder)
//!   popsel runs here          lo 198.19.0.1 "who?" server lo 198.19.0.1 server
//! ```
//!
//! - Addresses, all in the RFC 2544 benchmarking range 198.18.0.0/15, so nothing leaves the
//!   namespaces: the segment is 198.18.0.0/16; the branch is 198.18.0.1; PoP `i` (from 0) has
//!   endpoints 198.18.`i+1`.1, .2, ... (one per FQDN of its catalogue entry); the service
//!   address [`SERVICE_ADDRESS`] 198.19.0.1/32 sits on every PoP's loopback. The branch has no
//!   route to it but a tunnel's, so an answer proves a tunnel carried the question.
//! - Each charon: [`charon::Charon`] (kernel-libipsec, its own `/run`, `strongswan.conf`, VICI
//!   socket and log under the lab's temporary directory; see `/work/shared/strongswan-notes.md`,
//!   "These machines").
//! - The PoP responders accept exactly the emulator's tunnels ([`responders`]), reloaded by
//!   [`IpsecLab::sync_responders`]; the emulator must expose PSKs to the lab
//!   ([`IpsecLab::start_sim`] starts one that does, with the lab's catalogue).
//! - [`IpsecLab::catalog_json`]: the lab's PoPs as the API's catalogue (real cities near the
//!   lab's site [`SITE`], Chicago), so popsel ranks them.
//! - [`IpsecLab::go_dark`] takes a PoP's link down (its port on the bridge), [`IpsecLab::come_back`]
//!   brings it up.
//!
//! Blocking: the lab's methods run commands and wait (except [`IpsecLab::sync_responders`]). In a
//! test whose in-process emulator must answer popsel meanwhile, use a multi-thread runtime.
//! Dropping the lab stops the servers and charons, then deletes the namespaces, also when a test
//! panics (it then prints each charon's log tail); a lab of a killed test process is swept by
//! the next one ([`netns::sweep_stale`]).

pub mod agent;
pub mod charon;
pub mod forward;
pub mod netns;
pub mod responders;
pub mod service;

/// Commands run with a time limit: shared with the latency lab.
pub use super::bounded::run_within;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use popsel::location::Site;
use popsel::sim::{Sim, SimOptions};
use serde_json::{Value, json};

use charon::{Charon, CharonSettings};
use forward::Forward;
use netns::NetNs;
use responders::{Follower, ResponderSet};
use service::SERVICE_ADDRESS;

/// The site the lab's catalogue is laid out around (Chicago): PoP 0 is there, the others
/// further away in order, so that distance breaks ties in the order of the PoPs.
pub const SITE: Site = Site {
    latitude: 41.88,
    longitude: -87.63,
};
/// [`SITE`] as `popsel rank --site` takes it.
pub const SITE_ARG: &str = "41.88,-87.63";
/// The branch's address on the lab segment.
pub const BRANCH_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Prefix length of the lab segment, 198.18.0.0/16.
pub const SEGMENT_PREFIX: u8 = 16;
/// Catalogue names end with this (`.test`: popsel never asks the system's resolver for it).
pub const DOMAIN: &str = "ipsec-lab.popsel.test";
/// How long [`IpsecLab::who_answers`] waits for an answer.
pub const ANSWER_WAIT: Duration = Duration::from_millis(500);

/// The PoPs a lab can have, nearest to [`SITE`] first: (country, city, latitude, longitude,
/// provider, short name). Coordinates as in `config/catalog.sample.json`.
const POPS: [(&str, &str, f64, f64, &str, &str); 8] = [
    (
        "US",
        "Chicago, Illinois",
        41.88,
        -87.63,
        "GCP",
        "us-chi-gcp",
    ),
    ("CA", "Toronto, Ontario", 43.65, -79.38, "AWS", "ca-tor-aws"),
    (
        "US",
        "Ashburn, Virginia",
        39.04,
        -77.49,
        "AWS",
        "us-ash-aws",
    ),
    ("US", "Atlanta, Georgia", 33.75, -84.39, "GCP", "us-atl-gcp"),
    (
        "US",
        "New York, New York",
        40.71,
        -74.01,
        "AWS",
        "us-nyc-aws",
    ),
    (
        "US",
        "Dallas, Texas",
        32.78,
        -96.80,
        "Azure",
        "us-dal-azure",
    ),
    (
        "CA",
        "Montreal, Quebec",
        45.50,
        -73.57,
        "Azure",
        "ca-mtl-azure",
    ),
    (
        "US",
        "Ashburn, Virginia",
        39.04,
        -77.49,
        "Azure",
        "us-ash-azure",
    ),
];
/// At most this many PoPs.
pub const MAX_POPS: usize = POPS.len();

/// Labs of this process, for unique namespace names.
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// What to build.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Number of PoPs, 1 to [`MAX_POPS`].
    pub pops: usize,
    /// Endpoints (catalogue FQDNs, each with one address) per PoP, 1 to 254.
    pub endpoints_per_pop: usize,
    /// What a PoP accepts for the branch side of a tunnel (`remote_ts` on the PoPs). Default
    /// `["dynamic"]`: the branch's own address.
    pub branch_ts: Vec<String>,
    pub charon: CharonSettings,
}

impl LabSpec {
    /// `pops` PoPs with two endpoints each (as the sample catalogue), default charons.
    pub fn new(pops: usize) -> LabSpec {
        LabSpec {
            pops,
            endpoints_per_pop: 2,
            branch_ts: vec!["dynamic".into()],
            charon: CharonSettings::default(),
        }
    }
}

/// Ok when this process can run the lab: root, TUN, iproute2, util-linux's `unshare`, and
/// the strongSwan packages that `.ci/run` installs.
pub fn available() -> Result<(), String> {
    super::is_root().map_err(|e| format!("the IPsec lab needs root: {e}"))?;
    let files = [
        ("/dev/net/tun", "the kernel's TUN device"),
        (charon::CHARON, "Debian package strongswan-charon"),
        (
            charon::KERNEL_LIBIPSEC_PLUGIN,
            "Debian package libcharon-extra-plugins",
        ),
        (
            charon::CRYPTO_PLUGINS[0],
            "Debian package libstrongswan-standard-plugins",
        ),
        (
            charon::CRYPTO_PLUGINS[1],
            "Debian package libstrongswan-standard-plugins",
        ),
    ];
    for (path, what) in files {
        if !Path::new(path).exists() {
            return Err(format!(
                "the IPsec lab needs {path} ({what}; .ci/run installs it)"
            ));
        }
    }
    for (program, what) in [
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("swanctl", "Debian package strongswan-swanctl"),
    ] {
        let found = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!("the IPsec lab needs `{program}` ({what})"));
        }
    }
    Ok(())
}

/// The branch: where popsel and its charon run.
pub struct Branch {
    charon: Charon,
    ns: NetNs,
}

impl Branch {
    pub fn netns(&self) -> &str {
        self.ns.name()
    }

    pub fn address(&self) -> Ipv4Addr {
        BRANCH_ADDRESS
    }

    pub fn charon(&self) -> &Charon {
        &self.charon
    }

    /// `ip netns exec <branch> <program>`: e.g. popsel itself.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.ns.command(program)
    }

    /// Runs `argv` in the branch to its end (at most 30 s), output captured.
    pub fn exec(&self, argv: &[&str]) -> Result<Output, String> {
        self.ns.exec(argv, Duration::from_secs(30))
    }
}

/// One PoP: its namespace, endpoints, responder charon and service.
pub struct Pop {
    index: usize,
    name: String,
    addresses: Vec<Ipv4Addr>,
    /// Its port on the hub's bridge (the hub end of its veth).
    port: String,
    // Dropped in this order: the service, the charon, then the namespace they live in.
    server: service::Server,
    charon: Charon,
    ns: NetNs,
}

impl Pop {
    pub fn index(&self) -> usize {
        self.index
    }

    /// What its service answers, e.g. `pop0-us-chi-gcp`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its first endpoint.
    pub fn address(&self) -> Ipv4Addr {
        self.addresses[0]
    }

    /// All its endpoints, in catalogue order.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }

    pub fn netns(&self) -> &str {
        self.ns.name()
    }

    pub fn charon(&self) -> &Charon {
        &self.charon
    }

    /// Runs `argv` in the PoP to its end (at most 30 s), output captured.
    pub fn exec(&self, argv: &[&str]) -> Result<Output, String> {
        self.ns.exec(argv, Duration::from_secs(30))
    }

    /// Creates PoP `index` of lab `lab_no`: its namespace joined to the hub's bridge with its
    /// endpoints, the service address and server, and its charon (started, not waited for).
    fn create(
        lab_no: usize,
        index: usize,
        spec: &LabSpec,
        hub: &NetNs,
        dir: &Path,
    ) -> Result<Pop, String> {
        let ns = netns::create(lab_no, &format!("pop{index}"))?;
        let third = u8::try_from(index + 1).map_err(|_| "too many PoPs".to_owned())?;
        let addresses = (1..=spec.endpoints_per_pop)
            .map(|k| u8::try_from(k).map(|k| Ipv4Addr::new(198, 18, third, k)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "too many endpoints".to_owned())?;
        let port = format!("vpop{index}");
        attach(hub, &ns, &port, &addresses)?;
        ns.ip(&["addr", "add", &format!("{SERVICE_ADDRESS}/32"), "dev", "lo"])?;
        // The local table moves from rule 0 to rule 100, so that [`IpsecLab::silence_endpoint`]
        // can put rules ahead of it.
        ns.ip(&["rule", "add", "pref", "100", "lookup", "local"])?;
        ns.ip(&["rule", "del", "pref", "0"])?;
        let name = format!("pop{index}-{}", POPS[index].5);
        let charon = Charon::spawn(&name, &ns, &dir.join(&name), &spec.charon)?;
        let server = service::Server::start(ns.name(), &name)?;
        Ok(Pop {
            index,
            name,
            addresses,
            port,
            server,
            charon,
            ns,
        })
    }

    /// `(country, city, latitude, longitude, provider, short name)` of its catalogue entry.
    fn place(
        &self,
    ) -> (
        &'static str,
        &'static str,
        f64,
        f64,
        &'static str,
        &'static str,
    ) {
        POPS[self.index]
    }

    /// Its catalogue entry's city (e.g. `Chicago, Illinois`), as popsel's ranking shows it.
    pub fn city(&self) -> &'static str {
        self.place().1
    }

    /// Its catalogue entry's provider.
    pub fn provider(&self) -> &'static str {
        self.place().4
    }

    /// Its catalogue FQDNs, one per endpoint.
    pub fn fqdns(&self) -> Vec<String> {
        let short = self.place().5;
        (1..=self.addresses.len())
            .map(|k| format!("ipsec-{short}-{k}.{DOMAIN}"))
            .collect()
    }
}

/// A started lab of `spec`, or `None` (after saying why) where the lab cannot run; under
/// CI=true that panics instead (`support::can_run_privileged`).
pub fn start_or_skip(spec: LabSpec) -> Option<IpsecLab> {
    if !super::can_run_privileged(available()) {
        return None;
    }
    Some(IpsecLab::start_with(spec).unwrap_or_else(|e| panic!("the IPsec lab did not start: {e}")))
}

/// Prints how long a lab test took (from [`Timed::start`] to the guard's drop) when it ends
/// without a panic: what the tests' output says of the lab's speed.
pub struct Timed {
    name: &'static str,
    start: Instant,
}

impl Timed {
    pub fn start(name: &'static str) -> Timed {
        Timed {
            name,
            start: Instant::now(),
        }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            eprintln!("{}: {:.2} s", self.name, self.start.elapsed().as_secs_f64());
        }
    }
}

/// A running lab; see the module docs.
pub struct IpsecLab {
    spec: LabSpec,
    responders: Arc<ResponderSet>,
    // Dropped in this order: PoPs and branch (servers and charons before their namespaces),
    // the hub, then the files.
    pops: Vec<Pop>,
    branch: Branch,
    hub: NetNs,
    dir: tempfile::TempDir,
}

impl IpsecLab {
    /// A lab with `pops` PoPs (see [`LabSpec::new`]).
    pub fn start(pops: usize) -> Result<IpsecLab, String> {
        IpsecLab::start_with(LabSpec::new(pops))
    }

    pub fn start_with(spec: LabSpec) -> Result<IpsecLab, String> {
        if !(1..=MAX_POPS).contains(&spec.pops) {
            return Err(format!(
                "the IPsec lab has 1 to {MAX_POPS} PoPs, not {}",
                spec.pops
            ));
        }
        if !(1..=254).contains(&spec.endpoints_per_pop) {
            return Err("a lab PoP has 1 to 254 endpoints".into());
        }
        available()?;
        netns::sweep_stale();
        let lab_no = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("popsel-ipsec-lab-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        // On any error below, what was made so far is dropped: charons stop, namespaces go.
        let hub = netns::create(lab_no, "hub")?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["link", "set", "br0", "up"])?;

        let branch_ns = netns::create(lab_no, "branch")?;
        attach(&hub, &branch_ns, "vbranch", &[BRANCH_ADDRESS])?;
        let mut branch_charon = Charon::spawn(
            "branch",
            &branch_ns,
            &dir.path().join("branch"),
            &spec.charon,
        )?;

        let pops = (0..spec.pops)
            .map(|index| Pop::create(lab_no, index, &spec, &hub, dir.path()))
            .collect::<Result<Vec<Pop>, String>>()?;
        branch_charon.wait_ready()?;
        let branch = Branch {
            charon: branch_charon,
            ns: branch_ns,
        };
        let responders = Arc::new(ResponderSet::new(
            pops.iter()
                .map(|p| (p.name.clone(), p.charon.swanctl_handle()))
                .collect(),
            spec.branch_ts.clone(),
        ));
        let mut lab = IpsecLab {
            spec,
            responders,
            pops,
            branch,
            hub,
            dir,
        };
        for pop in &mut lab.pops {
            pop.charon.wait_ready()?;
        }
        Ok(lab)
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// The lab's temporary directory (charons' files are in `<dir>/<charon name>/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    pub fn branch_charon(&self) -> &Charon {
        &self.branch.charon
    }

    pub fn pops(&self) -> &[Pop] {
        &self.pops
    }

    /// PoP `i` (from 0). Panics on a PoP the lab does not have.
    pub fn pop(&self, i: usize) -> &Pop {
        self.pops
            .get(i)
            .unwrap_or_else(|| panic!("the lab has {} PoPs, not PoP {i}", self.pops.len()))
    }

    /// The names of the lab's namespaces: hub, branch, then the PoPs.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out = vec![self.hub.name().to_owned(), self.branch.netns().to_owned()];
        out.extend(self.pops.iter().map(|p| p.netns().to_owned()));
        out
    }

    /// Which PoP answered a question sent from the branch to the service address, or `None`
    /// when nothing did within [`ANSWER_WAIT`].
    pub fn who_answers(&self) -> Option<usize> {
        let answer = service::ask(self.branch.netns(), ANSWER_WAIT)
            .unwrap_or_else(|e| panic!("ask the service from the branch: {e}"))?;
        let pop = self.pops.iter().find(|p| p.name == answer);
        Some(
            pop.unwrap_or_else(|| panic!("the service answered {answer:?}, no PoP of the lab"))
                .index,
        )
    }

    /// Asks until PoP `i` answers; `Err` with the last answer and both charons' state when it
    /// has not within `within`. Returns how long it took.
    pub fn wait_until_answered_by(&self, i: usize, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < within {
            last = self.who_answers();
            if last == Some(i) {
                return Ok(start.elapsed());
            }
            if last.is_none() {
                // Nothing answered: the question waited ANSWER_WAIT, or failed at once (no
                // route yet); do not spin.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(format!(
            "PoP {i} did not answer within {within:?} (last answer: {last:?})\n{}",
            self.state_for(i)
        ))
    }

    /// Asks for `during`; `Err` naming the PoP if any answered.
    pub fn no_answer_during(&self, during: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < during {
            if let Some(i) = self.who_answers() {
                return Err(format!(
                    "PoP {i} answered after {:?}\n{}",
                    start.elapsed(),
                    self.state_for(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The SAs of the branch and of PoP `i`, for failure messages.
    pub fn state_for(&self, i: usize) -> String {
        let pop = self
            .pops
            .get(i)
            .map(|p| format!("--- {} SAs\n{}", p.name, p.charon.list_sas()))
            .unwrap_or_default();
        format!("--- branch SAs\n{}{pop}", self.branch.charon.list_sas())
    }

    /// Takes PoP `i`'s link down: its port on the bridge goes down, so nothing reaches it or
    /// leaves it, IKE and ESP included, until [`IpsecLab::come_back`].
    pub fn go_dark(&self, i: usize) -> Result<(), String> {
        self.hub.ip(&["link", "set", &self.pop(i).port, "down"])
    }

    /// Brings PoP `i`'s link back up.
    pub fn come_back(&self, i: usize) -> Result<(), String> {
        self.hub.ip(&["link", "set", &self.pop(i).port, "up"])
    }

    /// The lab's PoPs as `GET /api/v1/pops/ipsec` returns a catalogue (the format of
    /// `config/catalog.sample.json`): one entry per PoP, one FQDN per endpoint listing its
    /// address.
    pub fn catalog_json(&self) -> Value {
        let mut countries: Vec<(&str, Vec<Value>)> = Vec::new();
        for pop in &self.pops {
            let (country, city, latitude, longitude, provider, _) = pop.place();
            let fqdns: Vec<Value> = pop
                .fqdns()
                .into_iter()
                .zip(&pop.addresses)
                .map(|(name, ip)| json!({"name": name, "ip": [ip.to_string()]}))
                .collect();
            let entry = json!({
                "city": city,
                "latitude": format!("{latitude:.2}"),
                "longitude": format!("{longitude:.2}"),
                "provider": provider,
                "fqdn": fqdns,
            });
            match countries.iter_mut().find(|(c, _)| *c == country) {
                Some((_, entries)) => entries.push(entry),
                None => countries.push((country, vec![entry])),
            }
        }
        json!({
            "ipSecLocations": countries
                .into_iter()
                .map(|(country, locations)| json!({"country": country, "locations": locations}))
                .collect::<Vec<_>>(),
        })
    }

    /// An emulator on 127.0.0.1 (port 0) with the test token, the lab's catalogue, and the
    /// lab-only PSK route on, so that [`IpsecLab::sync_responders`] can read the PSKs.
    pub async fn start_sim(&self) -> Sim {
        Sim::start(SimOptions {
            catalog: self.catalog_json(),
            expose_psks_for_lab: true,
            ..SimOptions::local(super::token())
        })
        .await
        .expect("start the emulator")
    }

    /// Makes every PoP accept exactly the tunnels `sim` holds now: loads the new ones, unloads
    /// the deleted ones and terminates their SAs (also the SAs of a tunnel whose
    /// authentication ID or PSK changed). `sim` must expose PSKs to the lab (see
    /// [`IpsecLab::start_sim`]). Returns the number of tunnels the PoPs accept.
    pub async fn sync_responders(&self, sim: &Sim) -> Result<usize, String> {
        self.responders.sync(&sim.url()).await
    }

    /// Keeps the PoPs in sync with `sim` in the background (every 200 ms) until the returned
    /// guard is dropped: Atmos-like, for tests in which popsel provisions tunnels on its own
    /// schedule. Needs a tokio runtime.
    pub fn follow(&self, sim: &Sim) -> Follower {
        Follower::start(
            self.responders.clone(),
            sim.url(),
            Duration::from_millis(200),
        )
    }

    /// A relay from 127.0.0.1 in the branch namespace to `sim` on the host's loopback:
    /// `[api] base_url = forward.url()` for popsel running in the branch.
    pub fn sim_in_branch(&self, sim: &Sim) -> Result<Forward, String> {
        Forward::start(self.branch.netns(), sim.addr())
    }

    /// Makes endpoint `k` of PoP `i` silent, as a path failure to that address would: packets
    /// to it are dropped inside the PoP (a rule ahead of the local table), while the address
    /// stays on the PoP, so its charon sees no change. Removing the address instead would not
    /// do: charon notices and moves the SA to the PoP's other endpoint by itself (MOBIKE). Nor
    /// would dropping what leaves from it: on its next address event charon would find no
    /// route from it and move too. Until [`IpsecLab::restore_endpoint`].
    pub fn silence_endpoint(&self, i: usize, k: usize) -> Result<(), String> {
        self.endpoint_rule(i, k, "add")
    }

    pub fn restore_endpoint(&self, i: usize, k: usize) -> Result<(), String> {
        self.endpoint_rule(i, k, "del")
    }

    fn endpoint_rule(&self, i: usize, k: usize, op: &str) -> Result<(), String> {
        let pop = self.pop(i);
        let address = pop
            .addresses
            .get(k)
            .ok_or_else(|| format!("PoP {i} has no endpoint {k}"))?
            .to_string();
        let pref = (10 + k).to_string();
        pop.ns
            .ip(&["rule", op, "pref", &pref, "to", &address, "blackhole"])
    }
}

/// Adds a veth from the hub's bridge (hub end `port`) to `ns` (end `eth0`, up, with
/// `addresses` on the lab segment).
fn attach(hub: &NetNs, ns: &NetNs, port: &str, addresses: &[Ipv4Addr]) -> Result<(), String> {
    hub.ip(&[
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.name(),
    ])?;
    hub.ip(&["link", "set", port, "master", "br0", "up"])?;
    for a in addresses {
        ns.ip(&[
            "addr",
            "add",
            &format!("{a}/{SEGMENT_PREFIX}"),
            "dev",
            "eth0",
        ])?;
    }
    ns.ip(&["link", "set", "eth0", "up"])
}

impl Drop for IpsecLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.branch.charon.diagnostics());
            for p in &self.pops {
                eprintln!("{}", p.charon.diagnostics());
            }
        }
        // All charons stop at once; each one's own drop then waits for it.
        self.branch.charon.signal_stop();
        for p in &self.pops {
            p.charon.signal_stop();
        }
    }
}
