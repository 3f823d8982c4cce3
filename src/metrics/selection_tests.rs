use super::*;
use crate::location::Site;
use crate::metrics::fixtures::{chosen, exposition, sample, survey};
use crate::rank::rank;

fn pop_labels<'a>(location: &'a str, pop: &'a str) -> [(&'a str, &'a str); 2] {
    [("location", location), ("pop", pop)]
}

#[test]
fn rankings_export_every_pop_and_drop_departed_ones() {
    let c = SelectionCollector::new().unwrap();
    let mut surveyed = survey(&["Frankfurt", "Munich"]);
    let munich = surveyed.pops[1].1[0].ip;
    if let Some(probes) = &mut surveyed.probes {
        let p = probes.get_mut(&munich).unwrap();
        p.received = 0;
        p.rtts = std::sync::Arc::from([]);
    }
    let site = Site {
        latitude: 50.0,
        longitude: 9.0,
    };
    let ranking = rank(
        site,
        surveyed.pops.clone(),
        surveyed.probes.as_ref(),
        vec![],
    );
    c.observe_rankings(&[("frankfurt".into(), ranking)]);
    let text = exposition(c.clone());
    let frankfurt = pop_labels("frankfurt", "DE/Frankfurt/AWS");
    let munich = pop_labels("frankfurt", "DE/Munich/AWS");
    assert_eq!(sample(&text, "popsel_pop_rank", &frankfurt), Some(1.0));
    assert_eq!(sample(&text, "popsel_pop_rank", &munich), Some(2.0));
    let meters = sample(&text, "popsel_pop_distance_meters", &munich).unwrap();
    assert!((71_000.0..72_000.0).contains(&meters), "{meters}");
    assert!(sample(&text, "popsel_pop_score", &frankfurt).is_some());
    assert_eq!(
        sample(&text, "popsel_pop_score", &munich),
        None,
        "no score for an unreachable PoP on a latency basis\n{text}"
    );

    let ranking = rank(site, surveyed.pops[..1].to_vec(), None, vec![]);
    c.observe_rankings(&[("frankfurt".into(), ranking)]);
    let text = exposition(c.clone());
    assert!(!text.contains("Munich"), "{text}");
    assert_eq!(
        sample(&text, "popsel_pop_score", &frankfurt).map(|km| km * 1000.0),
        sample(&text, "popsel_pop_distance_meters", &frankfurt),
        "km on a distance basis"
    );
}

#[test]
fn choices_are_info_series_and_changes_accumulate() {
    let c = SelectionCollector::new().unwrap();
    let (selection, changes) = chosen("frankfurt", &survey(&["Frankfurt", "Munich"]));
    c.observe_selection(&selection, &changes);
    c.observe_selection(&selection, &changes[..1]);
    let text = exposition(c.clone());
    let primary = [
        ("location", "frankfurt"),
        ("role", "primary"),
        ("pop", "DE/Frankfurt/AWS"),
        ("fqdn", "frankfurt.pops.test"),
        ("ip", "198.18.0.1"),
    ];
    assert_eq!(
        sample(&text, "popsel_selected_pop_info", &primary),
        Some(1.0),
        "{text}"
    );
    let changed = |role| {
        sample(
            &text,
            "popsel_selection_changes_total",
            &[("location", "frankfurt"), ("role", role)],
        )
    };
    assert_eq!(
        (changed("primary"), changed("secondary")),
        (Some(2.0), Some(1.0))
    );

    let (selection, _) = chosen("frankfurt", &survey(&["Munich"]));
    c.observe_selection(&selection, &[]);
    let text = exposition(c.clone());
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("popsel_selected_pop_info{"))
            .count(),
        1,
        "the previous choices are gone\n{text}"
    );
}
