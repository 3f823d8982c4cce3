//! `popsel run` in the latency lab's 45-PoP world, scraped: the series one agent costs a
//! fleet's Prometheus (at most 300 by default, with the demo site's two locations), what the
//! opt-in options add, and what the metrics say when this host cannot probe at all. Needs root:
//! skips otherwise, fails under CI=true.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::lab::world::{Spec, World};
use crate::lab::{self, Lab, SimProcess};
use crate::support::site::{self, SiteDir};
use crate::support::{self, netns, toml_str};
use popsel::location::Site;

const POPSEL: &str = env!("CARGO_BIN_EXE_popsel");

/// Chicago, the demo site's local location: the world is seen from it.
const SITE: Site = Site {
    latitude: 41.88,
    longitude: -87.63,
};

/// The issue's bound: 10,000 agents × 300 series is a store's work, not one Prometheus's.
const FLEET_BUDGET: usize = 300;

/// Inside the lab's own namespace, so no other test's port is in the way.
const METRICS: &str = "127.0.0.1:9469";

/// The lab's world with 45 PoPs, its emulator, and a site directory for the agent.
struct Fleet {
    lab: Lab,
    sim: SimProcess,
    files: SiteDir,
}

impl Fleet {
    fn start() -> Option<Fleet> {
        let world = World::generate(Spec {
            seed: 13,
            ..Spec::new(SITE, 45)
        });
        if !support::can_run_privileged(lab::available()) {
            return None;
        }
        let lab = Lab::start(world).unwrap_or_else(|e| panic!("the lab did not start: {e}"));
        let files = SiteDir::new();
        let sim = lab
            .serve_world(Path::new(POPSEL), files.dir.path(), support::TOKEN)
            .expect("popsel sim in the lab");
        Some(Fleet { lab, sim, files })
    }

    /// `popsel run` on the demo site with `metrics` added to `[metrics]`, run through
    /// `wrapper` (e.g. `setpriv …`) when given.
    fn agent(&self, metrics: &str, wrapper: &[&str]) -> Child {
        let sections = format!(
            r#"
[dns]
nameservers = [{nameserver}]

[probe]
count = 2
interval = "20ms"
timeout = "300ms"

[agent]
probe_interval = "1s"
catalog_interval = "1h"
reconcile_interval = "1s"
status_interval = "1s"

[metrics]
listen = "{METRICS}"
{metrics}
"#,
            nameserver = toml_str(&self.lab.nameserver().to_string())
        );
        self.files
            .write_config(&site::config(&self.sim.url).with(&sections));
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = self.lab.command(program);
                cmd.args(args).arg(POPSEL);
                cmd
            }
            None => self.lab.command(POPSEL),
        };
        cmd.args(["run", "--config"])
            .arg(self.files.config_path())
            .env("POPSEL_API_TOKEN", support::TOKEN)
            .env("DEMO_PSK", "metrics-fleet-psk-13")
            .env_remove("POPSEL_API_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.spawn().expect("popsel run in the lab")
    }

    /// `GET path` from the agent, inside the lab's namespace.
    fn get(&self, path: &str) -> Result<String, String> {
        let ns = self.lab.netns().to_owned();
        let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
        std::thread::spawn(move || -> Result<String, String> {
            netns::enter(&ns)?;
            let at: SocketAddr = METRICS.parse().map_err(|e| format!("{e}"))?;
            let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(1))
                .map_err(|e| format!("connect to {at}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
            let mut text = String::new();
            s.read_to_string(&mut text).map_err(|e| e.to_string())?;
            Ok(text)
        })
        .join()
        .map_err(|_| "the scrape thread panicked".to_owned())?
    }

    /// The first scrape for which `done` holds (at most 30 s), the response's body.
    fn scrape_until(&self, agent: &mut Child, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = agent.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = agent.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("popsel run ended: {status}\n{err}");
            }
            match self.get("/metrics") {
                Ok(text) => {
                    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
                    if done(&body) {
                        return body;
                    }
                    last = body;
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the agent's metrics never got there within 30 s:\n{last}");
    }
}

fn stop(mut agent: Child) {
    let _ = agent.kill();
    let _ = agent.wait();
}

/// The sample lines of an exposition by family (histogram suffixes folded into their family).
fn series_by_family(text: &str) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split(['{', ' ']).next().unwrap_or(line);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        *by.entry(family.to_owned()).or_insert(0) += 1;
    }
    by
}

fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Both locations ranked and chosen, and a probe round in: everything a steady agent exports.
/// (A second agent on the same state dir starts from the cached catalogue: no catalog run.)
fn steady(text: &str) -> bool {
    value(text, "popsel_catalog_pops ") == Some(45.0)
        && ["probe", "select", "reconcile", "status"]
            .iter()
            .all(|stage| {
                value(
                    text,
                    &format!("popsel_stage_runs_total{{stage=\"{stage}\"}} "),
                )
                .is_some_and(|runs| runs >= 1.0)
            })
        && text
            .lines()
            .filter(|l| l.starts_with("popsel_selected_pop_info{"))
            .count()
            == 4
        && text.lines().any(|l| l.starts_with("popsel_pop_up{"))
}

