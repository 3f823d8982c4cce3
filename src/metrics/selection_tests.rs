use super::*;
use crate::location::Site;
use crate::metrics::fixtures::{chosen, exposition, sample, survey};
use crate::rank::rank;

fn pop_labels<'a>(location: &'a str, pop: &'a str) -> [(&'a str, &'a str); 2] {
    [("location", location), ("pop", pop)]
}

#[test]
fn rankings_export_every_pop_and_drop_departed_ones() {
    let c = SelectionCollector::new(0).unwrap();
    let mut surveyed = survey(&["Frankfurt", "Munich"]);
    let munich = surveyed.pops[1].1[0].ip;
    if let Some(probes) = &mut surveyed.probes {
        let p = std::sync::Arc::make_mut(probes).get_mut(&munich).unwrap();
        p.received = 0;
        p.rtts = std::sync::Arc::from([]);
    }
    let site = Site {
        latitude: 50.0,
        longitude: 9.0,
    };
    let ranking = rank(site, surveyed.pops.clone(), surveyed.probes.clone(), vec![]);
    c.observe_rankings(&[("frankfurt".into(), ranking)], &Selection::default());
    let text = exposition(c.clone());
    let frankfurt = pop_labels("frankfurt", "DE/Frankfurt/AWS");
    let munich = pop_labels("frankfurt", "DE/Munich/AWS");
    assert_eq!(sample(&text, "popsel_pop_rank", &frankfurt), Some(1.0));
    assert_eq!(sample(&text, "popsel_pop_rank", &munich), Some(2.0));
    let meters = sample(&text, "popsel_pop_distance_meters", &munich).unwrap();
    assert!((71_000.0..72_000.0).contains(&meters), "{meters}");
    let seconds = sample(&text, "popsel_pop_score_seconds", &frankfurt).unwrap();
    assert!(
        (0.004..0.2).contains(&seconds),
        "a score in seconds: {seconds}"
    );
    assert_eq!(
        sample(&text, "popsel_pop_score_seconds", &munich),
        None,
        "no score for an unreachable PoP on a latency basis\n{text}"
    );

    let ranking = rank(site, surveyed.pops[..1].to_vec(), None, vec![]);
    c.observe_rankings(&[("frankfurt".into(), ranking)], &Selection::default());
    let text = exposition(c.clone());
    assert!(!text.contains("Munich"), "{text}");
    assert!(
        !text.contains("popsel_pop_score_seconds{"),
        "no score on a distance basis (one unit): {text}"
    );
    assert!(sample(&text, "popsel_pop_distance_meters", &frankfurt).is_some());
}

#[test]
fn rankings_export_each_locations_best_pops_and_its_chosen_ones() {
    let cities: Vec<String> = (0..20).map(|i| format!("City{i:02}")).collect();
    let cities: Vec<&str> = cities.iter().map(String::as_str).collect();
    let mut surveyed = survey(&cities);
    // Distances differ (the fixture puts every PoP at one place): City00 nearest.
    for (i, (pop, _)) in surveyed.pops.iter_mut().enumerate() {
        pop.longitude = 8.0 + i as f64;
    }
    let site = Site {
        latitude: 50.0,
        longitude: 8.0,
    };
    let ranking = rank(site, surveyed.pops.clone(), None, vec![]);
    // The chosen PoPs: City00 (rank 1) and, kept by the anti-flap rule, City19 (rank 20).
    let mut two = surveyed.clone();
    two.pops = vec![surveyed.pops[0].clone(), surveyed.pops[19].clone()];
    let (selection, _) = chosen("here", &two);
    let c = SelectionCollector::new(5).unwrap();
    c.observe_rankings(&[("here".into(), ranking.clone())], &selection);
    let text = exposition(c.clone());
    let ranked: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("popsel_pop_rank{"))
        .collect();
    assert_eq!(
        ranked.len(),
        6,
        "the best 5 and the chosen secondary: {text}"
    );
    for city in ["City00", "City04", "City19"] {
        assert!(
            sample(
                &text,
                "popsel_pop_rank",
                &pop_labels("here", &format!("DE/{city}/AWS"))
            )
            .is_some(),
            "{city}: {text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "popsel_pop_rank",
            &pop_labels("here", "DE/City19/AWS")
        ),
        Some(20.0)
    );
    assert!(!text.contains("City05"), "{text}");

    let every = SelectionCollector::new(0).unwrap();
    every.observe_rankings(&[("here".into(), ranking)], &selection);
    let text = exposition(every.clone());
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("popsel_pop_rank{"))
            .count(),
        20,
        "ranked_pops = 0: every PoP"
    );
}

#[test]
fn choices_are_info_series_and_changes_accumulate() {
    let c = SelectionCollector::new(5).unwrap();
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
