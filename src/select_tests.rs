//! Selection with a fake clock and recorded rankings.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::catalog::{ListedFqdn, Name, Pop};
use crate::location::Site;
use crate::probe::{Probe, Probes};
use crate::rank::rank;
use crate::resolve::{Endpoint, Source};
use crate::timestamp::rfc3339;

/// A PoP of a recorded ranking: city, provider, longitude (distance), RTT in ms (None: silent),
/// lost probes out of 5. Entries of the same city and provider are one PoP's endpoints.
#[derive(Clone, Copy)]
struct P(&'static str, &'static str, f64, Option<f64>, u32);

fn ranking(pops: &[P]) -> Ranking {
    let mut input: Vec<(Pop, Vec<Endpoint>)> = Vec::new();
    let mut probes = Probes::default();
    for (i, P(city, provider, lon, rtt, lost)) in pops.iter().enumerate() {
        let ip: IpAddr = format!("198.18.0.{}", i + 1).parse().unwrap();
        let same_pop = input
            .iter()
            .position(|(p, _)| *p.city == **city && *p.provider == **provider);
        let fqdn: Name = format!(
            "{}-{}{}.pops.test",
            city.to_lowercase(),
            provider.to_lowercase(),
            if same_pop.is_some() { "-2" } else { "" }
        )
        .into();
        let endpoint = Endpoint {
            fqdn: fqdn.clone(),
            ip,
            source: Source::Catalog,
        };
        let listed = ListedFqdn {
            name: fqdn,
            ips: [ip].into(),
        };
        match same_pop {
            Some(at) => {
                input[at].0.fqdns.push(listed);
                input[at].1.push(endpoint);
            }
            None => input.push((
                Pop {
                    country: "XX".into(),
                    city: (*city).into(),
                    provider: (*provider).into(),
                    latitude: 0.0,
                    longitude: *lon,
                    fqdns: vec![listed],
                },
                vec![endpoint],
            )),
        }
        let rtts: Vec<Duration> = match rtt {
            Some(ms) => (0..5 - lost)
                .map(|_| Duration::from_secs_f64(ms / 1000.0))
                .collect(),
            None => vec![],
        };
        probes.insert(
            ip,
            Probe {
                sent: 5,
                received: rtts.len() as u32,
                rtts: rtts.into(),
                error: None,
            },
        );
    }
    rank(
        Site {
            latitude: 0.0,
            longitude: 0.0,
        },
        input,
        Some(Arc::new(probes)),
        vec![],
    )
}

fn settings() -> SelectionSettings {
    SelectionSettings::default()
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// Runs cycles of recorded rankings from an empty selection; returns the selection after each.
fn run(cycles: &[Vec<P>]) -> Vec<(LocationSelection, Vec<Change>)> {
    let mut prev = LocationSelection::default();
    let mut out = Vec::new();
    for (i, pops) in cycles.iter().enumerate() {
        let (next, changes) = select_location(
            "chicago",
            &prev,
            &ranking(pops),
            &settings(),
            true,
            t(30 * i as u64),
        );
        prev = next.clone();
        out.push((next, changes));
    }
    out
}

fn city(s: &LocationSelection, role: Role) -> &str {
    s.role(role)
        .choice
        .as_ref()
        .map_or("-", |c| c.pop.city.as_str())
}

const A: P = P("Alpha", "AWS", 1.0, Some(40.0), 0);
const B: P = P("Beta", "GCP", 2.0, Some(60.0), 0);
const C: P = P("Gamma", "Azure", 3.0, Some(80.0), 0);

#[test]
fn first_cycle_picks_the_best_and_a_secondary_in_another_city() {
    let a_twin = P("Alpha", "GCP", 1.0, Some(41.0), 0);
    let r = run(&[vec![A, a_twin, B, C]]);
    let (s, changes) = &r[0];
    assert_eq!(
        (city(s, Role::Primary), city(s, Role::Secondary)),
        ("Alpha", "Beta")
    );
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].reason, "first choice");
    let p = s.primary.choice.as_ref().unwrap();
    assert_eq!(
        (p.fqdn.as_str(), p.ip.to_string().as_str()),
        ("alpha-aws.pops.test", "198.18.0.1")
    );
    assert_eq!(p.since, "2027-01-15T08:00:00Z");
}

