//! What the collectors' tests share: fixtures and a reader of the exposition.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::catalog::{ListedFqdn, Pop};
use crate::location::Role;
use crate::probe::{Probe, Probes};
use crate::resolve::{Endpoint, Source};
use crate::select::{Change, Choice, LocationSelection, RoleState, Selection};
use crate::survey::Survey;

pub(super) fn pop(city: &str) -> Pop {
    Pop {
        country: "DE".into(),
        city: city.into(),
        provider: "AWS".into(),
        latitude: 50.0,
        longitude: 8.0,
        fqdns: vec![ListedFqdn {
            name: format!("{}.pops.test", city.to_lowercase()).into(),
            ips: Default::default(),
        }],
    }
}

/// A probe round of one endpoint per city, `198.18.0.1` on, each answering 2 of 3 echo
/// requests in 3 and 5 ms.
pub(super) fn survey(cities: &[&str]) -> Survey {
    let mut pops = Vec::new();
    let mut probes = Probes::default();
    for (i, city) in cities.iter().enumerate() {
        let ip = format!("198.18.0.{}", i + 1).parse().unwrap();
        pops.push((
            pop(city),
            vec![Endpoint {
                fqdn: format!("{}.pops.test", city.to_lowercase()).into(),
                ip,
                source: Source::Catalog,
            }],
        ));
        let rtts = vec![Duration::from_millis(3), Duration::from_millis(5)];
        probes.insert(
            ip,
            Probe {
                sent: 3,
                received: 2,
                rtts: rtts.into(),
                error: None,
            },
        );
    }
    Survey {
        pops,
        answers: HashMap::new(),
        probes: Some(probes.into()),
    }
}

/// `location` choosing the first endpoint of `survey`'s first PoP as its primary and of the
/// second (if any) as its secondary, both choices new.
pub(super) fn chosen(location: &str, survey: &Survey) -> (Selection, Vec<Change>) {
    let mut chosen = LocationSelection::default();
    let mut changes = Vec::new();
    for (role, (pop, endpoints)) in [Role::Primary, Role::Secondary]
        .into_iter()
        .zip(&survey.pops)
    {
        let choice = Choice {
            pop: pop.id(),
            fqdn: endpoints[0].fqdn.to_string(),
            ip: endpoints[0].ip,
            score: Some(4.0),
            rtt_ms: Some(4.0),
            since: String::new(),
            since_unix: 0,
        };
        *chosen.role_mut(role) = RoleState {
            choice: Some(choice.clone()),
            evidence: Default::default(),
        };
        changes.push(Change {
            location: location.into(),
            role,
            old: None,
            new: Some(choice),
            reason: "first choice".into(),
        });
    }
    let selection = Selection {
        version: 1,
        locations: [(location.to_string(), chosen)].into(),
    };
    (selection, changes)
}

/// What `/metrics` would serve if `collector` were all there is (a clone of a collector shares
/// its series).
pub(super) fn exposition(collector: impl Collector + 'static) -> String {
    let registry = Registry::new();
    registry.register(Box::new(collector)).unwrap();
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

/// The value of the series `name{labels}` (labels in any order), if present.
pub(super) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let labels: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

/// The families that have a `# TYPE` line.
pub(super) fn typed_families(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect()
}

/// The names of the descriptors `collector` registers.
pub(super) fn described(collector: &dyn Collector) -> Vec<&str> {
    collector
        .desc()
        .into_iter()
        .map(|d| d.fq_name.as_str())
        .collect()
}
