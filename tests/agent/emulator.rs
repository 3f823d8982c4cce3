//! Setting up and reading the emulator the agent talks to.

use popsel::atmos::Tunnel;
use std::time::SystemTime;

use popsel::sim::Sim;
use serde_json::json;

use crate::site::*;
use crate::support;

pub async fn sim_with_connector() -> Sim {
    let sim = support::start_sim(support::no_faults()).await;
    sim.with_store(|s| s.create_connector(&json!({ "name": CONNECTOR })))
        .expect("create the connector");
    sim
}

pub fn tunnel_id(sim: &Sim, name: &str) -> String {
    sim.with_store(|s| s.list::<Tunnel>())
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("tunnel {name:?} is not in the emulator"))
        .id
}

pub use crate::support::tunnel_names;

pub fn sorted(names: &[(&str, &str)]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|(_, n)| (*n).to_owned()).collect();
    out.sort();
    out
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