#[test]
fn a_challenger_must_win_enough_cycles_in_a_row() {
    // Beta becomes 25 ms (>10 ms) and 38% (>20%) faster than Alpha.
    let faster_b = P("Beta", "GCP", 2.0, Some(15.0), 0);
    let r = run(&[
        vec![A, B, C],
        vec![A, faster_b, C],
        vec![A, faster_b, C],
        vec![A, faster_b, C],
    ]);
    assert_eq!(city(&r[1].0, Role::Primary), "Alpha");
    assert_eq!(r[1].0.primary.evidence.wins, 1);
    assert_eq!(city(&r[2].0, Role::Primary), "Alpha");
    assert_eq!(r[2].0.primary.evidence.wins, 2);
    assert_eq!(
        city(&r[3].0, Role::Primary),
        "Beta",
        "third consecutive win switches"
    );
    let change = r[3].1.iter().find(|c| c.role == Role::Primary).unwrap();
    assert!(
        change.reason.contains("beat XX/Alpha/AWS") && change.reason.contains("for 3 cycles"),
        "{}",
        change.reason
    );
    assert_eq!(
        r[3].0.primary.choice.as_ref().unwrap().since,
        rfc3339(t(90))
    );
    // The secondary moves off Beta's city at once, to the next best elsewhere.
    assert_eq!(city(&r[3].0, Role::Secondary), "Alpha");
}

#[test]
fn a_broken_streak_starts_over() {
    let faster_b = P("Beta", "GCP", 2.0, Some(15.0), 0);
    let r = run(&[
        vec![A, B, C],
        vec![A, faster_b, C],
        vec![A, faster_b, C],
        vec![A, B, C],
        vec![A, faster_b, C],
        vec![A, faster_b, C],
    ]);
    assert!(r.iter().all(|(s, _)| city(s, Role::Primary) == "Alpha"));
    assert_eq!(r[3].0.primary.evidence, Evidence::default());
    assert_eq!(r[5].0.primary.evidence.wins, 2);
}

#[test]
fn both_thresholds_must_be_met() {
    // 15 ms faster but only 7.5% faster: never switches.
    let slow_a = P("Alpha", "AWS", 1.0, Some(200.0), 0);
    let b = P("Beta", "GCP", 2.0, Some(185.0), 0);
    let first = P("Alpha", "AWS", 1.0, Some(150.0), 0);
    let cycles: Vec<Vec<P>> = std::iter::once(vec![first, b])
        .chain(std::iter::repeat_n(vec![slow_a, b], 6))
        .collect();
    let r = run(&cycles);
    assert!(r.iter().all(|(s, _)| city(s, Role::Primary) == "Alpha"));
    // 40% faster but only 4 ms: never switches either.
    let fast_a = P("Alpha", "AWS", 1.0, Some(10.0), 0);
    let fast_b = P("Beta", "GCP", 2.0, Some(6.0), 0);
    let cycles: Vec<Vec<P>> = std::iter::repeat_n(vec![fast_a, fast_b], 6).collect();
    let r = run(&[vec![fast_a, B]]
        .into_iter()
        .chain(cycles)
        .collect::<Vec<_>>());
    assert!(r.iter().all(|(s, _)| city(s, Role::Primary) == "Alpha"));
}

#[test]
fn an_unreachable_choice_is_replaced_at_once() {
    let dead_a = P("Alpha", "AWS", 1.0, None, 5);
    let r = run(&[vec![A, B, C], vec![dead_a, B, C]]);
    assert_eq!(
        (city(&r[1].0, Role::Primary), city(&r[1].0, Role::Secondary)),
        ("Beta", "Gamma")
    );
    let change = &r[1].1[0];
    assert_eq!(
        (change.role, change.reason.as_str()),
        (
            Role::Primary,
            "the current PoP stopped answering; the secondary XX/Beta/GCP takes over"
        )
    );
    assert_eq!(&*change.old.as_ref().unwrap().pop.city, "Alpha");
}

