//! `popsel run` in the latency lab, probing: it spends its echo requests on the contenders
//! (each location's best PoPs and its chosen ones) in every round and on every address only in
//! every fourth round. Needs root: skips otherwise, fails under CI=true.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::lab::world::{Spec, World};
use crate::lab::{self, Lab};
use crate::support::site::{self, SiteDir};
use crate::support::{self, toml_str};
use popsel::location::Site;

const POPSEL: &str = env!("CARGO_BIN_EXE_popsel");

/// Sapporo, as in `lab_rank`.
const SITE: Site = Site {
    latitude: 43.06,
    longitude: 141.35,
};

/// Requests per address in a round.
const COUNT: u64 = 2;

#[test]
fn the_agent_probes_its_contenders_every_round_and_every_address_every_fourth() {
    let world = World::generate(Spec {
        seed: 2,
        ..Spec::new(SITE, 40)
    });
    if !support::can_run_privileged(lab::available()) {
        return;
    }
    let lab = Lab::start(world.clone()).unwrap_or_else(|e| panic!("the lab did not start: {e}"));
    let files = SiteDir::new();
    let sim = lab
        .serve_world(Path::new(POPSEL), files.dir.path(), support::TOKEN)
        .expect("popsel sim in the lab");
    let sections = format!(
        r#"
[dns]
nameservers = [{nameserver}]

[probe]
count = {COUNT}
interval = "50ms"
timeout = "300ms"

[agent]
probe_interval = "1s"
catalog_interval = "1h"
reconcile_interval = "1h"
status_interval = "1h"

[metrics]
listen = "127.0.0.1:0"
"#,
        nameserver = toml_str(&lab.nameserver().to_string())
    );
    files.write_config(&site::config(&sim.url).with(&sections));
    let mut cmd = lab.command(POPSEL);
    cmd.args(["run", "--config"])
        .arg(files.config_path())
        .env("POPSEL_API_TOKEN", support::TOKEN)
        .env("DEMO_PSK", "lab-agent-psk-5d1e")
        .env_remove("POPSEL_API_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut agent = cmd.spawn().expect("popsel run in the lab");
    std::thread::sleep(Duration::from_secs(10));
    let _ = agent.kill();
    let _ = agent.wait();

    let requests = lab.stats().snapshot();
    let count = |pop: usize| -> u64 {
        world
            .endpoints(pop, true)
            .iter()
            .map(|ip| requests.get(ip).map_or(0, |s| s.requests))
            .max()
            .unwrap_or(0)
    };
    let order = world.expected_order(true);
    let best = count(order[0].pop);
    let rounds = best / COUNT;
    assert!(rounds >= 6, "{rounds} rounds in 10 s at 1 s");
    let last = order
        .iter()
        .rev()
        .find(|e| e.score.is_some())
        .expect("a PoP");
    let far = count(last.pop);
    assert!(
        far >= COUNT && far <= COUNT * rounds.div_ceil(4),
        "the farthest PoP: {far} requests in {rounds} rounds"
    );
    let total: u64 = requests.values().map(|s| s.requests).sum();
    let every_address_every_round = COUNT * rounds * world.targets(true).len() as u64;
    assert!(
        total * 2 <= every_address_every_round,
        "{total} requests, against {every_address_every_round} for every address in every round"
    );
}
