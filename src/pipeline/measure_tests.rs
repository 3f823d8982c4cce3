use std::time::Duration;

use super::*;
use crate::catalog::Pop;
use crate::probe::Probe;
use crate::resolve::{Endpoint, Source};
use crate::select::{Choice, LocationSelection, RoleState};

fn ip(i: u8) -> IpAddr {
    IpAddr::from([198, 18, 0, i])
}

/// Eight PoPs of one address each, PoP `i` answering in `i` ms.
fn survey() -> Survey {
    let pops = (1..=8)
        .map(|i| {
            let pop = Pop {
                country: "DE".into(),
                city: format!("City {i}").into(),
                provider: "AWS".into(),
                latitude: 50.0,
                longitude: 8.0,
                fqdns: vec![],
            };
            let endpoint = Endpoint {
                fqdn: format!("pop-{i}.test").into(),
                ip: ip(i),
                source: Source::Catalog,
            };
            (pop, vec![endpoint])
        })
        .collect();
    let probes: Probes = (1..=8)
        .map(|i| {
            let rtt = Duration::from_millis(u64::from(i));
            let probe = Probe {
                sent: 3,
                received: 3,
                rtts: vec![rtt; 3].into(),
                error: None,
            };
            (ip(i), probe)
        })
        .collect();
    Survey {
        pops,
        answers: HashMap::new(),
        probes: Some(probes.into()),
    }
}

fn chose(at: u8) -> Selection {
    let choice = Choice {
        pop: survey().pops[usize::from(at) - 1].0.id(),
        fqdn: format!("pop-{at}.test"),
        ip: ip(at),
        score: None,
        rtt_ms: None,
        since: String::new(),
        since_unix: 0,
    };
    let mut selection = Selection::default();
    selection.locations.insert(
        "chicago".into(),
        LocationSelection {
            primary: RoleState {
                choice: Some(choice),
                ..RoleState::default()
            },
            ..LocationSelection::default()
        },
    );
    selection
}

#[test]
fn the_contenders_are_each_locations_best_five_and_every_chosen_endpoint() {
    let site = Site {
        latitude: 41.88,
        longitude: -87.63,
    };
    let surveyed = survey();
    let ranking = rank(site, surveyed.pops, surveyed.probes.clone(), vec![]);
    let rankings: Rankings = vec![("chicago".into(), ranking)];
    let mut expected: HashSet<IpAddr> = (1..=5).map(ip).collect();
    assert_eq!(
        probed_every_round(&rankings, &Selection::default()),
        expected
    );
    expected.insert(ip(8));
    assert_eq!(
        probed_every_round(&rankings, &chose(8)),
        expected,
        "the chosen PoP, whatever its rank"
    );
}

#[test]
fn a_round_of_contenders_carries_the_others_over_from_the_last_round() {
    let before = survey();
    let mut now = survey();
    let probes = Arc::make_mut(now.probes.as_mut().expect("probes"));
    probes.retain(|addr, _| *addr == ip(1));
    probes.insert(ip(1), Probe::default());
    let carried = carry_over(&mut now, Some(&before));
    assert_eq!(carried, (2..=8).map(ip).collect::<HashSet<_>>());
    let probes = now.probes.expect("probes");
    assert_eq!(
        probes[&ip(1)],
        Probe::default(),
        "this round's result stands"
    );
    assert_eq!(probes[&ip(8)], before.probes.expect("probes")[&ip(8)]);
    assert!(
        probes.keys().copied().eq((1..=8).map(ip)),
        "in the order of the endpoints, as the rank core reads them: {:?}",
        probes.keys().collect::<Vec<_>>()
    );
}
