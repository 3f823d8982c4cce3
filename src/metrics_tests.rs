use std::collections::BTreeSet;

use super::fixtures::{chosen, described, survey, typed_families};
use super::*;
use crate::atmos::{ConnectorState, TunnelState};
use crate::edge::charon::SaStatus;
use crate::location::Role;
use crate::location::Site;
use crate::rank::rank;

/// Every stage reports once, as in a first cycle under `--no-probe`.
fn observe_all_but_probes(m: &Metrics) {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let surveyed = survey(&["Frankfurt", "Munich"]);
    let catalog = Catalog {
        pops: surveyed.pops.iter().map(|(p, _)| p.clone()).collect(),
        skipped: vec![],
    };
    m.observe_catalog(&catalog, at);
    let site = Site {
        latitude: 50.1,
        longitude: 8.7,
    };
    let ranking = rank(site, surveyed.pops.clone(), None, vec![]);
    let (selection, changes) = chosen("frankfurt", &surveyed);
    m.observe_rankings(&[("frankfurt".into(), ranking)], &selection);
    m.observe_selection(&selection, &changes);
    m.observe_tunnels(&[TunnelStatusRow {
        location: "frankfurt".into(),
        tunnel: "Frankfurt IPSec1".into(),
        state: TunnelState::Disconnected,
    }]);
    m.observe_connectors(&[ConnectorStatusRow {
        connector: "conn-1".into(),
        state: ConnectorState::Pending,
    }]);
    m.observe_ipsec(&[SaStatus {
        location: "frankfurt".into(),
        role: Role::Primary,
        tunnel: "Frankfurt IPSec1".into(),
        pop: "DE/Frankfurt/AWS".into(),
        up: true,
        ike_up: true,
        child_id: Some(1),
        bytes_in: Some(10),
        bytes_out: Some(20),
        established_secs: Some(3),
    }]);
    m.observe("/api/v1/tunnels", "GET", "200", Duration::from_millis(12));
    for stage in Stage::ALL {
        m.stage_ran(stage, true, at);
    }
    m.schedule(&crate::schedule::Schedule::default());
}

fn names<'a>(lists: &[&[&'a str]]) -> BTreeSet<&'a str> {
    lists.iter().flat_map(|l| l.iter().copied()).collect()
}

#[test]
fn the_family_lists_are_exactly_what_the_exposition_types() {
    let m = Metrics::with_series(SeriesOptions {
        rtt_histogram: true,
        endpoints: true,
        ranked_pops: 5,
    });
    let process: &[&str] = if cfg!(target_os = "linux") {
        &PROCESS_FAMILIES
    } else {
        &[]
    };
    observe_all_but_probes(&m);
    let unprobed = &names(&[&FAMILIES, process]) - &names(&[&PROBE_FAMILIES]);
    assert_eq!(typed_families(&m.encode()), unprobed);
    m.observe_probes(&survey(&["Frankfurt"]), &HashSet::new());
    m.probe_socket(true);
    // A ranking by latency has a score.
    let surveyed = survey(&["Frankfurt", "Munich"]);
    let site = Site {
        latitude: 50.1,
        longitude: 8.7,
    };
    let ranking = rank(site, surveyed.pops.clone(), surveyed.probes.clone(), vec![]);
    let (selection, _) = chosen("frankfurt", &surveyed);
    m.observe_rankings(&[("frankfurt".into(), ranking)], &selection);
    assert_eq!(
        typed_families(&m.encode()),
        names(&[&FAMILIES, process]),
        "a probe round (with every option on) fills PROBE_FAMILIES"
    );
}

#[test]
fn the_opt_in_families_stay_out_by_default() {
    let m = Metrics::new();
    m.observe_probes(&survey(&["Frankfurt"]), &HashSet::new());
    let text = m.encode();
    let typed = typed_families(&text);
    for family in OPT_IN_FAMILIES {
        assert!(!typed.contains(family), "{family} without its option");
    }
    assert!(OPT_IN_FAMILIES.iter().all(|f| PROBE_FAMILIES.contains(f)));
}

#[test]
fn the_family_lists_name_each_family_once() {
    let all = [&FAMILIES[..], &PROCESS_FAMILIES].concat();
    assert_eq!(names(&[&all]).len(), all.len(), "{all:?}");
    assert!(FAMILIES.iter().all(|f| f.starts_with("popsel_")));
    assert!(PROBE_FAMILIES.iter().all(|f| FAMILIES.contains(f)));
}

#[test]
fn every_collector_declares_the_families_it_describes() {
    let declared = |c: &dyn Collector| -> Vec<String> {
        described(c).into_iter().map(str::to_owned).collect()
    };
    assert_eq!(
        declared(&ProbeCollector::new(SeriesOptions::default()).unwrap()),
        ProbeCollector::FAMILIES
    );
    assert_eq!(
        declared(&SelectionCollector::new(5).unwrap()),
        SelectionCollector::FAMILIES
    );
    assert_eq!(
        declared(&StatusCollector::new().unwrap()),
        StatusCollector::FAMILIES
    );
    assert_eq!(
        declared(&ApiCollector::new().unwrap()),
        ApiCollector::FAMILIES
    );
    assert_eq!(
        declared(&CatalogCollector::new().unwrap()),
        CatalogCollector::FAMILIES
    );
    assert_eq!(
        declared(&StageCollector::new().unwrap()),
        StageCollector::FAMILIES
    );
    let build = declared(&BuildCollector::new().unwrap());
    assert_eq!(build[..1], BuildCollector::FAMILIES);
    #[cfg(target_os = "linux")]
    assert_eq!(build[1..], BuildCollector::PROCESS_FAMILIES);
}

/// The names are an interface (alert rules, dashboards, the README): a rename must fail here,
/// not only change the list it is read from.
#[test]
fn the_exported_names_are_the_documented_ones() {
    assert_eq!(
        FAMILIES,
        [
            "popsel_pop_rtt_seconds",
            "popsel_pop_loss_ratio",
            "popsel_pop_up",
            "popsel_probe_socket_up",
            "popsel_probe_requests_total",
            "popsel_probe_responses_total",
            "popsel_probe_round_requests",
            "popsel_endpoint_rtt_seconds",
            "popsel_endpoint_loss_ratio",
            "popsel_endpoint_up",
            "popsel_probe_rtt_seconds",
            "popsel_pop_distance_meters",
            "popsel_pop_rank",
            "popsel_pop_score_seconds",
            "popsel_selected_pop_info",
            "popsel_selection_changes_total",
            "popsel_tunnel_status",
            "popsel_tunnel_up",
            "popsel_connector_status",
            "popsel_ipsec_sa_up",
            "popsel_ipsec_ike_up",
            "popsel_ipsec_bytes_total",
            "popsel_ipsec_sa_established_seconds",
            "popsel_api_up",
            "popsel_api_requests_total",
            "popsel_api_request_duration_seconds",
            "popsel_api_throttled",
            "popsel_api_held_back_total",
            "popsel_catalog_pops",
            "popsel_catalog_skipped_entries",
            "popsel_catalog_last_update_timestamp_seconds",
            "popsel_stage_runs_total",
            "popsel_stage_failures_total",
            "popsel_stage_last_success_timestamp_seconds",
            "popsel_stage_interval_seconds",
            "popsel_build_info",
        ]
    );
}
