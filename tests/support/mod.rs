//! Shared test support: an emulator on 127.0.0.1 port 0 with a client for it, and a way to run
//! the `popsel` binary; `site` is the demo site the tests build their configs on, `api` the API
//! tests' helpers, `raw_http` a real server of its own, `ipsec` the IPsec lab (real charons);
//! `netns` (network namespace guards) and `bounded` (commands run with a time limit) are what
//! it shares with the latency lab's test side (`lab.rs`, with its DNS server `dns.rs`, which the
//! network test binary and `examples/lab.rs` declare themselves). Each test binary
//! (`tests/<binary>/main.rs`) declares it once as `#[path = "../support/mod.rs"] mod support;`.

#![allow(dead_code)]

pub mod api;
pub mod bounded;
pub mod chaos;
pub mod config_site;
pub mod flood;
pub mod hostile;
pub mod ipsec;
pub mod netns;
pub mod proxy;
pub mod raw_http;
pub mod site;
pub mod state_faults;
pub mod terminal;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use popsel::atmos::{Client, ClientConfig, RetryPolicy};
use popsel::sim::{Faults, Sim, SimOptions};
use secrecy::SecretString;
use serde_json::Value;

/// The token every test emulator accepts. Tests grep outputs for it to prove it never leaks.
pub const TOKEN: &str = "test-token-8c1f0e2d9b";

pub fn token() -> SecretString {
    SecretString::from(TOKEN.to_owned())
}

/// An emulator on 127.0.0.1 (port 0) with the sample catalogue and the given faults.
pub async fn start_sim(faults: Faults) -> Sim {
    let mut options = SimOptions::local(token());
    options.faults = faults;
    Sim::start(options).await.expect("start the emulator")
}

/// A client for `sim` whose retries are quick, so fault-injection tests run in seconds.
pub fn client_for(sim: &Sim) -> Client {
    client_with(sim, fast_retry())
}

pub fn client_with(sim: &Sim, retry: RetryPolicy) -> Client {
    let mut cc = ClientConfig::new(sim.url(), token());
    cc.retry = retry;
    cc.page_size = 100;
    Client::new(cc).expect("client")
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 30,
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(50),
        max_elapsed: std::time::Duration::from_secs(30),
    }
}

/// No injected fault.
pub fn no_faults() -> Faults {
    Faults::default()
}

/// The `popsel` binary, with a clean environment as far as popsel is concerned.
pub fn popsel() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_popsel"));
    for var in [
        "POPSEL_API_URL",
        "POPSEL_API_TOKEN",
        "POPSEL_LOG",
        "POPSEL_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command off the async runtime's threads (the emulator lives on them).
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run popsel"))
        .await
        .expect("join")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A finished command's exit code, stdout and stderr, for failure messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

#[track_caller]
pub fn assert_exit(o: &Output, expected: i32) {
    assert_eq!(o.status.code(), Some(expected), "{}", show(o));
}

/// `s` as a TOML basic string, for configs written by tests.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether this run must not skip privileged tests: CI sets `CI=true` and runs as root, so a
/// privileged test that cannot run there is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Call at the top of a test that needs something only some machines allow (root, raw ICMP,
/// network namespaces). Returns `false` (the test should return early) after printing why,
/// unless under CI, where it panics with the reason.
pub fn can_run_privileged(available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("privileged test cannot run under CI=true: {why}"),
        Err(why) => {
            eprintln!("SKIPPED (not privileged here; runs in CI): {why}");
            false
        }
    }
}

/// Ok when the process is root (effective uid 0), checked through /proc so no libc is needed.
pub fn is_root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid == "0" {
        Ok(())
    } else {
        Err(format!("effective uid is {euid}, not 0"))
    }
}

/// Every file under `dir`, recursively, with its bytes: what a secrets test greps.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read file");
            out.push((path, bytes));
        }
    }
    out
}

pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `text` holds `needle`, showing all of `text` when it does not.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// A plain HTTP client, for requests the typed client cannot make: never through a proxy, and
/// bounded, so that a server that hangs fails the test instead of stalling it.
pub fn http() -> reqwest::Client {
    // reqwest is built without a bundled crypto provider; plain http needs none, but building
    // a client wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(3))
        .build()
        .expect("HTTP client")
}

/// A request to the emulator with the test token: (status, JSON body or Null).
pub async fn sim_request(
    sim: &Sim,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let resp = http()
        .request(method, format!("{}{path}", sim.url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("request to the emulator");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The names of the tunnels the emulator holds, sorted.
pub fn tunnel_names(sim: &Sim) -> Vec<String> {
    let mut names: Vec<String> = sim
        .with_store(|s| s.list::<popsel::atmos::Tunnel>())
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

/// Sets the status of a tunnel or a connector (`kind`: "tunnels" or "connectors") in the
/// emulator, as Atmos would change it; asserts that the emulator took it.
pub async fn sim_set_status(sim: &Sim, kind: &str, id: &str, status: &str) {
    let (code, body) = sim_request(
        sim,
        reqwest::Method::PUT,
        &format!("/_sim/{kind}/{id}/status"),
        serde_json::json!({ "status": status }),
    )
    .await;
    assert_eq!(
        code, 204,
        "set the status of {kind}/{id} to {status}: {body}"
    );
}
