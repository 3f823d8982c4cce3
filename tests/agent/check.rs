//! `popsel check`: the config `popsel run` would load, validated offline. Exit 0 valid, 1
//! invalid; each problem one line on stdout with its key path; no request, no PSK or token in
//! what it prints. The API is a bare TCP listener that counts who connects.

use std::net::TcpListener;
use std::process::Output;

use crate::support::config_site::{
    ConfigSite, Named, PSK_1, PSK_2, assert_no_default_config, bare,
};
use crate::support::site::{CHICAGO_1, CHICAGO_2, SiteToml};
use crate::support::{self, assert_contains, assert_exit, show, toml_str};

/// An "API" that must never be called: a listener nobody should connect to.
struct Untouched(TcpListener);

impl Untouched {
    fn new() -> Untouched {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Untouched(listener)
    }

    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().expect("address"))
    }

    #[track_caller]
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("popsel check connected to the API: {other:?}"),
        }
    }
}

async fn check(site: &ConfigSite, args: &[&str]) -> Output {
    let out = support::run(site.command(
        &Named::Flag(site.config_path()),
        &[&["check"], args].concat(),
    ))
    .await;
    assert_no_secret(&out);
    out
}

#[track_caller]
fn assert_no_secret(out: &Output) {
    let all = format!("{}{}", support::stdout(out), support::stderr(out));
    for secret in [support::TOKEN, PSK_1, PSK_2, SHORT_PSK, OTHER_PSK] {
        assert!(!all.contains(secret), "{secret:?} printed:\n{}", show(out));
    }
}