#[test]
fn the_secondary_takes_over_from_a_dead_primary_even_when_another_pop_is_better() {
    // Make before break: the secondary's IKE SA is up; a PoP nobody talked to is not.
    let dead_a = P("Alpha", "AWS", 1.0, None, 5);
    let delta = P("Delta", "AWS", 4.0, Some(30.0), 0);
    let r = run(&[
        vec![A, B, C],
        vec![dead_a, B, C, delta],
        vec![dead_a, B, C, delta],
        vec![dead_a, B, C, delta],
        vec![dead_a, B, C, delta],
    ]);
    let roles = |s: &LocationSelection| {
        (
            city(s, Role::Primary).to_owned(),
            city(s, Role::Secondary).to_owned(),
        )
    };
    assert_eq!(roles(&r[0].0), ("Alpha".into(), "Beta".into()));
    assert_eq!(roles(&r[1].0), ("Beta".into(), "Delta".into()));
    let reasons: Vec<(Role, &str)> = r[1].1.iter().map(|c| (c.role, c.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (
                Role::Primary,
                "the current PoP stopped answering; the secondary XX/Beta/GCP takes over"
            ),
            (Role::Secondary, "the secondary became the primary"),
        ]
    );
    // The better PoP still has to win the anti-flap rounds to become the primary.
    assert_eq!(roles(&r[3].0).0, "Beta");
    assert_eq!(roles(&r[4].0).0, "Delta");
}

#[test]
fn a_dead_secondary_does_not_take_over() {
    let dead_a = P("Alpha", "AWS", 1.0, None, 5);
    let dead_b = P("Beta", "GCP", 2.0, None, 5);
    let r = run(&[vec![A, B, C], vec![dead_a, dead_b, C]]);
    assert_eq!(city(&r[1].0, Role::Primary), "Gamma");
    assert_eq!(r[1].1[0].reason, "the current PoP stopped answering");
}

#[test]
fn a_new_endpoint_of_the_chosen_pop_is_a_change_to_hand_off() {
    let a1 = P("Alpha", "AWS", 1.0, Some(40.0), 0);
    let a2 = P("Alpha", "AWS", 1.0, Some(45.0), 0);
    let a1_silent = P("Alpha", "AWS", 1.0, None, 5);
    let r = run(&[
        vec![a1, a2, B, C],
        vec![a1_silent, a2, B, C],
        vec![a1_silent, a2, B, C],
    ]);
    let ip = |s: &LocationSelection| s.primary.choice.as_ref().unwrap().ip.to_string();
    assert_eq!(ip(&r[0].0), "198.18.0.1");
    assert_eq!(
        ip(&r[1].0),
        "198.18.0.2",
        "the PoP is kept, its endpoint is not"
    );
    let [change] = &r[1].1[..] else {
        panic!("one change: {:?}", r[1].1)
    };
    assert_eq!(change.role, Role::Primary);
    assert_eq!(
        change.old.as_ref().unwrap().pop,
        change.new.as_ref().unwrap().pop
    );
    assert_eq!(change.new.as_ref().unwrap().fqdn, "alpha-aws-2.pops.test");
    assert!(
        change
            .reason
            .starts_with("198.18.0.1 (alpha-aws.pops.test) stopped answering"),
        "{}",
        change.reason
    );
    assert!(r[2].1.is_empty(), "handed off once: {:?}", r[2].1);
}

#[test]
fn a_choice_that_leaves_the_catalogue_is_replaced_at_once() {
    let r = run(&[vec![A, B, C], vec![B, C]]);
    assert_eq!(city(&r[1].0, Role::Primary), "Beta");
    assert!(r[1].1[0].reason.contains("left the catalogue"));
}

#[test]
fn a_transient_loss_does_not_flap() {
    // One cycle with 1 of 5 probes lost (+100 ms): the challenger wins once, no more.
    let lossy_a = P("Alpha", "AWS", 1.0, Some(40.0), 1);
    let r = run(&[
        vec![A, B, C],
        vec![lossy_a, B, C],
        vec![A, B, C],
        vec![lossy_a, B, C],
        vec![A, B, C],
    ]);
    assert!(r.iter().all(|(s, _)| city(s, Role::Primary) == "Alpha"));
    assert!(r.iter().skip(1).all(|(_, changes)| changes.is_empty()));
}

