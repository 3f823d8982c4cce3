//! The world generator: from a site, a PoP catalogue with real city coordinates, the DNS zone
//! of its FQDNs, what every address answers (delay, jitter, loss, or nothing), and the order
//! `popsel rank` must put the PoPs in. Pure and deterministic from the seed.
//!
//! Cities and coordinates come from the sample catalogue (`config/catalog.sample.json`, 48
//! distinct cities). PoP `i` is city `i mod 48` (in an order shuffled by the seed) with the
//! `i / 48`-th provider, so any number of PoPs is possible and every (city, provider) pair is
//! distinct. Each PoP has `fqdns_per_pop` FQDNs with one listed address each, all in
//! 198.18.0.0/15 (the RFC 2544 benchmarking range). [`World::from_catalog`] takes a catalogue's
//! PoPs and addresses as they are instead (`popsel demo`: the sample the emulator serves).
//!
//! Delay of an address (round trip):
//!
//! ```text
//! 2 ms + 0.015 ms/km × great-circle distance + 2.5 ms × provider round + 1.5 ms × FQDN index
//! ```
//!
//! The two small terms keep PoPs of one city (and FQDNs of one PoP) apart, so that the expected
//! order does not rest on sub-millisecond ties. With anomalies on, ordering the PoPs by delay:
//! the 1st (the nearest) is congested (+60 ms, ±8 ms jitter), the 2nd loses 40% of its echo
//! requests, the 3rd is silent (drops ICMP), the 4th has an FQDN whose DNS answer adds an
//! address the catalogue does not list (same delay), and the last FQDN of the 5th is NXDOMAIN
//! (its listed address still answers).
//!
//! [`World::lossy_neighbour`] builds the benchmark world of adaptive probing (issue 14) on top
//! of this: a lossy PoP right behind the best, a close pair just behind, random loss.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;

use crate::catalog::{Catalog, ListedFqdn, Name, Pop};
use crate::location::Site;
use crate::rank::distance_km;

/// Every FQDN of a generated world ends with this (the DNS server's zone).
pub const DOMAIN: &str = "lab.popsel.test";
/// Round trip at distance 0.
pub const BASE_MS: f64 = 2.0;
/// Round trip per km of great-circle distance.
pub const MS_PER_KM: f64 = 0.015;
/// Added per provider round (the 2nd provider of a city is 2.5 ms slower than the 1st).
pub const PROVIDER_STEP_MS: f64 = 2.5;
/// Added per FQDN index within a PoP.
pub const FQDN_STEP_MS: f64 = 1.5;
/// Extra delay of the congested PoP.
pub const CONGESTION_MS: f64 = 60.0;
/// Jitter (± uniform) of the congested PoP.
pub const CONGESTION_JITTER_MS: f64 = 8.0;
/// Loss ratio of the lossy PoP.
pub const LOSSY_LOSS: f64 = 0.4;
/// PoPs of the benchmark world [`World::lossy_neighbour`] (45 of the sample's 48 cities).
pub const NEIGHBOUR_POPS: usize = 45;
/// How far the lossy PoP of [`World::lossy_neighbour`] is behind the best (its first address).
pub const NEIGHBOUR_LOSSY_MS: f64 = 0.6;
/// How far the close pair of [`World::lossy_neighbour`] is behind the best.
pub const CLOSE_PAIR_MS: [f64; 2] = [2.0, 2.8];
/// The other PoPs of [`World::lossy_neighbour`] are at least this far behind the best...
pub const REST_BEHIND_MS: f64 = 10.0;
/// ... and at least this far apart.
pub const REST_GAP_MS: f64 = 2.0;
/// The jitter (± uniform) of every address of [`World::lossy_neighbour`], drawn in this range.
pub const NEIGHBOUR_JITTER_MS: (f64, f64) = (0.1, 0.3);
/// The lab's own address on the TUN device (never given to a PoP).
pub const LAB_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);
/// Prefix length of the TUN device's address: the whole 198.18.0.0/15 goes to the TUN.
pub const LAB_PREFIX: u8 = 15;
/// Addresses that only DNS knows start here.
pub const DNS_ONLY_FIRST: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
/// Catalogue addresses: 254 per /24 from 198.18.0.0 up to (not into) 198.19.254.0.
pub const MAX_ADDRESSES: usize = 254 * (256 + 254);

const PROVIDERS: [&str; 8] = [
    "AWS", "Azure", "GCP", "OCI", "Equinix", "Akamai", "Vultr", "Linode",
];