/// A PSK too short for Atmos, in the secondary's file.
const SHORT_PSK: &str = "Zq7kW";
/// A good PSK of a tunnel whose config has other problems.
const OTHER_PSK: &str = "config-Chicago-three-71ac0e";
const OTHER_PSK_ENV: &str = "POPSEL_CONFIG_TEST_PSK_3";

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_config_exits_0_prints_no_problem_and_calls_nothing() {
    let api = Untouched::new();
    let site = ConfigSite::new(&api.url());
    let out = check(&site, &[]).await;
    assert_exit(&out, 0);
    assert_eq!(support::stdout(&out), "", "{}", show(&out));
    assert_contains(
        &support::stderr(&out),
        &format!(
            "config {} is valid: 1 location(s), 2 tunnel(s)",
            site.config_path().display()
        ),
    );
    api.assert_untouched();
    assert!(!site.files.state_dir().exists(), "check made the state dir");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_problem_is_one_line_with_its_key_path_and_no_psk_is_printed() {
    let api = Untouched::new();
    let site = ConfigSite::with(&api.url(), |c: SiteToml| {
        c.with("[dns]\nnameservers = [\"localhost\"]\n")
            .psk_env(CHICAGO_1, "POPSEL_CONFIG_TEST_UNSET")
            .set(CHICAGO_2, "authentication_id", "bob@")
            .add_tunnel(
                crate::support::site::CHICAGO,
                &format!(
                    "name = \"Chicago IPSec3\"\nrole = \"secondary\"\n\
                     authentication_id = \"203.0.113.9\"\npsk_env = {}\n",
                    toml_str(OTHER_PSK_ENV)
                ),
            )
    });
    site.files
        .write_psk_file(crate::support::config_site::PSK_FILE, SHORT_PSK);
    let mut cmd = site.command(&Named::Flag(site.config_path()), &["check"]);
    cmd.env(OTHER_PSK_ENV, OTHER_PSK);
    let out = support::run(cmd).await;
    assert_no_secret(&out);
    assert_exit(&out, 1);
    let stdout = support::stdout(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        "dns.nameservers[0]: \"localhost\"",
        "locations[0].tunnels: allows at most one secondary tunnel",
        "locations[0].tunnels[0].psk_env: ",
        "locations[0].tunnels[1]: the PSK has 5 characters",
        "locations[0].tunnels[1].authentication_id: \"bob@\"",
    ];
    assert_eq!(lines.len(), expected.len(), "{}", show(&out));
    for prefix in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "no line starting {prefix:?}:\n{}",
            show(&out)
        );
    }
    assert_contains(
        &support::stderr(&out),
        &format!("config {}: 5 problem(s)", site.config_path().display()),
    );
    api.assert_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_token_is_a_problem_under_the_key_or_flag_that_fixes_it() {
    let api = Untouched::new();
    let site = ConfigSite::new(&api.url());
    let mut cmd = site.command(&Named::Flag(site.config_path()), &["check"]);
    cmd.env_remove("POPSEL_API_TOKEN");
    let out = support::run(cmd).await;
    assert_exit(&out, 1);
    assert!(
        support::stdout(&out).starts_with("api.token_file: no API token: set POPSEL_API_TOKEN"),
        "{}",
        show(&out)
    );

    let missing = site.files.path("no-such-token");
    let mut cmd = site.command(
        &Named::Flag(site.config_path()),
        &["check", "--token-file", &missing.display().to_string()],
    );
    cmd.env_remove("POPSEL_API_TOKEN");
    let out = support::run(cmd).await;
    assert_exit(&out, 1);
    assert!(
        support::stdout(&out)
            .starts_with(&format!("--token-file: token file {}", missing.display())),
        "{}",
        show(&out)
    );

    // A URL the agent would refuse (plain http to another host), from the flag.
    let out = check(&site, &["--api-url", "http://192.0.2.1"]).await;
    assert_exit(&out, 1);
    assert!(
        support::stdout(&out).starts_with("--api-url: API URL"),
        "{}",
        show(&out)
    );
    api.assert_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_toml_or_not_there_is_said_so() {
    let site = ConfigSite::new("http://127.0.0.1:9");
    std::fs::write(site.config_path(), "[api\n").unwrap();
    let out = check(&site, &[]).await;
    assert_exit(&out, 1);
    assert!(
        support::stdout(&out).starts_with("line 1, column "),
        "{}",
        show(&out)
    );

    let missing = site.files.path("missing.toml");
    let out = support::run(site.command(&Named::Flag(missing.clone()), &["check"])).await;
    assert_exit(&out, 1);
    assert!(
        support::stdout(&out).starts_with(&format!("{}: ", missing.display())),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reads_popsel_config_and_says_so_when_it_names_nothing() {
    let api = Untouched::new();
    let site = ConfigSite::new(&api.url());
    let out = support::run(site.command(&Named::Env(site.config_path()), &["check"])).await;
    assert_exit(&out, 0);
    assert_contains(&support::stderr(&out), "(from POPSEL_CONFIG) is valid");

    let missing = site.files.path("missing.toml");
    let out = support::run(site.command(&Named::Env(missing.clone()), &["check"])).await;
    assert_exit(&out, 1);
    assert_contains(
        &support::stderr(&out),
        &format!(
            "config {} (from POPSEL_CONFIG): 1 problem(s)",
            missing.display()
        ),
    );
    api.assert_untouched();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_without_a_config_anywhere_names_every_place_it_looked() {
    assert_no_default_config();
    let out = support::run(bare(&Named::Nowhere, &["check"])).await;
    assert_exit(&out, 1);
    assert_eq!(support::stdout(&out), "");
    let stderr = support::stderr(&out);
    for place in ["--config", "POPSEL_CONFIG", "/etc/popsel/popsel.toml"] {
        assert_contains(&stderr, place);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_is_a_usage_error_with_options_it_does_not_take() {
    let site = ConfigSite::new("http://127.0.0.1:9");
    for args in [
        &["check", "--log-format", "json"][..],
        &["check", "--no-probe"],
    ] {
        let out = support::run(site.command(&Named::Flag(site.config_path()), args)).await;
        assert_exit(&out, 2);
    }
}