#[test]
fn one_agent_on_the_45_pop_world_exports_at_most_300_series_by_default() {
    let Some(fleet) = Fleet::start() else {
        return;
    };
    let mut agent = fleet.agent("", &[]);
    let text = fleet.scrape_until(&mut agent, steady);
    stop(agent);
    let by = series_by_family(&text);
    let total: usize = by.values().sum();
    eprintln!("default: {total} series\n{by:#?}");
    assert!(
        total <= FLEET_BUDGET,
        "{total} series, over {FLEET_BUDGET}: {by:#?}"
    );
    // What the alerts and the dashboard need is there: per PoP RTT, loss, up, and whether
    // probing works.
    let pops = by.get("popsel_pop_up").copied().unwrap_or(0);
    assert_eq!(pops, 45, "one popsel_pop_up a PoP: {by:#?}");
    assert_eq!(by.get("popsel_pop_loss_ratio"), Some(&45), "{by:#?}");
    assert!(by.get("popsel_pop_rtt_seconds") >= Some(&40), "{by:#?}");
    assert_eq!(value(&text, "popsel_probe_socket_up "), Some(1.0));
    assert!(value(&text, "popsel_probe_requests_total ") > Some(0.0));
    for opt_in in popsel::metrics::OPT_IN_FAMILIES {
        assert!(!by.contains_key(opt_in), "{opt_in} without its option");
    }

    // With every option on: the histogram, the endpoint series and every PoP ranked.
    let mut agent = fleet.agent(
        "rtt_histogram = true\nendpoint_series = true\nranked_pops = 0",
        &[],
    );
    let text = fleet.scrape_until(&mut agent, |t| {
        steady(t) && t.contains("popsel_probe_rtt_seconds_bucket{")
    });
    stop(agent);
    let all = series_by_family(&text);
    let total_all: usize = all.values().sum();
    eprintln!("every option on: {total_all} series\n{all:#?}");
    // 16 buckets, +Inf, sum and count for every PoP that answered (the world has a silent one).
    let histogram = all.get("popsel_probe_rtt_seconds").copied().unwrap_or(0);
    assert!(
        histogram % 19 == 0 && histogram >= 40 * 19,
        "{histogram}: {all:#?}"
    );
    assert!(all.get("popsel_endpoint_up") >= Some(&90), "{all:#?}");
    assert_eq!(all.get("popsel_pop_rank"), Some(&90), "{all:#?}");
    assert!(total_all > 1_000, "{total_all}");
}

/// Without CAP_NET_RAW and with ping sockets closed (the lab namespace's `ping_group_range`),
/// the agent cannot open an ICMP socket: it says so in `popsel_probe_socket_up`, rather than
/// leaving `popsel_pop_up` absent where no alert sees it; once ping sockets are allowed it
/// opens one and measures.
#[test]
fn an_agent_that_cannot_open_an_icmp_socket_says_so_in_its_metrics() {
    let Some(fleet) = Fleet::start() else {
        return;
    };
    fleet
        .lab
        .command("sysctl")
        .args(["-qw", "net.ipv4.ping_group_range=1 0"])
        .status()
        .expect("sysctl in the lab's namespace");
    let mut agent = fleet.agent(
        "",
        &[
            "setpriv",
            "--inh-caps=-net_raw",
            "--ambient-caps=-net_raw",
            "--bounding-set=-net_raw",
            "--",
        ],
    );
    let text = fleet.scrape_until(&mut agent, |t| {
        value(t, "popsel_stage_runs_total{stage=\"select\"} ") >= Some(1.0)
    });
    assert_eq!(value(&text, "popsel_probe_socket_up "), Some(0.0), "{text}");
    assert_eq!(value(&text, "popsel_probe_requests_total "), Some(0.0));
    assert!(!text.contains("popsel_pop_up{"), "{text}");

    // Ping sockets allowed later (a sysctl applied after boot): the next probe round opens
    // one and measures, with no restart.
    fleet
        .lab
        .command("sysctl")
        .args(["-qw", "net.ipv4.ping_group_range=0 2147483647"])
        .status()
        .expect("sysctl in the lab's namespace");
    let text = fleet.scrape_until(&mut agent, |t| {
        value(t, "popsel_probe_socket_up ") == Some(1.0)
            && t.lines()
                .any(|l| l.starts_with("popsel_pop_up{") && l.ends_with(" 1"))
    });
    stop(agent);
    assert!(
        value(&text, "popsel_probe_requests_total ") > Some(0.0),
        "{text}"
    );
}