/// How the responder leaves out the share `loss` of an address's echo requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LossMode {
    /// Spread evenly: over any run of requests exactly the configured share (40%: 2 of every
    /// 5). Tests rely on it.
    #[default]
    Even,
    /// Each request dropped independently with probability `loss`, from an RNG seeded per lab
    /// start: what a real lossy path shows a short probe run. For benchmarks.
    Random,
}

impl LossMode {
    pub fn name(self) -> &'static str {
        match self {
            LossMode::Even => "even",
            LossMode::Random => "random",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub site: Site,
    pub pops: usize,
    pub fqdns_per_pop: usize,
    pub seed: u64,
    pub anomalies: bool,
    pub loss: LossMode,
}

impl Spec {
    /// `pops` PoPs with two FQDNs each, seed 1, anomalies on, even loss.
    pub fn new(site: Site, pops: usize) -> Spec {
        Spec {
            site,
            pops,
            fqdns_per_pop: 2,
            seed: 1,
            anomalies: true,
            loss: LossMode::Even,
        }
    }
}

/// How an address answers echo requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Round trip (the responder holds the reply this long).
    pub delay: Duration,
    /// The delay varies uniformly within ± this.
    pub jitter: Duration,
    /// Share of requests left unanswered, evenly or at random as the world's
    /// [`LossMode`] says (see the responder).
    pub loss: f64,
}

impl Link {
    /// The score `popsel rank` should give this address: median RTT + 500 ms × loss +
    /// 0.2 × min(jitter, 50 ms), where a uniform ±J delay has a mean absolute difference of
    /// consecutive round trips of 2J/3. `None` when it never answers.
    pub fn expected_score(&self) -> Option<f64> {
        if self.loss >= 1.0 {
            return None;
        }
        let jitter = ms(self.jitter) * 2.0 / 3.0;
        Some(ms(self.delay) + 500.0 * self.loss + 0.2 * jitter.min(50.0))
    }
}

/// A generated PoP.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldPop {
    pub pop: Pop,
    pub distance_km: f64,
    /// Which provider round (0: the city's first provider).
    pub round: usize,
}

/// The anomalies, by PoP index.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomalies {
    /// The nearest PoP, congested.
    pub congested: usize,
    /// Loses [`LOSSY_LOSS`] of its requests.
    pub lossy: usize,
    /// Never answers.
    pub silent: usize,
    /// PoP whose first FQDN's DNS answer has an address the catalogue does not list.
    pub dns_extra_pop: usize,
    pub dns_extra_fqdn: String,
    pub dns_only_address: Ipv4Addr,
    /// PoP whose last FQDN is NXDOMAIN (its listed address still answers).
    pub nxdomain_pop: usize,
    pub nxdomain_fqdn: String,
}

/// The roles in [`World::lossy_neighbour`], by PoP index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossyNeighbour {
    /// The lowest delay.
    pub best: usize,
    /// [`NEIGHBOUR_LOSSY_MS`] behind the best, its addresses losing [`LOSSY_LOSS`] at random.
    pub lossy: usize,
    /// Just behind, [`CLOSE_PAIR_MS`] behind the best: within 1 ms of each other.
    pub close: [usize; 2],
    /// Never answers.
    pub silent: usize,
}

/// The expected place of one PoP.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// Index in [`World::pops`].
    pub pop: usize,
    /// Expected score (ms) of its best endpoint; `None`: unreachable.
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub spec: Spec,
    pub pops: Vec<WorldPop>,
    /// Name (no trailing dot) -> A records. A catalogue name absent here is NXDOMAIN.
    pub zone: BTreeMap<String, Vec<Ipv4Addr>>,
    /// What each address answers; an address absent here is silent.
    pub links: BTreeMap<Ipv4Addr, Link>,
    pub anomalies: Option<Anomalies>,
    /// The roles of the benchmark world [`World::lossy_neighbour`].
    pub lossy_neighbour: Option<LossyNeighbour>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn from_ms(v: f64) -> Duration {
    Duration::from_micros((v * 1000.0).round().max(0.0) as u64)
}

/// The `n`-th catalogue address: 198.18.0.1, .2, ... .254, 198.18.1.1, ...
pub fn address(n: usize) -> Ipv4Addr {
    assert!(n < MAX_ADDRESSES, "at most {MAX_ADDRESSES} addresses");
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    Ipv4Addr::from(base + (n / 254) as u32 * 256 + (n % 254) as u32 + 1)
}

