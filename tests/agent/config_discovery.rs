//! Where each command finds its config: `--config`, else `POPSEL_CONFIG`, else
//! /etc/popsel/popsel.toml for the commands that need one (run, plan, apply, check); the API
//! commands and rank read one only when named, and work without. And plan's exit codes, as
//! terraform's: 0 whether or not changes are pending, 2 for them only with
//! `--detailed-exitcode`, so that clap's usage error (2) never reads as "changes pending".

use popsel::atmos::TunnelSpec;
use secrecy::SecretString;

use crate::emulator::tunnel_names;
use crate::support::config_site::{ConfigSite, Named, assert_no_default_config, bare};
use crate::support::site::{CHICAGO_1, CHICAGO_2, CHICAGO_LOCATION_ID};
use crate::support::{self, assert_contains, assert_exit, show};

const NO_MEASURING: [&str; 2] = ["--no-probe", "--no-dns"];

#[tokio::test(flavor = "multi_thread")]
async fn without_a_config_anywhere_each_command_that_needs_one_names_every_place() {
    assert_no_default_config();
    for args in [
        &["run", "--once", "--no-probe"][..],
        &["plan", "--no-probe", "--no-dns"],
        &["apply", "--yes", "--no-probe", "--no-dns"],
        &["check"],
    ] {
        let out = support::run(bare(&Named::Nowhere, args)).await;
        assert_exit(&out, 1);
        let stderr = support::stderr(&out);
        for place in ["--config", "POPSEL_CONFIG", "/etc/popsel/popsel.toml"] {
            assert!(stderr.contains(place), "{args:?}: {place}\n{}", show(&out));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn popsel_config_names_the_config_of_plan_apply_run_and_check() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = ConfigSite::new(&sim.url());
    let env = Named::Env(site.config_path());

    let out = support::run(site.command(&env, &["check"])).await;
    assert_exit(&out, 0);
    let out = support::run(site.command(&env, &[&["plan"], &NO_MEASURING[..]].concat())).await;
    assert_exit(&out, 0);
    assert_contains(
        &support::stdout(&out),
        "Plan: 2 to create, 0 to update, 0 to delete",
    );
    let out =
        support::run(site.command(&env, &[&["apply", "--yes"], &NO_MEASURING[..]].concat())).await;
    assert_exit(&out, 0);
    assert_eq!(tunnel_names(&sim), [CHICAGO_1, CHICAGO_2]);
    let out = support::run(site.command(&env, &["run", "--once", "--no-probe"])).await;
    assert_exit(&out, 0);
    assert!(site.files.state_dir().join("selection.json").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_flag_wins_over_popsel_config() {
    let site = ConfigSite::new("http://127.0.0.1:9");
    let missing = site.files.path("missing.toml");

    let out = support::run(site.command(
        &Named::Both(site.config_path(), missing.clone()),
        &["check"],
    ))
    .await;
    assert_exit(&out, 0);

    let out = support::run(site.command(
        &Named::Both(missing.clone(), site.config_path()),
        &["plan", "--no-probe", "--no-dns"],
    ))
    .await;
    assert_exit(&out, 1);
    let stderr = support::stderr(&out);
    assert_contains(&stderr, &format!("config {}:", missing.display()));
    assert!(!stderr.contains("POPSEL_CONFIG"), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_popsel_config_names_that_fails_says_where_its_name_came_from() {
    let site = ConfigSite::new("http://127.0.0.1:9");
    let missing = site.files.path("missing.toml");
    for args in [
        &["run", "--once", "--no-probe"][..],
        &["plan", "--no-probe", "--no-dns"],
        &["tunnels", "list", "--api-url", "http://127.0.0.1:9"],
    ] {
        let out = support::run(site.command(&Named::Env(missing.clone()), args)).await;
        assert_exit(&out, 1);
        assert_contains(
            &support::stderr(&out),
            &format!("config {} (from POPSEL_CONFIG): ", missing.display()),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_commands_use_the_config_popsel_config_names_and_work_without_one() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = ConfigSite::new(&sim.url());
    support::client_for(&sim)
        .create_tunnel(&TunnelSpec {
            name: "Somewhere IPSec1".into(),
            authentication_id: "somewhere@branch.example".into(),
            psk: SecretString::from("somewhere-psk-1234".to_owned()),
            location_id: CHICAGO_LOCATION_ID.into(),
        })
        .await
        .expect("create tunnel");

    // The API's URL from the config's [api] section: nothing on the command line.
    let out =
        support::run(site.command(&Named::Env(site.config_path()), &["tunnels", "list"])).await;
    assert_exit(&out, 0);
    assert_contains(&support::stdout(&out), "Somewhere IPSec1");

    // No config anywhere: flags and environment are enough, before or after the command.
    for args in [
        &["tunnels", "list", "-o", "json", "--api-url", &sim.url()][..],
        &["--api-url", &sim.url(), "tunnels", "list", "-o", "json"],
    ] {
        let out = support::run(site.command(&Named::Nowhere, args)).await;
        assert_exit(&out, 0);
        assert_contains(&support::stdout(&out), "Somewhere IPSec1");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rank_from_a_catalogue_file_reads_no_config() {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.sample.json");
    let site = ConfigSite::new("http://127.0.0.1:9");
    let missing = site.files.path("missing.toml");
    let out = support::run(bare(
        &Named::Env(missing),
        &[
            "rank",
            "--site",
            "41.88,-87.63",
            "--catalog",
            catalog,
            "--no-dns",
            "--no-probe",
            "--top",
            "1",
            "-o",
            "csv",
            "--nameserver",
            "[::1]:5353",
            "--nameserver",
            "192.0.2.53",
        ],
    ))
    .await;
    assert_exit(&out, 0);
    assert_contains(&support::stdout(&out), "Chicago, Illinois");
}

#[tokio::test(flavor = "multi_thread")]
async fn rank_refuses_a_name_server_that_is_not_ip_or_ip_port_as_bad_input() {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.sample.json");
    for ns in ["dns.example", "192.0.2.53:", "[::1]:0", "::1]:53"] {
        let out = support::run(bare(
            &Named::Nowhere,
            &[
                "rank",
                "--site",
                "41.88,-87.63",
                "--catalog",
                catalog,
                "--no-probe",
                "--nameserver",
                ns,
            ],
        ))
        .await;
        assert_exit(&out, 2);
        let stderr = support::stderr(&out);
        assert_contains(&stderr, "--nameserver");
        assert_contains(&stderr, &format!("{ns:?}"));
    }
}

// ---- plan's exit codes ----

#[tokio::test(flavor = "multi_thread")]
async fn plan_exits_2_only_with_detailed_exitcode_and_changes_pending() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = ConfigSite::new(&sim.url());
    let flag = Named::Flag(site.config_path());
    let plan =
        |extra: &[&str]| site.command(&flag, &[&["plan"], &NO_MEASURING[..], extra].concat());

    // Changes pending: 0, and 2 when asked.
    assert_exit(&support::run(plan(&[])).await, 0);
    assert_exit(&support::run(plan(&["--detailed-exitcode"])).await, 2);
    assert_exit(
        &support::run(plan(&["--detailed-exitcode", "-o", "json"])).await,
        2,
    );

    // Nothing pending: 0 either way.
    let out =
        support::run(site.command(&flag, &[&["apply", "--yes"], &NO_MEASURING[..]].concat())).await;
    assert_exit(&out, 0);
    assert_exit(&support::run(plan(&[])).await, 0);
    assert_exit(&support::run(plan(&["--detailed-exitcode"])).await, 0);

    // A usage error is 2 without the flag, and is told apart by its empty stdout.
    let out = support::run(plan(&["--no-such-option"])).await;
    assert_exit(&out, 2);
    assert_eq!(support::stdout(&out), "", "{}", show(&out));
    assert_contains(&support::stderr(&out), "--no-such-option");
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_exits_1_on_a_conflict_with_or_without_detailed_exitcode() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = ConfigSite::new(&sim.url());
    // Someone else's tunnel with the primary's name and another authentication ID.
    support::client_for(&sim)
        .create_tunnel(&TunnelSpec {
            name: CHICAGO_1.into(),
            authentication_id: "someone-else@branch.example".into(),
            psk: SecretString::from("their-own-psk-1234".to_owned()),
            location_id: CHICAGO_LOCATION_ID.into(),
        })
        .await
        .expect("create tunnel");
    let flag = Named::Flag(site.config_path());
    for extra in [&[][..], &["--detailed-exitcode"]] {
        let out =
            support::run(site.command(&flag, &[&["plan"], &NO_MEASURING[..], extra].concat()))
                .await;
        assert_exit(&out, 1);
        assert_contains(&support::stdout(&out), "! conflict");
    }
}
