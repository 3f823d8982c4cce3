//! The demo's emulated network: the sample catalogue the emulator serves, its PoPs answering
//! ICMP echo in a latency lab of the demo's own ([`crate::lab`]) with delays from their
//! great-circle distance to the demo's measured location, and the agent's ICMP sockets opened
//! inside it. Where the process may not build one, the demo ranks by distance and says what it
//! would take.
//!
//! The sockets join the lab's namespace by being made on a thread that has entered it
//! ([`Lab::inside`]), rather than by running the demo in the namespace (re-executed, or
//! `unshare` before the runtime starts): that way only the probes are inside, and the
//! emulator, the API client and `/metrics` stay on the host's loopback, where the user's
//! `curl` reaches them; one process, whose namespace the kernel removes with it.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::lab::world::{
    BASE_MS, CONGESTION_JITTER_MS, CONGESTION_MS, LOSSY_LOSS, MS_PER_KM, World,
};
use crate::lab::{self, Lab, Unavailable};
use crate::probe::icmp::Prober;
use crate::rank::{Basis, Ranking};

/// Seeds the congested PoP's jitter: the same demo every time.
const SEED: u64 = 1;

/// What a process without the lab's privileges is told to do.
pub const HOW_TO_MEASURE: &str = "run as root or with CAP_SYS_ADMIN,CAP_NET_ADMIN,CAP_NET_RAW to measure latency in an emulated network, where the sample PoPs answer ICMP";

/// How the demo ranks.
pub struct Network {
    /// The lab the demo measures in; `None`: every location is ranked by distance.
    lab: Option<Lab>,
    /// The measured location, which the lab's world is seen from.
    location: String,
    /// The agent's probe engine, its sockets inside the lab; the agent takes it.
    pub prober: Option<Prober>,
    /// What the demo says about how it ranks, and why.
    pub note: String,
}

impl Network {
    /// Starts the lab for the first location measured from this host, and the probe engine
    /// inside it; or says why the demo ranks by distance.
    pub fn start(config: &Config) -> Network {
        let by_distance = |why: String| Network {
            lab: None,
            location: String::new(),
            prober: None,
            note: format!("Ranking by distance: {why}."),
        };
        let Some(measured) = config.locations.iter().find(|l| l.local) else {
            return by_distance("no location is measured from this host".into());
        };
        if let Err(e) = lab::available() {
            return by_distance(match e {
                Unavailable::Capabilities { missing } => format!(
                    "{HOW_TO_MEASURE} (this process lacks {}; e.g. `sudo target/release/popsel demo`)",
                    missing.join(", ")
                ),
                Unavailable::NoTun | Unavailable::Unknown(_) => {
                    format!("the emulated network cannot be built here: {e}")
                }
            });
        }
        // The same catalogue the emulator serves.
        let pops = Catalog::from_json(crate::sim::SAMPLE_CATALOG)
            .map(|c| c.pops)
            .unwrap_or_default();
        let world = World::from_catalog(measured.site, pops, SEED, true);
        let (pops, addresses) = (world.pops.len(), world.targets(false).len());
        let started = Lab::start(world, lab::Options::default()).and_then(|lab| {
            let runtime = tokio::runtime::Handle::current();
            let prober = lab.inside(|| {
                // Each socket gets a receive task on the demo's runtime.
                let _runtime = runtime.enter();
                Prober::new(&config.probe)
            })?;
            Ok((lab, prober))
        });
        let (lab, prober) = match started {
            Ok((lab, Ok(prober))) => (lab, prober),
            Ok((_, Err(e))) => {
                return by_distance(format!("no ICMP socket in the emulated network: {e}"));
            }
            Err(e) => return by_distance(format!("the emulated network did not start: {e}")),
        };
        let others: Vec<String> = config
            .locations
            .iter()
            .filter(|l| !l.local)
            .map(|l| format!("{} (local = false)", l.name))
            .collect();
        let note = format!(
            "Emulated network: in a network namespace of the demo's own, the sample catalogue's {pops} PoPs ({addresses} addresses) answer ICMP echo after {BASE_MS} ms + {MS_PER_KM} ms/km of great-circle distance from {name} ({lat},{lon}), a few with trouble of their own. Ranking {name} by measured latency{rest}.",
            name = measured.name,
            lat = measured.site.latitude,
            lon = measured.site.longitude,
            rest = if others.is_empty() {
                String::new()
            } else {
                format!(", {} by distance", others.join(", "))
            },
        );
        Network {
            lab: Some(lab),
            location: measured.name.clone(),
            prober: Some(prober),
            note,
        }
    }

    /// For the measured location's ranking by latency: a sentence on where it departs from the
    /// distance ranking, and why (see [`contrast`]). `None` for any other ranking.
    pub fn contrast(&self, location: &str, ranking: &Ranking) -> Option<String> {
        let lab = self.lab.as_ref()?;
        if location != self.location {
            return None;
        }
        contrast(lab.world(), ranking)
    }
}

/// Where `ranking`, measured in `world`, departs from the distance ranking, and why: the
/// world's anomalies (its nearest PoP congested, the next lossy, the third silent) and where
/// they ranked. `None` unless the ranking is by latency and has them all.
pub fn contrast(world: &World, ranking: &Ranking) -> Option<String> {
    if ranking.basis != Basis::Latency {
        return None;
    }
    let anomalies = world.anomalies.as_ref()?;
    let id = |i: usize| world.pops.get(i).map(|p| p.pop.id());
    let place = |i: usize| {
        let wanted = id(i)?;
        let ranked = ranking.pops.iter().find(|r| r.pop.id() == wanted)?;
        Some(match ranked.reachable {
            true => ordinal(ranked.rank),
            false => "unreachable".to_owned(),
        })
    };
    let congested = anomalies.congested;
    let km = world.pops.get(congested)?.distance_km;
    let by_distance = 1 + world.pops.iter().filter(|p| p.distance_km < km).count();
    Some(format!(
        "Latency and distance disagree: {pop} ({km:.0} km) would rank {distance} by distance, but this emulated network congests it (+{CONGESTION_MS} ms ±{CONGESTION_JITTER_MS} ms) and it ranks {measured} by measured latency; {lossy} loses {loss:.0}% of its echo requests ({lossy_place}) and {silent} does not answer ({silent_place}).",
        pop = id(congested)?,
        distance = ordinal(by_distance),
        measured = place(congested)?,
        lossy = id(anomalies.lossy)?,
        loss = LOSSY_LOSS * 100.0,
        lossy_place = place(anomalies.lossy)?,
        silent = id(anomalies.silent)?,
        silent_place = place(anomalies.silent)?,
    ))
}

/// 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st.
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