/// `Chicago, Illinois` -> `chicago`; `São Paulo, São Paulo` -> `so-paulo`.
fn slug(text: &str) -> String {
    let head = text.split(',').next().unwrap_or_default();
    let mut out = String::new();
    for c in head.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if (c == ' ' || c == '-') && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The IPv4 address of `ip`, if it is one.
fn v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }
}

/// Whether the lab can answer for `ip`: in 198.18.0.0/15 (routed to its TUN device), and not
/// the lab's own address.
pub fn answerable(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 198 && (b & 0xfe) == 18 && ip != LAB_ADDRESS
}

/// Distinct (country, city, latitude, longitude) of the sample catalogue, in its order.
pub fn sample_cities() -> Vec<(Name, Name, f64, f64)> {
    // The sample is checked by the emulator's unit tests: it parses, every entry valid.
    let pops = Catalog::from_json(crate::sim::SAMPLE_CATALOG)
        .map(|c| c.pops)
        .unwrap_or_default();
    let mut cities: Vec<(Name, Name, f64, f64)> = Vec::new();
    for p in pops {
        if !cities.iter().any(|c| c.0 == p.country && c.1 == p.city) {
            cities.push((p.country, p.city, p.latitude, p.longitude));
        }
    }
    cities
}

fn provider(round: usize) -> String {
    let base = PROVIDERS[round % PROVIDERS.len()];
    match round / PROVIDERS.len() {
        0 => base.to_owned(),
        n => format!("{base}-{}", n + 1),
    }
}

impl World {
    /// Generates the world of `spec`.
    pub fn generate(spec: Spec) -> World {
        assert!(spec.pops > 0 && spec.fqdns_per_pop > 0, "an empty world");
        assert!(
            !spec.anomalies || spec.pops >= 6,
            "the anomalies need at least 6 PoPs"
        );
        let cities = sample_cities();
        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let mut order: Vec<usize> = (0..cities.len()).collect();
        rng.shuffle(&mut order);

        let mut pops = Vec::with_capacity(spec.pops);
        let mut next_address = 0;
        for i in 0..spec.pops {
            let round = i / cities.len();
            let (country, city, latitude, longitude) = &cities[order[i % cities.len()]];
            let provider = provider(round);
            let fqdns = (0..spec.fqdns_per_pop)
                .map(|k| {
                    let ip = address(next_address);
                    next_address += 1;
                    ListedFqdn {
                        name: format!(
                            "ipsec-{}-{}-{}-{}.{DOMAIN}",
                            slug(country),
                            slug(city),
                            slug(&provider),
                            k + 1
                        )
                        .into(),
                        ips: [IpAddr::V4(ip)].into(),
                    }
                })
                .collect();
            let pop = Pop {
                country: country.clone(),
                city: city.clone(),
                provider: provider.into(),
                latitude: *latitude,
                longitude: *longitude,
                fqdns,
            };
            pops.push((pop, round));
        }
        World::populate(spec, pops)
    }

    /// The world of an existing catalogue (`popsel demo`: the sample the emulator serves), seen
    /// from `site`: its PoPs and addresses as they are, each address of 198.18.0.0/15 answering
    /// after the delay of the formula above, a PoP's provider round being its place among the
    /// catalogue's PoPs of its city. Addresses outside the range (and IPv6 ones) stay silent.
    /// With `anomalies`, those of [`World::generate`], when at least 5 PoPs answer. Even loss.
    pub fn from_catalog(site: Site, pops: Vec<Pop>, seed: u64, anomalies: bool) -> World {
        let spec = Spec {
            site,
            pops: pops.len(),
            fqdns_per_pop: pops.iter().map(|p| p.fqdns.len()).max().unwrap_or(0),
            seed,
            anomalies,
            loss: LossMode::Even,
        };
        let mut rounds: BTreeMap<(Name, Name), usize> = BTreeMap::new();
        let pops = pops
            .into_iter()
            .map(|pop| {
                let seen = rounds
                    .entry((pop.country.clone(), pop.city.clone()))
                    .or_default();
                let round = *seen;
                *seen += 1;
                (pop, round)
            })
            .collect();
        World::populate(spec, pops)
    }

