//! A panic inside a stage run is caught there: counted as a failed run, reported, and the
//! stage runs again on its interval while the others go on.
//!
//! The panic is a real one, raised by a real component the test controls rather than by a
//! hook for tests in the pipeline: the [`Report`] that every command plugs into the pipeline
//! (the agent's log, the command line's stderr) is called by the catalogue stage for each
//! entry of the API's answer it has to skip. Here it is a report that cannot cope with a
//! skipped entry, and the emulator serves a catalogue with one malformed entry: a hostile API
//! answer meeting code that panics on it, the way the agent died on its first fetch.

use std::sync::{Arc, Mutex};

use popsel::config::Config;
use popsel::metrics::Metrics;
use popsel::pipeline::{Generation, Mode, Notice, Pipeline, ProberSlot, Report};
use popsel::schedule::Stage;
use popsel::sim::{Sim, SimOptions, sample_catalog};
use serde_json::json;

use crate::exposition::Scrape;
use crate::support::{self, site::SiteToml, toml_str};

/// Panics on a skipped catalogue entry; keeps every other notice.
#[derive(Clone, Default)]
struct FragileReport {
    notices: Arc<Mutex<Vec<String>>>,
}

impl Report for FragileReport {
    fn notice(&self, notice: Notice) {
        if let Notice::Skipped(skipped) = &notice {
            panic!("this report cannot cope with {:?}", skipped.city);
        }
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(notice.to_string());
    }
}

impl FragileReport {
    fn notices(&self) -> Vec<String> {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The sample catalogue and one entry whose coordinates are not numbers.
async fn sim_with_a_malformed_pop() -> Sim {
    let mut catalog = sample_catalog();
    catalog["ipSecLocations"]
        .as_array_mut()
        .expect("the sample's countries")
        .push(json!({
            "country": "ZZ",
            "locations": [{
                "city": "Nowhere",
                "latitude": "north",
                "longitude": "east",
                "provider": "AWS",
                "fqdn": [{"name": "ipsec-zz-nowhere.pops.popsel.test", "ip": ["198.18.200.1"]}]
            }]
        }));
    let mut options = SimOptions::local(support::token());
    options.catalog = catalog;
    Sim::start(options).await.expect("start the emulator")
}

/// The agent's pipeline (`Mode::Agent`, exporting to `metrics`) for the demo site against
/// `sim`, reporting to `report`.
fn agent_pipeline(
    sim: &Sim,
    state: &std::path::Path,
    report: &FragileReport,
    metrics: &Arc<Metrics>,
) -> Pipeline {
    let text = SiteToml::demo()
        .with(&format!(
            "[api]\nbase_url = {}\n\n[state]\ndir = {}\n",
            toml_str(&sim.url()),
            toml_str(&state.display().to_string())
        ))
        .render();
    let config = Config::parse_with(&text, "panics", state, &|_| {
        Some("a-psk-of-the-test-3f9a".to_owned())
    })
    .expect("the demo site is a valid config");
    let generation = Generation::new(config, support::client_for(sim), false, report)
        .expect("open the state dir");
    Pipeline::new(
        generation,
        ProberSlot::none(),
        Mode::Agent(metrics.clone()),
        Box::new(report.clone()),
    )
    .expect("the pipeline")
}

#[tokio::test]
async fn a_panic_in_a_stage_is_a_failed_run_and_the_stages_go_on() {
    let sim = sim_with_a_malformed_pop().await;
    let state = tempfile::tempdir().expect("tempdir");
    let report = FragileReport::default();
    let metrics = Arc::new(Metrics::new());
    let pipeline = agent_pipeline(&sim, state.path(), &report, &metrics);

    assert!(
        !pipeline.run_job(&[Stage::Catalog]).await,
        "a run that panicked is not a success"
    );
    let scrape = Scrape::parse(metrics.encode());
    assert_eq!(
        scrape.value("popsel_stage_runs_total", &[("stage", "catalog")]),
        Some(1.0)
    );
    assert_eq!(scrape.failures("catalog"), 1.0);
    let notices = report.notices();
    let failed = notices
        .iter()
        .find(|n| n.starts_with("stage catalog failed"))
        .unwrap_or_else(|| panic!("no stage failure reported: {notices:?}"));
    assert!(
        failed.contains("panic") && failed.contains("Nowhere"),
        "the report does not say the stage panicked, and with what: {failed}"
    );

    // The loop goes on: the stage runs again (and fails again, the same way), and the other
    // stages run as ever: reconcile creates the site's tunnels.
    assert!(!pipeline.run_job(&[Stage::Catalog]).await);
    assert!(
        pipeline.run_job(&[Stage::Reconcile]).await,
        "{:?}",
        report.notices()
    );
    let scrape = Scrape::parse(metrics.encode());
    assert_eq!(scrape.failures("catalog"), 2.0);
    assert_eq!(
        scrape.value("popsel_stage_runs_total", &[("stage", "reconcile")]),
        Some(1.0)
    );
    assert_eq!(scrape.failures("reconcile"), 0.0);
    assert_eq!(
        sim.with_store(|s| s.list::<popsel::atmos::Tunnel>()).len(),
        3,
        "reconcile did not create the site's tunnels"
    );
}
