//! `popsel tunnels`, `popsel connectors`, `popsel pops`, `popsel demo` and `popsel sim` as an
//! operator runs them: the binary against an emulator on loopback, token in the environment,
//! PSKs from the environment, never printed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use popsel::atmos::{Connector, Tunnel};
use popsel::sim::{Emulated, Sim};
use serde_json::Value;

use crate::support;
use crate::support::{assert_contains, assert_exit, show};

const LOCATION: &str = support::site::CHICAGO_LOCATION_ID;
const PSK_VAR: &str = "MY_PSK";
const PSK: &str = "Cli-Psk-5e6f7a8b9c";
const NEW_PSK: &str = "Cli-Rotated-Psk-0d1e2f";

// ---- helpers ----

/// `popsel --api-url <sim> <args>` with the test token and `MY_PSK` in its environment.
fn api(sim: &Sim, args: &[&str]) -> Command {
    let mut cmd = support::popsel();
    cmd.arg("--api-url")
        .arg(sim.url())
        .args(args)
        .env("POPSEL_API_TOKEN", support::TOKEN)
        .env(PSK_VAR, PSK)
        .stdin(Stdio::null());
    cmd
}

async fn run_api(sim: &Sim, args: &[&str]) -> Output {
    let out = support::run(api(sim, args)).await;
    assert_no_secrets(&out);
    out
}

#[track_caller]
fn assert_success(o: &Output) {
    assert!(o.status.success(), "{}", show(o));
}

/// Neither the token nor a PSK ever shows in what the binary prints.
#[track_caller]
fn assert_no_secrets(o: &Output) {
    let all = format!("{}{}", support::stdout(o), support::stderr(o));
    for secret in [support::TOKEN, PSK, NEW_PSK] {
        assert!(!all.contains(secret), "{secret:?} printed:\n{}", show(o));
    }
}

/// A failed run: exit 1, nothing on stdout, one line on stderr, which is returned.
#[track_caller]
fn one_error_line(o: &Output) -> String {
    assert_exit(o, 1);
    assert_eq!(support::stdout(o), "", "{}", show(o));
    let err = support::stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", show(o));
    assert!(lines[0].starts_with("popsel: error: "), "{}", show(o));
    lines[0].to_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_str(&support::stdout(o))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", show(o)))
}