    /// The world of `pops` (each with its provider round): every listed address of the
    /// benchmarking range answers after its delay, every FQDN resolves to its listed IPv4
    /// addresses; then the anomalies, if the spec asks for them.
    fn populate(spec: Spec, pops: Vec<(Pop, usize)>) -> World {
        let mut zone = BTreeMap::new();
        let mut links = BTreeMap::new();
        let pops = pops
            .into_iter()
            .map(|(pop, round)| {
                let km = distance_km(spec.site, &pop);
                for (k, fqdn) in pop.fqdns.iter().enumerate() {
                    let v4: Vec<Ipv4Addr> = fqdn.ips.iter().filter_map(|ip| v4(*ip)).collect();
                    let delay = BASE_MS
                        + MS_PER_KM * km
                        + PROVIDER_STEP_MS * round as f64
                        + FQDN_STEP_MS * k as f64;
                    for ip in v4.iter().filter(|ip| answerable(**ip)) {
                        let link = Link {
                            delay: from_ms(delay),
                            jitter: Duration::ZERO,
                            loss: 0.0,
                        };
                        links.insert(*ip, link);
                    }
                    zone.insert(fqdn.name.to_string(), v4);
                }
                WorldPop {
                    pop,
                    distance_km: km,
                    round,
                }
            })
            .collect();
        let mut world = World {
            spec,
            pops,
            zone,
            links,
            anomalies: None,
            lossy_neighbour: None,
        };
        if spec.anomalies {
            world.add_anomalies();
        }
        world
    }

    /// The delay of PoP `i`'s first catalogue address; `None` when it has no link.
    fn first_delay(&self, i: usize) -> Option<Duration> {
        let first = *self.listed(i).first()?;
        Some(self.links.get(&first)?.delay)
    }

    /// The PoPs whose first address answers, by its delay, nearest first (every PoP, as
    /// generated).
    fn by_delay(&self) -> Vec<usize> {
        let mut by_delay: Vec<(usize, Duration)> = (0..self.pops.len())
            .filter_map(|i| Some((i, self.first_delay(i)?)))
            .collect();
        by_delay.sort_by(|&(a, da), &(b, db)| {
            da.cmp(&db)
                .then_with(|| {
                    self.pops[a]
                        .distance_km
                        .total_cmp(&self.pops[b].distance_km)
                })
                .then_with(|| a.cmp(&b))
        });
        by_delay.into_iter().map(|(i, _)| i).collect()
    }

    /// The anomalies of the module's docs, on the first five PoPs by delay (none when fewer
    /// than five answer).
    fn add_anomalies(&mut self) {
        let by_delay = self.by_delay();
        let &[congested, lossy, silent, dns_extra_pop, nxdomain_pop, ..] = by_delay.as_slice()
        else {
            return;
        };
        for ip in self.listed(congested) {
            if let Some(link) = self.links.get_mut(&ip) {
                link.delay += from_ms(CONGESTION_MS);
                link.jitter = from_ms(CONGESTION_JITTER_MS);
            }
        }
        for ip in self.listed(lossy) {
            if let Some(link) = self.links.get_mut(&ip) {
                link.loss = LOSSY_LOSS;
            }
        }
        for ip in self.listed(silent) {
            self.links.remove(&ip);
        }
        let dns_extra_fqdn = self.pops[dns_extra_pop].pop.fqdns[0].name.to_string();
        if let Some(delay) = self.first_delay(dns_extra_pop) {
            let link = Link {
                delay,
                jitter: Duration::ZERO,
                loss: 0.0,
            };
            self.links.insert(DNS_ONLY_FIRST, link);
        }
        if let Some(answer) = self.zone.get_mut(&dns_extra_fqdn) {
            answer.push(DNS_ONLY_FIRST);
        }
        let nxdomain_fqdn = self.pops[nxdomain_pop]
            .pop
            .fqdns
            .last()
            .map(|f| f.name.to_string())
            .unwrap_or_default();
        self.zone.remove(&nxdomain_fqdn);
        self.anomalies = Some(Anomalies {
            congested,
            lossy,
            silent,
            dns_extra_pop,
            dns_extra_fqdn,
            dns_only_address: DNS_ONLY_FIRST,
            nxdomain_pop,
            nxdomain_fqdn,
        });
    }

