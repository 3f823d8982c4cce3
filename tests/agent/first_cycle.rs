//! After the first cycle, every metric family holds the expected values.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use popsel::atmos::{Connector, Tunnel};
use popsel::metrics::{FAMILIES, IPSEC_FAMILIES, PROBE_FAMILIES, PROCESS_FAMILIES};

use crate::emulator::*;
use crate::exposition::*;
use crate::http::*;
use crate::process::AgentProc;
use crate::site::*;

/// The endpoint labels the agent may use: path templates, never an object id.
const ENDPOINT_TEMPLATES: [&str; 7] = [
    "/api/v1/pops/ipsec",
    "/api/v1/tunnels",
    "/api/v1/tunnels/{id}",
    "/api/v1/tunnels/{id}/status",
    "/api/v1/connectors",
    "/api/v1/connectors/{id}",
    "/api/v1/connectors/{id}/status",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_cycle_exports_every_metric_family_with_the_expected_values() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let started = unix_now();
    let (agent, base) = site.start_agent(&[]).await;

    let s = agent.first_cycle(&base).await;

    // Every family has its TYPE line, except the ones only a probe round fills and those only
    // a hand-off to charon fills (no vici_socket here).
    for family in FAMILIES.iter().chain(&PROCESS_FAMILIES) {
        if PROBE_FAMILIES.contains(family) || IPSEC_FAMILIES.contains(family) {
            assert!(
                !s.has_type_line(family) && s.series(family, &[]).is_empty(),
                "{family} has series although nothing was probed (--no-probe) or handed to charon"
            );
        } else {
            assert!(s.has_type_line(family), "no `# TYPE {family}` line");
        }
    }
    assert_eq!(
        s.value(
            "popsel_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(s.value("process_resident_memory_bytes", &[]) > Some(0.0));
    assert!(s.value("process_start_time_seconds", &[]) > Some(0.0));

    // The catalogue.
    assert_eq!(s.value("popsel_catalog_pops", &[]), Some(52.0));
    assert_eq!(s.value("popsel_catalog_skipped_entries", &[]), Some(0.0));
    let fetched = s
        .value("popsel_catalog_last_update_timestamp_seconds", &[])
        .expect("catalogue timestamp");
    assert!(
        fetched >= started - 1.0 && fetched <= unix_now() + 1.0,
        "catalogue fetched at {fetched}, the agent started at {started}"
    );

    // The selection: one series per location and role.
    let selected = |loc: &str, role: &str| -> Sample {
        let found = s.series(
            "popsel_selected_pop_info",
            &[("location", loc), ("role", role)],
        );
        assert_eq!(found.len(), 1, "{loc} {role}: {found:?}");
        assert_eq!(found[0].value, 1.0);
        found[0].clone()
    };
    let chi_primary = selected("chicago", "primary");
    assert_eq!(chi_primary.label("pop"), "US/Chicago, Illinois/GCP");
    assert!(chi_primary.label("fqdn").starts_with("ipsec-us-chi-gcp-"));
    assert!(chi_primary.label("ip").starts_with("198.18.3."));
    let chi_secondary = selected("chicago", "secondary");
    assert!(
        !chi_secondary
            .label("pop")
            .starts_with("US/Chicago, Illinois/"),
        "the secondary shares the primary's city: {chi_secondary:?}"
    );
    let fra_primary = selected("frankfurt", "primary");
    assert!(
        fra_primary.label("pop").starts_with("DE/Frankfurt/"),
        "{fra_primary:?}"
    );
    assert!(fra_primary.label("fqdn").starts_with("ipsec-de-fra-"));
    let fra_secondary = selected("frankfurt", "secondary");
    assert!(
        !fra_secondary.label("pop").starts_with("DE/Frankfurt/"),
        "the secondary shares the primary's city: {fra_secondary:?}"
    );
    for loc in ["chicago", "frankfurt"] {
        for role in ["primary", "secondary"] {
            assert!(
                s.value(
                    "popsel_selection_changes_total",
                    &[("location", loc), ("role", role)]
                ) >= Some(1.0),
                "no selection change counted for {loc} {role}"
            );
        }
    }

    // Ranking and distance, per location: the best 5 PoPs (`[metrics] ranked_pops`) and the
    // chosen ones, rank 1 at distance 0, ranks follow distance; on a distance basis no score
    // (popsel_pop_score_seconds has one unit, and only a latency ranking has it).
    for (loc, best_prefix) in [
        ("chicago", "US/Chicago, Illinois/GCP"),
        ("frankfurt", "DE/Frankfurt/"),
    ] {
        let ranks = s.series("popsel_pop_rank", &[("location", loc)]);
        let distances = s.series("popsel_pop_distance_meters", &[("location", loc)]);
        assert!(
            (5..=7).contains(&ranks.len()),
            "{loc}: rank series {ranks:?}"
        );
        assert_eq!(distances.len(), ranks.len(), "{loc}: distance series");
        let distance_of = |pop: &str| {
            s.value(
                "popsel_pop_distance_meters",
                &[("location", loc), ("pop", pop)],
            )
            .unwrap_or_else(|| panic!("{loc}: no distance for {pop}"))
        };
        let mut by_rank: Vec<(f64, String)> = ranks
            .iter()
            .map(|r| (r.value, r.label("pop").to_owned()))
            .collect();
        by_rank.sort_by(|a, b| a.0.total_cmp(&b.0));
        let best: Vec<f64> = by_rank.iter().map(|(r, _)| *r).take(5).collect();
        assert_eq!(best, [1.0, 2.0, 3.0, 4.0, 5.0], "{loc}: the best 5");
        assert!(
            by_rank[0].1.starts_with(best_prefix),
            "{loc}: rank 1 is {}",
            by_rank[0].1
        );
        assert_eq!(distance_of(&by_rank[0].1), 0.0);
        assert!(by_rank.iter().all(|(r, _)| (1.0..=52.0).contains(r)));
        let in_rank_order: Vec<f64> = by_rank.iter().map(|(_, p)| distance_of(p)).collect();
        assert!(
            in_rank_order.windows(2).all(|w| w[0] <= w[1]),
            "{loc}: ranks do not follow distance: {by_rank:?}"
        );
        for role in ["primary", "secondary"] {
            let chosen = selected(loc, role);
            assert!(
                s.value(
                    "popsel_pop_rank",
                    &[("location", loc), ("pop", chosen.label("pop"))]
                )
                .is_some(),
                "{loc}: the chosen {role} has no rank"
            );
        }
        assert!(
            s.series("popsel_pop_score_seconds", &[("location", loc)])
                .is_empty(),
            "{loc}: a score on a distance basis"
        );
    }
    // Chicago to Toronto is about 701 km: meters, not km.
    let chi_tor = s
        .value(
            "popsel_pop_distance_meters",
            &[("location", "chicago"), ("pop", "CA/Toronto, Ontario/AWS")],
        )
        .expect("Chicago to Toronto");
    assert!((6.9e5..7.1e5).contains(&chi_tor), "{chi_tor}");

    // Tunnel status: a state set per tunnel, exactly one state at 1 (new tunnels are
    // Disconnected), and tunnel_up agrees.
    assert_eq!(s.series("popsel_tunnel_status", &[]).len(), 9);
    for (loc, t) in TUNNELS {
        let states = s.series("popsel_tunnel_status", &[("location", loc), ("tunnel", t)]);
        let names: BTreeSet<&str> = states.iter().map(|x| x.label("state")).collect();
        assert_eq!(
            names,
            BTreeSet::from(["Connected", "Disconnected", "Unknown"]),
            "{t}"
        );
        assert_eq!(states.iter().filter(|x| x.value == 1.0).count(), 1, "{t}");
        assert!(states.iter().all(|x| x.value == 0.0 || x.value == 1.0));
        assert_eq!(
            s.value("popsel_tunnel_up", &[("location", loc), ("tunnel", t)]),
            Some(0.0)
        );
    }
    let connector = s.series("popsel_connector_status", &[("connector", CONNECTOR)]);
    assert_eq!(connector.len(), 8, "{connector:?}");
    assert_eq!(
        s.value(
            "popsel_connector_status",
            &[("connector", CONNECTOR), ("state", "Pending")]
        ),
        Some(1.0)
    );

    // API requests: path templates as endpoints, never an object id.
    assert_eq!(s.value("popsel_api_up", &[]), Some(1.0));
    let requests = s.series("popsel_api_requests_total", &[]);
    for r in &requests {
        assert!(
            ENDPOINT_TEMPLATES.contains(&r.label("endpoint")),
            "unexpected endpoint label: {r:?}"
        );
    }
    for (endpoint, method, code) in [
        ("/api/v1/pops/ipsec", "GET", "200"),
        ("/api/v1/tunnels", "GET", "200"),
        ("/api/v1/tunnels", "POST", "201"),
        ("/api/v1/tunnels/{id}/status", "GET", "200"),
        ("/api/v1/connectors", "GET", "200"),
        ("/api/v1/connectors/{id}/status", "GET", "200"),
    ] {
        let count = s.value(
            "popsel_api_requests_total",
            &[("endpoint", endpoint), ("method", method), ("code", code)],
        );
        assert!(count >= Some(1.0), "{method} {endpoint} {code}: {count:?}");
    }
    assert_eq!(
        s.value(
            "popsel_api_requests_total",
            &[
                ("endpoint", "/api/v1/tunnels"),
                ("method", "POST"),
                ("code", "201")
            ]
        ),
        Some(3.0),
        "one create per configured tunnel"
    );
    let ids: Vec<String> = sim
        .with_store(|st| {
            let mut ids: Vec<String> = st.list::<Tunnel>().into_iter().map(|t| t.id).collect();
            ids.extend(st.list::<Connector>().into_iter().map(|c| c.id));
            ids
        })
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 4);
    for id in &ids {
        assert!(!s.text.contains(id.as_str()), "object id {id} in /metrics");
    }
    assert!(
        s.series("popsel_api_request_duration_seconds_count", &[])
            .iter()
            .all(|x| ENDPOINT_TEMPLATES.contains(&x.label("endpoint")))
    );

    // Stages.
    for stage in STAGES {
        assert!(
            s.value("popsel_stage_runs_total", &[("stage", stage)]) >= Some(1.0),
            "{stage}"
        );
        assert_eq!(
            s.value("popsel_stage_failures_total", &[("stage", stage)]),
            Some(0.0),
            "{stage} failed\n{}",
            agent.stderr_tail()
        );
        let last = s
            .value(
                "popsel_stage_last_success_timestamp_seconds",
                &[("stage", stage)],
            )
            .unwrap_or(0.0);
        assert!(last >= started - 1.0, "{stage}: last success {last}");
    }

    // Health and readiness, and the exposition's content type.
    let (status, content_type, _) = get(&format!("{base}/metrics")).await.expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let (status, _, body) = get(&format!("{base}/healthz")).await.expect("GET /healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&format!("{base}/readyz")).await != Some(200) {
        assert!(Instant::now() < deadline, "/readyz never 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A location measured from here whose probes cannot start (here: `[probe] interface` names a
/// device this host lacks, so no ICMP socket opens and nothing is ever sent) shows as
/// `popsel_probe_socket_up 0` with request counters at 0, instead of leaving `popsel_pop_up`
/// absent where no alert sees it. (`tests/network/metrics_fleet.rs` does the same without
/// CAP_NET_RAW and ping sockets.) With `--no-probe`, probing is not wanted: no socket gauge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_cannot_probe_says_so_and_one_told_not_to_says_nothing() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    site.write_config_with("[probe]\ninterface = \"popsel-none0\"\n");
    let agent = AgentProc::spawn(site.run_command_probing());
    let base = agent.metrics_base().await;
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(15),
            "a probe and a select run",
            |s| {
                s.value("popsel_stage_runs_total", &[("stage", "select")]) >= Some(1.0)
                    && s.value("popsel_stage_runs_total", &[("stage", "probe")]) >= Some(1.0)
            },
        )
        .await;
    assert_eq!(
        s.value("popsel_probe_socket_up", &[]),
        Some(0.0),
        "{}",
        s.summary()
    );
    assert_eq!(s.value("popsel_probe_requests_total", &[]), Some(0.0));
    assert_eq!(s.value("popsel_probe_round_requests", &[]), Some(0.0));
    assert!(s.series("popsel_pop_up", &[]).is_empty());
    drop(agent);

    let (agent, base) = site.start_agent(&[]).await;
    let s = agent.first_cycle(&base).await;
    assert!(
        !s.has_type_line("popsel_probe_socket_up"),
        "{}",
        s.summary()
    );
    assert!(!s.has_type_line("popsel_probe_requests_total"));
}