/// The table's data rows, each split on runs of two or more spaces.
fn rows(o: &Output) -> Vec<Vec<String>> {
    support::stdout(o)
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// `popsel <collection> delete <id>` of the only object of `R`: it says so, and none is left.
async fn delete_the_only<R: Emulated>(sim: &Sim, id: &str) {
    let out = run_api(sim, &[R::COLLECTION, "delete", id]).await;
    assert_success(&out);
    assert_eq!(support::stdout(&out), format!("deleted {} {id}\n", R::NAME));
    assert!(sim.with_store(|s| s.list::<R>()).is_empty());
}

/// Kills the child when dropped, so that a failed assertion leaves no server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` inside a new user and network namespace with only loopback up, so nothing it does
/// leaves the machine. Err when this machine does not allow that.
fn loopback_only(cmd: &Command) -> Result<Command, String> {
    let probe = Command::new("unshare")
        .args(["-rn", "ip", "link", "set", "lo", "up"])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "unshare -rn: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    Ok(wrapped)
}

// ---- tunnels ----

#[tokio::test]
async fn tunnels_create_list_get_status_update_delete() {
    let sim = support::start_sim(support::no_faults()).await;
    let create = [
        "tunnels",
        "create",
        "--name",
        "Chicago IPSec1",
        "--authentication-id",
        "chicago-1@branch.example",
        "--location-id",
        LOCATION,
        "--psk-env",
        PSK_VAR,
    ];
    let out = run_api(&sim, &create).await;
    assert_success(&out);
    let stored = sim.with_store(|s| s.list::<Tunnel>());
    assert_eq!(stored.len(), 1);
    let id = stored[0].id.clone();
    assert!(sim.with_store(|s| s.tunnel_psk_is(&id, PSK)).unwrap());
    assert_eq!(
        rows(&out),
        [
            vec!["ID", "NAME", "AUTHENTICATION ID", "LOCATION ID"],
            vec![
                id.as_str(),
                "Chicago IPSec1",
                "chicago-1@branch.example",
                LOCATION
            ],
        ]
    );

    let out = run_api(&sim, &["tunnels", "list", "--output", "json"]).await;
    assert_success(&out);
    assert_eq!(
        json_out(&out),
        serde_json::json!([{
            "id": id,
            "name": "Chicago IPSec1",
            "authenticationID": "chicago-1@branch.example",
            "locationID": LOCATION,
        }])
    );

    let out = run_api(&sim, &["tunnels", "get", &id]).await;
    assert_success(&out);
    assert_eq!(rows(&out)[1][..2], [id.clone(), "Chicago IPSec1".into()]);

    let out = run_api(&sim, &["tunnels", "status", &id]).await;
    assert_success(&out);
    assert_eq!(
        rows(&out),
        [vec!["ID", "STATUS"], vec![id.as_str(), "Disconnected"]]
    );
    sim.with_store(|s| s.set_status::<Tunnel>(&id, popsel::atmos::TunnelState::Connected))
        .unwrap();
    let out = run_api(&sim, &["tunnels", "status", &id, "--output", "json"]).await;
    assert_success(&out);
    assert_eq!(
        json_out(&out),
        serde_json::json!({ "id": id, "status": "Connected" })
    );

    let out = run_api(
        &sim,
        &["tunnels", "update", &id, "--name", "Chicago IPSec9"],
    )
    .await;
    assert_success(&out);
    assert_eq!(rows(&out)[1][..2], [id.clone(), "Chicago IPSec9".into()]);
    assert_eq!(
        sim.with_store(|s| s.list::<Tunnel>())[0].name,
        "Chicago IPSec9"
    );
    assert!(sim.with_store(|s| s.tunnel_psk_is(&id, PSK)).unwrap());

    let mut rotate = api(&sim, &["tunnels", "update", &id, "--psk-env", "ROTATED"]);
    rotate.env("ROTATED", NEW_PSK);
    let out = support::run(rotate).await;
    assert_success(&out);
    assert_no_secrets(&out);
    assert!(sim.with_store(|s| s.tunnel_psk_is(&id, NEW_PSK)).unwrap());

    delete_the_only::<Tunnel>(&sim, &id).await;
}

#[tokio::test]
async fn tunnels_create_checks_its_input_before_calling_the_api() {
    let sim = support::start_sim(support::no_faults()).await;
    let base = |auth: &'static str, psk_var: &'static str| {
        vec![
            "tunnels",
            "create",
            "--name",
            "T",
            "--authentication-id",
            auth,
            "--location-id",
            LOCATION,
            "--psk-env",
            psk_var,
        ]
    };
    let mut short = api(&sim, &base("t@branch.example", "SHORT_PSK"));
    short.env("SHORT_PSK", "7-chars");
    let out = support::run(short).await;
    assert_eq!(
        one_error_line(&out),
        "popsel: error: the PSK must be at least 8 characters"
    );
    assert!(!support::stderr(&out).contains("7-chars"));

    let out = run_api(&sim, &base("bob@", PSK_VAR)).await;
    assert_eq!(
        one_error_line(&out),
        "popsel: error: --authentication-id \"bob@\" is neither an email nor an IP address"
    );

    let out = run_api(&sim, &base("t@branch.example", "UNSET_PSK_VAR")).await;
    assert_eq!(
        one_error_line(&out),
        "popsel: error: --psk-env UNSET_PSK_VAR: the variable is not set: environment variable not found"
    );

    let out = run_api(&sim, &base("t@branch.example", PSK_VAR)[..8]).await;
    assert_eq!(
        one_error_line(&out),
        "popsel: error: a new tunnel needs a PSK: give --psk-env, --psk-file or --psk-stdin"
    );
    assert_eq!(sim.request_counts()["writes"], 0);
}

#[tokio::test]
async fn an_api_error_is_one_line_on_stderr() {
    let sim = support::start_sim(support::no_faults()).await;
    let out = run_api(&sim, &["tunnels", "get", "nope"]).await;
    let line = one_error_line(&out);
    assert_eq!(
        line,
        "popsel: error: get tunnel nope: tunnel nope not found (HTTP 404)"
    );
    assert!(line.contains("404"));

    let out = run_api(&sim, &["connectors", "regenerate", "nope"]).await;
    assert!(one_error_line(&out).contains("connector nope not found (HTTP 404)"));
}

#[tokio::test]
async fn a_missing_token_is_named() {
    let sim = support::start_sim(support::no_faults()).await;
    let mut cmd = api(&sim, &["tunnels", "list"]);
    cmd.env_remove("POPSEL_API_TOKEN");
    let out = support::run(cmd).await;
    let line = one_error_line(&out);
    assert_contains(&line, "POPSEL_API_TOKEN");
    assert_eq!(
        line,
        "popsel: error: no API token: set POPSEL_API_TOKEN or give a token file (--token-file or [api] token_file)"
    );
    assert_eq!(sim.request_counts()["GET"], Value::Null, "no request made");
}

#[tokio::test]
async fn a_wrong_token_is_a_401_that_is_never_printed() {
    let sim = support::start_sim(support::no_faults()).await;
    let wrong = "wrong-cli-token-3a9f1c";
    for args in [
        &["tunnels", "list"][..],
        &["connectors", "create", "--name", "c"],
        &["pops"],
    ] {
        let mut cmd = api(&sim, args);
        cmd.env("POPSEL_API_TOKEN", wrong);
        let out = support::run(cmd).await;
        let line = one_error_line(&out);
        assert_contains(
            &line,
            "unauthorized (HTTP 401): token rejected or lacks the scope",
        );
        assert!(!line.contains(wrong), "{line}");
        assert_no_secrets(&out);
    }
    let mut cmd = api(&sim, &["tunnels", "list"]);
    cmd.env("POPSEL_API_TOKEN", wrong);
    let out = support::run(cmd).await;
    assert_eq!(
        one_error_line(&out),
        "popsel: error: list tunnels (page 1): unauthorized (HTTP 401): token rejected or lacks the scope; check POPSEL_API_TOKEN or the token file and the token's scopes"
    );
}

// ---- connectors ----

#[tokio::test]
async fn connectors_create_list_status_regenerate_update_delete() {
    let sim = support::start_sim(support::no_faults()).await;
    let out = run_api(
        &sim,
        &[
            "connectors",
            "create",
            "--name",
            "edge-1",
            "--zone-id",
            "z1",
        ],
    )
    .await;
    assert_success(&out);
    let stored = sim.with_store(|s| s.list::<Connector>());
    assert_eq!(stored.len(), 1);
    let id = stored[0].id.clone();
    let text = support::stdout(&out);
    let table = rows(&out);
    assert_eq!(table[0], ["ID", "NAME", "ENABLED", "ZONE ID"]);
    assert_eq!(table[1], [id.as_str(), "edge-1", "true", "z1"]);
    let first_command = text
        .lines()
        .find_map(|l| l.strip_prefix("installation command: "))
        .unwrap_or_else(|| panic!("no installation command:\n{text}"))
        .to_owned();
    assert!(
        first_command.starts_with("sudo bash < <(curl -fskSL https://"),
        "{first_command}"
    );

    let out = run_api(&sim, &["connectors", "list", "--output", "json"]).await;
    assert_success(&out);
    assert_eq!(
        json_out(&out),
        serde_json::json!([{ "id": id, "name": "edge-1", "enabled": true, "connectorZoneID": "z1" }])
    );
    let out = run_api(&sim, &["connectors", "list"]).await;
    assert_success(&out);
    assert_eq!(rows(&out)[1], [id.as_str(), "edge-1", "true", "z1"]);

    let out = run_api(&sim, &["connectors", "status", &id]).await;
    assert_success(&out);
    assert_eq!(
        rows(&out),
        [vec!["ID", "STATUS"], vec![id.as_str(), "Pending"]]
    );
    sim.with_store(|s| {
        s.set_status::<popsel::atmos::Connector>(&id, popsel::atmos::ConnectorState::AgentOnly)
    })
    .unwrap();
    let out = run_api(&sim, &["connectors", "status", &id]).await;
    assert_success(&out);
    assert_eq!(rows(&out)[1], [id.as_str(), "AgentOnly"]);

    let out = run_api(&sim, &["connectors", "regenerate", &id]).await;
    assert_success(&out);
    let regenerated = support::stdout(&out);
    let new_command = regenerated
        .strip_prefix("installation command: ")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{}", show(&out)));
    assert!(new_command.starts_with("sudo bash < <(curl -fskSL https://"));
    assert_ne!(new_command, first_command);

    let out = run_api(&sim, &["connectors", "update", &id, "--enabled", "false"]).await;
    assert_success(&out);
    assert_eq!(rows(&out)[1], [id.as_str(), "edge-1", "false", "z1"]);

    delete_the_only::<Connector>(&sim, &id).await;
}

// ---- pops ----

#[tokio::test]
async fn pops_as_a_table_and_as_json() {
    let sim = support::start_sim(support::no_faults()).await;
    let out = run_api(&sim, &["pops"]).await;
    assert_success(&out);
    let text = support::stdout(&out);
    assert!(
        text.starts_with("COUNTRY  CITY"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(text.contains("Frankfurt"));
    assert!(text.contains("198.18."));
    assert!(text.contains("ipsec-de-fra-aws-1.pops.popsel.test"));
    assert_eq!(
        support::stderr(&out),
        "",
        "no malformed entries to warn about"
    );

    let out = run_api(&sim, &["pops", "--output", "json"]).await;
    assert_success(&out);
    let doc = json_out(&out);
    let countries = doc["ipSecLocations"]
        .as_array()
        .expect("ipSecLocations is an array");
    assert!(!countries.is_empty());
    // Every entry of the sample has the documented shape, so it comes back as served.
    assert_eq!(doc, popsel::sim::sample_catalog());
    assert!(
        countries
            .iter()
            .any(|c| c["country"] == "DE" && c["locations"][0]["city"] == "Frankfurt"),
        "{doc}"
    );
}

// ---- demo and sim ----

#[tokio::test]
async fn demo_runs_one_cycle_and_shows_what_it_provisioned() {
    let mut demo = support::popsel();
    demo.args(["demo", "--once"]).stdin(Stdio::null());
    // The demo's agent resolves the catalogue's FQDNs with the system resolver: keep it on
    // loopback.
    let isolated = loopback_only(&demo);
    if !support::can_run_privileged(isolated.as_ref().map(|_| ()).map_err(|e| e.clone())) {
        return;
    }
    let out = support::run(isolated.unwrap()).await;
    assert_success(&out);
    let text = support::stdout(&out);
    assert!(text.contains("Chicago IPSec1"), "{}", show(&out));
    assert!(text.contains("Frankfurt"), "{}", show(&out));
    assert!(
        text.contains("Tunnels provisioned through the API:"),
        "{}",
        show(&out)
    );
}

#[tokio::test]
async fn sim_command_prints_its_url_and_requires_its_token() {
    let mut cmd = support::popsel();
    cmd.args(["sim", "--listen", "127.0.0.1:0", "--token", "X"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = KillOnDrop(cmd.spawn().expect("spawn popsel sim"));
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .expect("read the first line");
    let url = line
        .trim_end()
        .strip_prefix("popsel sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a loopback URL: {url}"));
    assert_ne!(port, 0);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let pops = format!("{url}/api/v1/pops/ipsec");
    let resp = http.get(&pops).bearer_auth("X").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["ipSecLocations"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    let resp = http.get(&pops).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http.get(&pops).bearer_auth("Y").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    drop(child);
}