    /// The benchmark world of issue 14 (`benches/rank_adaptive.py`): `pops` PoPs (at least 6;
    /// [`NEIGHBOUR_POPS`] in the benchmark) seen from `site`, two addresses each, random loss.
    /// Ordering the PoPs by delay as [`World::generate`] makes them:
    ///
    /// - the 1st is the best, at its own delay;
    /// - the 2nd is [`NEIGHBOUR_LOSSY_MS`] behind it (under 1 ms), both its addresses losing
    ///   [`LOSSY_LOSS`] of their requests at random: expected 200 ms behind, out of the top 3,
    ///   but 5 requests to one of its addresses all come back 7.8% of the time;
    /// - the 3rd and 4th are [`CLOSE_PAIR_MS`] behind the best, within 1 ms of each other;
    /// - the 5th is silent;
    /// - the rest keep their delay, but at least [`REST_BEHIND_MS`] behind the best and
    ///   [`REST_GAP_MS`] apart.
    ///
    /// A PoP's second address is [`FQDN_STEP_MS`] behind its first; every address has a jitter
    /// in [`NEIGHBOUR_JITTER_MS`]. The truth: the best, then the close pair.
    pub fn lossy_neighbour(site: Site, pops: usize, seed: u64) -> World {
        assert!(pops >= 6, "the lossy-neighbour world needs at least 6 PoPs");
        let mut world = World::generate(Spec {
            anomalies: false,
            loss: LossMode::Random,
            seed,
            ..Spec::new(site, pops)
        });
        let by_delay = world.by_delay();
        let [best, lossy, close_a, close_b, silent] = [0, 1, 2, 3, 4].map(|k| by_delay[k]);
        let base = ms(world.links[&world.listed(best)[0]].delay);
        // Its own stream: the cities' order stays that of `generate`.
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_add(0x5eed));
        let (low, high) = NEIGHBOUR_JITTER_MS;
        let mut rest_floor = base + REST_BEHIND_MS;
        for &i in &by_delay {
            let listed = world.listed(i);
            if i == silent {
                for ip in &listed {
                    world.links.remove(ip);
                }
                continue;
            }
            let first = match i {
                _ if i == best => base,
                _ if i == lossy => base + NEIGHBOUR_LOSSY_MS,
                _ if i == close_a => base + CLOSE_PAIR_MS[0],
                _ if i == close_b => base + CLOSE_PAIR_MS[1],
                _ => {
                    let delay = ms(world.links[&listed[0]].delay).max(rest_floor);
                    rest_floor = delay + REST_GAP_MS;
                    delay
                }
            };
            for (k, ip) in listed.into_iter().enumerate() {
                let link = Link {
                    delay: from_ms(first + FQDN_STEP_MS * k as f64),
                    jitter: from_ms(low + (high - low) * rng.f64()),
                    loss: if i == lossy { LOSSY_LOSS } else { 0.0 },
                };
                world.links.insert(ip, link);
            }
        }
        world.lossy_neighbour = Some(LossyNeighbour {
            best,
            lossy,
            close: [close_a, close_b],
            silent,
        });
        world
    }

    /// The catalogue addresses of PoP `i`.
    pub fn listed(&self, i: usize) -> Vec<Ipv4Addr> {
        self.pops[i]
            .pop
            .fqdns
            .iter()
            .flat_map(|f| f.ips.iter())
            .filter_map(|ip| v4(*ip))
            .collect()
    }

    /// The addresses of PoP `i` that popsel probes: the listed ones and, with DNS, what the
    /// zone answers for its names (each once).
    pub fn endpoints(&self, i: usize, dns: bool) -> Vec<Ipv4Addr> {
        let mut out = self.listed(i);
        if dns {
            for f in &self.pops[i].pop.fqdns {
                for ip in self.zone.get(&*f.name).into_iter().flatten() {
                    if !out.contains(ip) {
                        out.push(*ip);
                    }
                }
            }
        }
        out
    }

    /// Every address popsel probes, each once, in catalogue order.
    pub fn targets(&self, dns: bool) -> Vec<Ipv4Addr> {
        let mut seen = std::collections::HashSet::new();
        (0..self.pops.len())
            .flat_map(|i| self.endpoints(i, dns))
            .filter(|ip| seen.insert(*ip))
            .collect()
    }

    /// The largest delay (plus jitter) of any address that answers.
    pub fn largest_rtt(&self) -> Duration {
        self.links
            .values()
            .filter(|l| l.loss < 1.0)
            .map(|l| l.delay + l.jitter)
            .max()
            .unwrap_or_default()
    }

    /// Whether some target never answers.
    pub fn has_silent(&self, dns: bool) -> bool {
        self.targets(dns)
            .iter()
            .any(|ip| !self.links.contains_key(ip))
    }

    /// Index of the PoP in `city` of `provider`.
    pub fn find(&self, city: &str, provider: &str) -> Option<usize> {
        self.pops
            .iter()
            .position(|p| *p.pop.city == *city && *p.pop.provider == *provider)
    }

    /// Expected score of PoP `i` (its best endpoint), `None` if no endpoint answers.
    pub fn expected_score(&self, i: usize, dns: bool) -> Option<f64> {
        self.endpoints(i, dns)
            .iter()
            .filter_map(|ip| self.links.get(ip)?.expected_score())
            .min_by(f64::total_cmp)
    }

    /// The order `popsel rank` must produce, computed from the documented rule: reachable PoPs
    /// by score, distance breaking ties (then country, city, provider); unreachable ones after
    /// them, nearest first.
    pub fn expected_order(&self, dns: bool) -> Vec<Expected> {
        let mut out: Vec<Expected> = (0..self.pops.len())
            .map(|pop| Expected {
                pop,
                score: self.expected_score(pop, dns),
            })
            .collect();
        out.sort_by(|a, b| {
            let (pa, pb) = (&self.pops[a.pop], &self.pops[b.pop]);
            match (a.score, b.score) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
            .then_with(|| pa.distance_km.total_cmp(&pb.distance_km))
            .then_with(|| pa.pop.country.cmp(&pb.pop.country))
            .then_with(|| pa.pop.city.cmp(&pb.pop.city))
            .then_with(|| pa.pop.provider.cmp(&pb.pop.provider))
        });
        out
    }

    /// The catalogue, in the shape of `GET /api/v1/pops/ipsec` (and the sample file).
    pub fn catalog_json(&self) -> String {
        let mut countries: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        for p in &self.pops {
            let pop = &p.pop;
            let entry = json!({
                "city": pop.city,
                "latitude": pop.latitude.to_string(),
                "longitude": pop.longitude.to_string(),
                "provider": pop.provider,
                "fqdn": pop.fqdns.iter().map(|f| json!({
                    "name": f.name,
                    "ip": f.ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            match countries.iter_mut().find(|(c, _)| *c == *pop.country) {
                Some((_, locations)) => locations.push(entry),
                None => countries.push((pop.country.to_string(), vec![entry])),
            }
        }
        let doc = json!({
            "ipSecLocations": countries
                .into_iter()
                .map(|(country, locations)| json!({"country": country, "locations": locations}))
                .collect::<Vec<_>>(),
        });
        // Serialising a `Value` cannot fail (its keys are strings).
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }

    /// PoP `i` as scripts name it: city, country, provider.
    fn pop_json(&self, i: usize) -> serde_json::Value {
        let p = &self.pops[i].pop;
        json!({"city": p.city, "country": p.country, "provider": p.provider})
    }

    /// A description for scripts: every target with its link and PoP, the expected order, the
    /// loss mode, and the roles of the lossy-neighbour world.
    pub fn describe(&self, dns: bool) -> serde_json::Value {
        let pop_of: BTreeMap<Ipv4Addr, usize> = (0..self.pops.len())
            .flat_map(|i| self.endpoints(i, dns).into_iter().map(move |ip| (ip, i)))
            .collect();
        let targets: Vec<serde_json::Value> = self
            .targets(dns)
            .into_iter()
            .map(|ip| {
                let link = self.links.get(&ip);
                let mut target = json!({
                    "ip": ip.to_string(),
                    "silent": link.is_none(),
                    "delay_ms": link.map(|l| ms(l.delay)),
                    "jitter_ms": link.map(|l| ms(l.jitter)),
                    "loss": link.map(|l| l.loss),
                });
                if let Some(&i) = pop_of.get(&ip) {
                    target["pop"] = self.pop_json(i);
                }
                target
            })
            .collect();
        let roles = self.lossy_neighbour.map(|n| {
            json!({
                "best": self.pop_json(n.best),
                "lossy": self.pop_json(n.lossy),
                "close": n.close.map(|i| self.pop_json(i)),
                "silent": self.pop_json(n.silent),
            })
        });
        let expected: Vec<serde_json::Value> = self
            .expected_order(dns)
            .into_iter()
            .map(|e| {
                let p = &self.pops[e.pop];
                json!({
                    "city": p.pop.city, "country": p.pop.country, "provider": p.pop.provider,
                    "distance_km": p.distance_km, "score": e.score,
                })
            })
            .collect();
        json!({
            "site": {"latitude": self.spec.site.latitude, "longitude": self.spec.site.longitude},
            "pops": self.pops.len(),
            "largest_rtt_ms": ms(self.largest_rtt()),
            "targets": targets,
            "expected": expected,
            "loss_mode": self.spec.loss.name(),
            "lossy_neighbour": roles,
        })
    }
}

#[cfg(test)]
#[path = "world_tests.rs"]
mod tests;