#[test]
fn a_persistent_loss_is_left_after_the_cycles() {
    let lossy_a = P("Alpha", "AWS", 1.0, Some(40.0), 1);
    let r = run(&[
        vec![A, B, C],
        vec![lossy_a, B, C],
        vec![lossy_a, B, C],
        vec![lossy_a, B, C],
    ]);
    assert_eq!(city(&r[2].0, Role::Primary), "Alpha");
    assert_eq!(city(&r[3].0, Role::Primary), "Beta");
}

#[test]
fn a_host_that_hears_nothing_switches_nothing() {
    let silent: Vec<P> = [A, B, C]
        .iter()
        .map(|p| P(p.0, p.1, p.2, None, 5))
        .collect();
    let r = run(&[vec![A, B, C], silent.clone(), silent]);
    assert!(
        r.iter()
            .all(|(s, _)| city(s, Role::Primary) == "Alpha" && city(s, Role::Secondary) == "Beta")
    );
    assert!(r[1].1.is_empty() && r[2].1.is_empty());
    assert!(r[1].0.primary.evidence.note.contains("holding"));
}

#[test]
fn provider_preferences_apply_within_the_margin() {
    let mut s = settings();
    s.providers = vec!["GCP".into()];
    let a = P("Alpha", "AWS", 1.0, Some(40.0), 0);
    let b = P("Beta", "GCP", 2.0, Some(43.0), 0);
    let c = P("Gamma", "GCP", 3.0, Some(50.0), 0);
    let (sel, _) = select_location(
        "x",
        &LocationSelection::default(),
        &ranking(&[a, b, c]),
        &s,
        true,
        t(0),
    );
    assert_eq!(
        city(&sel, Role::Primary),
        "Beta",
        "GCP within 5 ms of the best is preferred"
    );
    // The secondary prefers another provider than the primary's within the margin: Alpha (AWS)
    // over Gamma (GCP), although Gamma is the preferred provider.
    assert_eq!(city(&sel, Role::Secondary), "Alpha");
    let far_b = P("Beta", "GCP", 2.0, Some(50.0), 0);
    let (sel, _) = select_location(
        "x",
        &LocationSelection::default(),
        &ranking(&[a, far_b, c]),
        &s,
        true,
        t(0),
    );
    assert_eq!(
        city(&sel, Role::Primary),
        "Alpha",
        "beyond the margin latency wins"
    );
}

#[test]
fn provider_preferences_apply_by_distance_among_the_same_city() {
    let mut s = settings();
    s.providers = vec!["GCP".into()];
    // Not probed: a distance basis. Two providers in Alpha, equally near.
    let r = rank(
        Site {
            latitude: 0.0,
            longitude: 0.0,
        },
        ranking(&[A, B, C])
            .pops
            .into_iter()
            .map(|p| (p.pop, p.endpoints))
            .chain(std::iter::once((
                Pop {
                    provider: "GCP".into(),
                    ..ranking(&[A]).pops[0].pop.clone()
                },
                vec![Endpoint {
                    fqdn: "alpha-gcp.pops.test".into(),
                    ip: "198.18.9.9".parse().unwrap(),
                    source: Source::Catalog,
                }],
            )))
            .collect(),
        None,
        vec![],
    );
    let (sel, _) = select_location("x", &LocationSelection::default(), &r, &s, false, t(0));
    assert_eq!(
        sel.primary.choice.as_ref().map(|c| c.pop.provider.as_str()),
        Some("GCP")
    );
    assert_eq!(city(&sel, Role::Primary), "Alpha");
}

#[test]
fn never_both_in_one_city() {
    // The only other PoPs are in the primary's city: no secondary rather than a same-city one.
    let a2 = P("Alpha", "GCP", 1.0, Some(41.0), 0);
    let r = run(&[vec![A, a2]]);
    assert_eq!(
        (city(&r[0].0, Role::Primary), city(&r[0].0, Role::Secondary)),
        ("Alpha", "-")
    );
}

#[test]
fn a_selection_survives_being_written_and_read() {
    let r = run(&[vec![A, B, C]]);
    let mut sel = Selection {
        version: 1,
        ..Selection::default()
    };
    sel.locations.insert("chicago".into(), r[0].0.clone());
    let text = serde_json::to_string(&sel).unwrap();
    assert_eq!(serde_json::from_str::<Selection>(&text).unwrap(), sel);
}
