//! `popsel run` (the agent) and `popsel demo` as an operator runs them: the binary as a child
//! process against an emulator in the test's runtime, over loopback, with a config in a
//! temporary directory.
//!
//! Every agent here runs with `--no-probe`: the sample catalogue's addresses only answer inside
//! the latency lab and must never be pinged from a test machine. The config's `[dns]` points at
//! a closed loopback port so that the catalogue's `.test` names never reach a real resolver and
//! the probe stage stays short.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use popsel::sim::{Sim, SimOptions};
use serde_json::{Value, json};

// ---- the site: config, PSKs, state dir ----

const CHICAGO_LOCATION_ID: &str = "d88fc23a-59a1-476a-a62e-a51ff3543fe7";
const FRANKFURT_LOCATION_ID: &str = "5b0c7a4e-1f5e-4d4a-9d0e-0f7f2a7c1e11";

const PSK_ENV_CHI_1: &str = "POPSEL_AGENT_TEST_PSK_CHI_1";
const PSK_CHI_1: &str = "agent-Chicago-one-9e41c07d";
/// The Chicago secondary's PSK is read from this file (mode 600) next to the config.
const PSK_FILE_CHI_2: &str = "chicago-2.psk";
const PSK_CHI_2: &str = "agent-Chicago-two-3b8d52fa";
const PSK_ENV_FRA_1: &str = "POPSEL_AGENT_TEST_PSK_FRA_1";
const PSK_FRA_1: &str = "agent-Frankfurt-one-77c0e1a4";
/// The PSK of the tunnel a reload adds.
const PSK_ENV_FRA_2: &str = "POPSEL_AGENT_TEST_PSK_FRA_2";
const PSK_FRA_2: &str = "agent-Frankfurt-two-d2f95b30";

/// What must never show anywhere: the API token and every PSK.
const SECRETS: [&str; 5] = [support::TOKEN, PSK_CHI_1, PSK_CHI_2, PSK_FRA_1, PSK_FRA_2];

/// The configured tunnels: (location, tunnel name).
const TUNNELS: [(&str, &str); 3] = [
    ("chicago", "Chicago IPSec1"),
    ("chicago", "Chicago IPSec2"),
    ("frankfurt", "Frankfurt IPSec1"),
];
/// The tunnel a reloaded config adds.
const EXTRA_TUNNEL: (&str, &str) = ("frankfurt", "Frankfurt IPSec2");

/// A connector created in the emulator before the agent starts, so that
/// `popsel_connector_status` has a series.
const CONNECTOR: &str = "branch-connector";

const STAGES: [&str; 5] = ["catalog", "probe", "select", "reconcile", "status"];

/// Every metric family of src/metrics.rs, and the process collector's.
const FAMILIES: [&str; 24] = [
    "popsel_pop_rtt_seconds",
    "popsel_pop_loss_ratio",
    "popsel_pop_up",
    "popsel_probe_requests_total",
    "popsel_probe_responses_total",
    "popsel_probe_rtt_seconds",
    "popsel_pop_distance_meters",
    "popsel_pop_rank",
    "popsel_pop_score",
    "popsel_selected_pop_info",
    "popsel_selection_changes_total",
    "popsel_tunnel_status",
    "popsel_tunnel_up",
    "popsel_connector_status",
    "popsel_api_up",
    "popsel_api_requests_total",
    "popsel_api_request_duration_seconds",
    "popsel_catalog_pops",
    "popsel_catalog_skipped_entries",
    "popsel_catalog_last_update_timestamp_seconds",
    "popsel_stage_runs_total",
    "popsel_stage_failures_total",
    "popsel_stage_last_success_timestamp_seconds",
    "popsel_build_info",
];

/// Families only a probe round fills. Under `--no-probe` they have no series, and the
/// Prometheus client leaves a family without series out of the exposition altogether.
const PROBE_FAMILIES: [&str; 6] = [
    "popsel_pop_rtt_seconds",
    "popsel_pop_loss_ratio",
    "popsel_pop_up",
    "popsel_probe_requests_total",
    "popsel_probe_responses_total",
    "popsel_probe_rtt_seconds",
];

const PROCESS_FAMILIES: [&str; 7] = [
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

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

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A site's config in a temporary directory: "chicago" (local, primary and secondary) and
/// "frankfurt" (not local, primary only; a reload may add a secondary), short agent
/// intervals, metrics on a port the kernel picks, state in `state/`.
struct Site {
    dir: tempfile::TempDir,
    api_url: String,
}

impl Site {
    fn new(api_url: &str) -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("tempdir"),
            api_url: api_url.to_owned(),
        };
        let psk_file = site.path(PSK_FILE_CHI_2);
        std::fs::write(&psk_file, format!("{PSK_CHI_2}\n")).expect("write the PSK file");
        std::fs::set_permissions(&psk_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the PSK file");
        site.write_config(false);
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config_path(&self) -> PathBuf {
        self.path("popsel.toml")
    }

    fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    fn config_text(&self, extra_tunnel: bool) -> String {
        let mut text = format!(
            r#"[api]
base_url = {url}
timeout = "5s"

[dns]
# A closed port: the catalogue's names never reach a real resolver.
nameservers = ["127.0.0.1:9"]
timeout = "300ms"

[state]
dir = "state"

[[locations]]
name = "chicago"
location_id = "{CHICAGO_LOCATION_ID}"
latitude = 41.88
longitude = -87.63
local = true

[[locations.tunnels]]
name = "Chicago IPSec1"
role = "primary"
authentication_id = "chicago-primary@branch.example"
psk_env = "{PSK_ENV_CHI_1}"

[[locations.tunnels]]
name = "Chicago IPSec2"
role = "secondary"
authentication_id = "chicago-secondary@branch.example"
psk_file = "{PSK_FILE_CHI_2}"

[[locations]]
name = "frankfurt"
location_id = "{FRANKFURT_LOCATION_ID}"
latitude = 50.11
longitude = 8.68
local = false

[[locations.tunnels]]
name = "Frankfurt IPSec1"
role = "primary"
authentication_id = "203.0.113.10"
psk_env = "{PSK_ENV_FRA_1}"
"#,
            url = toml_str(&self.api_url),
        );
        if extra_tunnel {
            text.push_str(&format!(
                r#"
[[locations.tunnels]]
name = "{}"
role = "secondary"
authentication_id = "203.0.113.11"
psk_env = "{PSK_ENV_FRA_2}"
"#,
                EXTRA_TUNNEL.1
            ));
        }
        text.push_str(
            r#"
[agent]
catalog_interval = "2s"
probe_interval = "1s"
reconcile_interval = "1s"
status_interval = "1s"

[metrics]
listen = "127.0.0.1:0"
"#,
        );
        text
    }

    fn write_config(&self, extra_tunnel: bool) {
        std::fs::write(self.config_path(), self.config_text(extra_tunnel)).expect("write config");
    }

    /// `popsel run --config … --no-probe <args>`, with the token and the PSKs in its
    /// environment.
    fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = support::popsel();
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .arg("--no-probe")
            .args(args)
            .env("POPSEL_API_TOKEN", support::TOKEN)
            .env(PSK_ENV_CHI_1, PSK_CHI_1)
            .env(PSK_ENV_FRA_1, PSK_FRA_1)
            .env(PSK_ENV_FRA_2, PSK_FRA_2)
            .stdin(Stdio::null());
        for var in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// The agent as a child process, and the base URL of its metrics server.
    async fn start_agent(&self, args: &[&str]) -> (AgentProc, String) {
        let agent = AgentProc::spawn(self.run_command(args));
        let base = agent.metrics_base().await;
        (agent, base)
    }
}

// ---- the agent as a child process ----

/// A running `popsel` whose stdout and stderr are collected as they come. Dropping it kills
/// the process if it is still running.
struct AgentProc {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        }
    });
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl AgentProc {
    fn spawn(mut cmd: Command) -> AgentProc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn popsel");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), stdout.clone());
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        AgentProc {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The end of stderr, for failure messages.
    fn stderr_tail(&self) -> String {
        let text = self.stderr();
        let chars: Vec<char> = text.chars().collect();
        let start = chars.len().saturating_sub(6000);
        chars[start..].iter().collect()
    }

    /// Sends a signal with `kill -<name> <pid>`.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit, at most `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a line containing `needle` on `stream` and returns it.
    async fn wait_line(&self, stream: Stream, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match stream {
                Stream::Stdout => self.stdout(),
                Stream::Stderr => self.stderr(),
            };
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line containing {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL of the metrics server, from the "metrics on http://ADDR/metrics" log line.
    async fn metrics_base(&self) -> String {
        let line = self
            .wait_line(
                Stream::Stderr,
                "metrics on http://",
                Duration::from_secs(15),
            )
            .await;
        base_url_in(&line, "metrics on http://")
    }

    /// Scrapes `/metrics` until `ready` holds, at most `timeout`; panics with the last scrape
    /// and the agent's stderr otherwise.
    async fn scrape_until(
        &self,
        base: &str,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(scrape) = scrape(base).await {
                if ready(&scrape) {
                    return scrape;
                }
                last = Some(scrape);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {timeout:?}\nlast /metrics (without per-PoP and histogram lines):\n{}\nagent stderr:\n{}",
                    last.map_or("(no answer)".to_owned(), |s| s.summary()),
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for one full cycle: every stage ran, the tunnels exist and were polled, both
    /// locations have both roles selected, the catalogue and the connector are in.
    async fn first_cycle(&self, base: &str) -> Scrape {
        self.scrape_until(
            base,
            Duration::from_secs(15),
            "a full first cycle",
            first_cycle_done,
        )
        .await
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `http://ADDR` from a line holding `<prefix>ADDR/metrics`.
fn base_url_in(line: &str, prefix: &str) -> String {
    let at = line.find(prefix).expect("prefix in line") + prefix.len();
    let rest = &line[at..];
    let end = rest.find("/metrics").expect("/metrics after the address");
    format!("http://{}", &rest[..end])
}

fn first_cycle_done(s: &Scrape) -> bool {
    STAGES
        .iter()
        .all(|st| s.value("popsel_stage_runs_total", &[("stage", st)]) >= Some(1.0))
        && s.series("popsel_selected_pop_info", &[]).len() == 4
        && s.value("popsel_catalog_pops", &[]) == Some(52.0)
        && TUNNELS.iter().all(|(loc, t)| {
            s.value(
                "popsel_tunnel_status",
                &[("location", loc), ("tunnel", t), ("state", "Disconnected")],
            ) == Some(1.0)
        })
        && !s.series("popsel_connector_status", &[]).is_empty()
}

// ---- HTTP ----

fn http() -> reqwest::Client {
    // reqwest is built without a bundled crypto provider; plain http needs none, but building
    // a client wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("HTTP client")
}

/// GET `url`: the status, the Content-Type and the body, or why it failed.
async fn get(url: &str) -> Result<(u16, String, String), String> {
    let resp = http().get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((status, content_type, body))
}

async fn get_status(url: &str) -> Option<u16> {
    get(url).await.ok().map(|(status, _, _)| status)
}

async fn scrape(base: &str) -> Option<Scrape> {
    match get(&format!("{base}/metrics")).await {
        Ok((200, _, body)) => Some(Scrape::parse(body)),
        _ => None,
    }
}

/// `PUT` to the emulator's control API, with the token.
async fn sim_put(sim: &Sim, path: &str, body: Value) -> u16 {
    http()
        .put(format!("{}{path}", sim.url()))
        .bearer_auth(support::TOKEN)
        .json(&body)
        .send()
        .await
        .expect("PUT to the emulator")
        .status()
        .as_u16()
}

/// Waits for `f` to hold, at most `timeout`.
async fn until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- the Prometheus text format ----

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    /// Sorted by name, so that lookups do not depend on the order of the exposition.
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// One sample line: `name{a="x",b="y"} value [timestamp]`. Label values may hold commas,
/// spaces, braces and escaped quotes.
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut key = String::new();
        let mut value = String::new();
        let (mut in_value, mut escaped) = (false, false);
        let mut end = None;
        for (i, c) in body.char_indices() {
            if in_value {
                if escaped {
                    value.push(if c == 'n' { '\n' } else { c });
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    labels.insert(
                        std::mem::take(&mut key).trim().to_owned(),
                        std::mem::take(&mut value),
                    );
                    in_value = false;
                } else {
                    value.push(c);
                }
            } else {
                match c {
                    '}' => {
                        end = Some(i);
                        break;
                    }
                    '"' => in_value = true,
                    ',' | '=' => {}
                    c => key.push(c),
                }
            }
        }
        rest = &body[end? + 1..];
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// One scrape of `/metrics`.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let samples = text.lines().filter_map(parse_sample).collect();
        Scrape { text, samples }
    }

    /// The samples of `name` carrying every label of `labels` (others may be present).
    fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with `labels`; `None` when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.series(name, labels);
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series: {found:?}",
            found.len()
        );
        found.first().map(|s| s.value)
    }

    fn has_type_line(&self, family: &str) -> bool {
        let prefix = format!("# TYPE {family} ");
        self.text.lines().any(|l| l.starts_with(&prefix))
    }

    fn failures(&self, stage: &str) -> f64 {
        self.value("popsel_stage_failures_total", &[("stage", stage)])
            .unwrap_or(0.0)
    }

    /// The exposition without the long per-PoP and histogram lines, for failure messages.
    fn summary(&self) -> String {
        self.text
            .lines()
            .filter(|l| {
                !l.starts_with('#') && !l.starts_with("popsel_pop_") && !l.contains("_bucket{")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

// ---- emulator helpers ----

async fn sim_with_connector() -> Sim {
    let sim = support::start_sim(support::no_faults()).await;
    sim.with_store(|s| s.create_connector(&json!({ "name": CONNECTOR })))
        .expect("create the connector");
    sim
}

fn tunnel_id(sim: &Sim, name: &str) -> String {
    sim.with_store(|s| s.tunnels())
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("tunnel {name:?} is not in the emulator"))
        .id
}

fn tunnel_names(sim: &Sim) -> Vec<String> {
    let mut names: Vec<String> = sim
        .with_store(|s| s.tunnels())
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    names
}

fn sorted(names: &[(&str, &str)]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|(_, n)| (*n).to_owned()).collect();
    out.sort();
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- 1. the first cycle ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_cycle_exports_every_metric_family_with_the_expected_values() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let started = unix_now();
    let (agent, base) = site.start_agent(&[]).await;

    let s = agent.first_cycle(&base).await;

    // Every family has its TYPE line, except the ones only a probe round fills.
    for family in FAMILIES.iter().chain(&PROCESS_FAMILIES) {
        if PROBE_FAMILIES.contains(family) {
            assert!(
                !s.has_type_line(family) && s.series(family, &[]).is_empty(),
                "{family} has series although nothing was probed (--no-probe)"
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

    // Ranking and distance, per location: every PoP, rank 1 at distance 0, distance (m) and
    // score (km on a distance basis) agree, ranks follow distance.
    for (loc, best_prefix) in [
        ("chicago", "US/Chicago, Illinois/GCP"),
        ("frankfurt", "DE/Frankfurt/"),
    ] {
        let ranks = s.series("popsel_pop_rank", &[("location", loc)]);
        let distances = s.series("popsel_pop_distance_meters", &[("location", loc)]);
        assert_eq!(ranks.len(), 52, "{loc}: rank series");
        assert_eq!(distances.len(), 52, "{loc}: distance series");
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
        assert_eq!(by_rank[0].0, 1.0, "{loc}: best rank");
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
        for d in &distances {
            let score = s
                .value(
                    "popsel_pop_score",
                    &[("location", loc), ("pop", d.label("pop"))],
                )
                .expect("a score for every PoP on a distance basis");
            assert!(
                (score * 1000.0 - d.value).abs() < 1.0,
                "{loc} {d:?}: {score}"
            );
        }
    }
    // Chicago to Frankfurt is about 6 960 km: meters, not km.
    let chi_fra = s
        .value(
            "popsel_pop_distance_meters",
            &[("location", "chicago"), ("pop", "DE/Frankfurt/AWS")],
        )
        .expect("Chicago to Frankfurt");
    assert!((6.8e6..7.1e6).contains(&chi_fra), "{chi_fra}");

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
            let mut ids: Vec<String> = st.tunnels().into_iter().map(|t| t.id).collect();
            ids.extend(st.connectors().into_iter().map(|c| c.id));
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

// ---- 2. status changes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_in_the_emulator_show_on_the_next_poll() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    let id = tunnel_id(&sim, "Chicago IPSec1");
    let status = sim_put(
        &sim,
        &format!("/_sim/tunnels/{id}/status"),
        json!({ "status": "Connected" }),
    )
    .await;
    assert_eq!(status, 204);
    let connector = sim
        .with_store(|s| s.connectors())
        .into_iter()
        .find(|c| c.name == CONNECTOR)
        .expect("the connector")
        .id;
    let status = sim_put(
        &sim,
        &format!("/_sim/connectors/{connector}/status"),
        json!({ "status": "Available" }),
    )
    .await;
    assert_eq!(status, 204);

    let state = |s: &Scrape, tunnel: &str, state: &str| {
        s.value(
            "popsel_tunnel_status",
            &[("tunnel", tunnel), ("state", state)],
        )
    };
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(5),
            "Chicago IPSec1 Connected",
            |s| {
                state(s, "Chicago IPSec1", "Connected") == Some(1.0)
                    && s.value(
                        "popsel_connector_status",
                        &[("connector", CONNECTOR), ("state", "Available")],
                    ) == Some(1.0)
            },
        )
        .await;
    assert_eq!(state(&s, "Chicago IPSec1", "Disconnected"), Some(0.0));
    assert_eq!(state(&s, "Chicago IPSec1", "Unknown"), Some(0.0));
    assert_eq!(
        s.value(
            "popsel_tunnel_up",
            &[("location", "chicago"), ("tunnel", "Chicago IPSec1")]
        ),
        Some(1.0)
    );
    // The others are untouched.
    for t in ["Chicago IPSec2", "Frankfurt IPSec1"] {
        assert_eq!(state(&s, t, "Disconnected"), Some(1.0), "{t}");
        assert_eq!(s.value("popsel_tunnel_up", &[("tunnel", t)]), Some(0.0));
    }
    assert_eq!(
        s.value(
            "popsel_connector_status",
            &[("connector", CONNECTOR), ("state", "Pending")]
        ),
        Some(0.0)
    );

    // And back.
    let status = sim_put(
        &sim,
        &format!("/_sim/tunnels/{id}/status"),
        json!({ "status": "Disconnected" }),
    )
    .await;
    assert_eq!(status, 204);
    agent
        .scrape_until(
            &base,
            Duration::from_secs(5),
            "Chicago IPSec1 Disconnected again",
            |s| {
                state(s, "Chicago IPSec1", "Disconnected") == Some(1.0)
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(0.0)
            },
        )
        .await;
}

// ---- 3. the API goes away and comes back ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_outage_keeps_the_agent_serving_and_it_recovers_on_the_same_port() {
    let sim = sim_with_connector().await;
    let addr = sim.addr();
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    let before = agent.first_cycle(&base).await;
    let (catalog_before, reconcile_before) =
        (before.failures("catalog"), before.failures("reconcile"));

    sim.stop().await;

    // The API client retries a refused connection for several seconds before a stage gives
    // up, so the failures take a while to be counted; popsel_api_up drops at the first one.
    let mut pops_during_outage = Vec::new();
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(40),
            "catalogue and reconcile failures counted during the outage",
            |s| {
                pops_during_outage.push(s.value("popsel_catalog_pops", &[]));
                s.value("popsel_api_up", &[]) == Some(0.0)
                    && s.failures("catalog") > catalog_before
                    && s.failures("reconcile") > reconcile_before
            },
        )
        .await;
    assert!(
        pops_during_outage.iter().all(|p| *p == Some(52.0)),
        "the catalogue in use changed during the outage: {pops_during_outage:?}"
    );
    let refused: f64 = s
        .series(
            "popsel_api_requests_total",
            &[("code", "connection_refused")],
        )
        .iter()
        .map(|x| x.value)
        .sum();
    assert!(refused >= 1.0, "no refused request counted");
    assert!(agent.running(), "the agent exited during the outage");
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));
    assert_eq!(
        get_status(&format!("{base}/readyz")).await,
        Some(200),
        "a catalogue in hand keeps the agent ready"
    );

    // The API returns on the same port, with an empty account.
    let restarted_at = unix_now();
    let deadline = Instant::now() + Duration::from_secs(5);
    let sim2 = loop {
        let mut options = SimOptions::local(support::token());
        options.listen = addr;
        match Sim::start(options).await {
            Ok(sim) => break sim,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebinding {addr}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot restart the emulator on {addr}: {e}"),
        }
    };
    // A stage may be in the middle of a backoff wait of up to 10 s.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(40),
            "recovery: API up, catalogue refreshed, tunnels re-created",
            |s| {
                s.value("popsel_api_up", &[]) == Some(1.0)
                    && s.value(
                        "popsel_stage_last_success_timestamp_seconds",
                        &[("stage", "catalog")],
                    ) >= Some(restarted_at)
                    && tunnel_names(&sim2) == sorted(&TUNNELS)
            },
        )
        .await;
    assert_eq!(s.value("popsel_catalog_pops", &[]), Some(52.0));
    assert!(agent.running());
    // Re-created once each, no duplicates.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(tunnel_names(&sim2), sorted(&TUNNELS));
}

/// An agent that starts while the API is down uses the catalogue cached in the state dir by an
/// earlier run, and becomes ready on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_started_during_an_outage_uses_the_cached_catalogue() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let out = support::run(site.run_command(&["--once"])).await;
    assert!(out.status.success(), "{}", support::stderr(&out));
    let cached = site.state_dir().join("catalog.json");
    assert!(cached.is_file(), "no catalog.json after a cycle");
    let fetched_by_then = unix_now();
    sim.stop().await;

    let (agent, base) = site.start_agent(&[]).await;
    // The first fetch gives up after its retries, then the cache is used.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(35),
            "the cached catalogue in use, the failed fetch counted",
            // The stage puts the cached catalogue in place, then its failure is counted.
            |s| s.value("popsel_catalog_pops", &[]) == Some(52.0) && s.failures("catalog") >= 1.0,
        )
        .await;
    assert_eq!(s.value("popsel_api_up", &[]), Some(0.0));
    let fetched = s
        .value("popsel_catalog_last_update_timestamp_seconds", &[])
        .expect("catalogue timestamp");
    assert!(
        fetched > 0.0 && fetched <= fetched_by_then,
        "a cached catalogue keeps its fetch time: {fetched} > {fetched_by_then}"
    );
    agent
        .wait_line(
            Stream::Stderr,
            "using the cached catalogue",
            Duration::from_secs(1),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_status(&format!("{base}/readyz")).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready on the cached catalogue\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The selection is made from it.
    agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "a selection from the cached catalogue",
            |s| {
                s.value(
                    "popsel_selected_pop_info",
                    &[
                        ("location", "chicago"),
                        ("role", "primary"),
                        ("pop", "US/Chicago, Illinois/GCP"),
                    ],
                ) == Some(1.0)
            },
        )
        .await;
}

/// While the API is down, the status stage should fail (and stop reporting the last known
/// tunnel states as current) within a few status intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_reflected_in_tunnel_status_within_a_few_status_intervals() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;
    let id = tunnel_id(&sim, "Chicago IPSec1");
    assert_eq!(
        sim_put(
            &sim,
            &format!("/_sim/tunnels/{id}/status"),
            json!({ "status": "Connected" })
        )
        .await,
        204
    );
    let s = agent
        .scrape_until(&base, Duration::from_secs(5), "tunnel up", |s| {
            s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(1.0)
        })
        .await;
    let status_before = s.failures("status");

    sim.stop().await;

    // status_interval is 1 s: 10 s is plenty for a stage that cannot reach the API.
    agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "status failure counted and the tunnel no longer reported up",
            |s| {
                s.failures("status") > status_before
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(0.0)
            },
        )
        .await;
}

/// Tunnels deleted on the API (by hand, or an account reset) are re-created under new ids;
/// the status poll must follow the new ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_tunnels_are_polled_by_their_new_ids() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    // Three rounds of deletion: each leaves one more stale id per name, so that a wrong pick
    // is all but certain (a random pick of the right one for all three: 1 in 64).
    let mut seen: BTreeSet<String> = sim
        .with_store(|s| s.tunnels())
        .into_iter()
        .map(|t| t.id)
        .collect();
    for round in 0..3 {
        sim.with_store(|s| {
            for t in s.tunnels() {
                s.delete_tunnel(&t.id).expect("delete");
            }
        });
        until(
            Duration::from_secs(10),
            &format!("round {round}: tunnels re-created"),
            || {
                let now = sim.with_store(|s| s.tunnels());
                now.len() == TUNNELS.len() && now.iter().all(|t| !seen.contains(&t.id))
            },
        )
        .await;
        seen.extend(sim.with_store(|s| s.tunnels()).into_iter().map(|t| t.id));
    }
    sim.with_store(|s| {
        for t in s.tunnels() {
            s.set_tunnel_status(&t.id, popsel::atmos::TunnelState::Connected)
                .expect("set status");
        }
    });
    agent
        .scrape_until(
            &base,
            Duration::from_secs(8),
            "every re-created tunnel reported Connected",
            |s| {
                TUNNELS.iter().all(|(loc, t)| {
                    s.value("popsel_tunnel_up", &[("location", loc), ("tunnel", t)]) == Some(1.0)
                })
            },
        )
        .await;
}

// ---- 4. SIGTERM ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_promptly_and_leaves_selection_json() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    let sent = Instant::now();
    agent.signal("TERM");
    let status = agent
        .wait_exit(Duration::from_secs(6))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running 6 s after SIGTERM\nstderr:\n{}",
                agent.stderr_tail()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstderr:\n{}",
        agent.stderr_tail()
    );
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    assert!(agent.stderr().contains("shutting down"));
    assert!(
        get_status(&format!("{base}/healthz")).await.is_none(),
        "the metrics server outlived the process"
    );

    let text = std::fs::read_to_string(site.state_dir().join("selection.json"))
        .expect("selection.json in the state dir");
    let selection: Value = serde_json::from_str(&text).expect("selection.json is JSON");
    for loc in ["chicago", "frankfurt"] {
        for role in ["primary", "secondary"] {
            assert!(
                selection["locations"][loc][role]["choice"]["fqdn"].is_string(),
                "{loc} {role} in selection.json:\n{text}"
            );
        }
    }
    assert_eq!(
        selection["locations"]["chicago"]["primary"]["choice"]["pop"]["city"],
        "Chicago, Illinois"
    );
}

// ---- 5. SIGHUP ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_old_config_when_invalid_and_applies_a_valid_one() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (mut agent, base) = site.start_agent(&[]).await;
    agent.first_cycle(&base).await;

    // Garbage: reported, and the old config stays.
    std::fs::write(site.config_path(), "this is [not a config\n= at all").expect("write");
    agent.signal("HUP");
    let line = agent
        .wait_line(Stream::Stderr, "not reloaded", Duration::from_secs(5))
        .await;
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("config"), "{line}");
    assert!(
        line.contains(&site.config_path().display().to_string()),
        "the error does not name the file: {line}"
    );
    let runs_before = scrape(&base)
        .await
        .expect("metrics after a bad reload")
        .value("popsel_stage_runs_total", &[("stage", "reconcile")])
        .unwrap_or(0.0);
    // Still running the old config: the stages go on, the tunnels stay as they were.
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(8),
            "two more reconcile runs after the bad reload",
            |s| {
                s.value("popsel_stage_runs_total", &[("stage", "reconcile")])
                    >= Some(runs_before + 2.0)
            },
        )
        .await;
    assert!(agent.running());
    assert_eq!(s.series("popsel_tunnel_status", &[]).len(), 9);
    assert_eq!(s.failures("reconcile"), 0.0);
    assert_eq!(tunnel_names(&sim), sorted(&TUNNELS));

    // A valid config with a third tunnel for Frankfurt: applied.
    site.write_config(true);
    agent.signal("HUP");
    agent
        .wait_line(Stream::Stderr, "config reloaded", Duration::from_secs(5))
        .await;
    let mut all = TUNNELS.to_vec();
    all.push(EXTRA_TUNNEL);
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "the added tunnel created and polled",
            |s| {
                tunnel_names(&sim) == sorted(&all)
                    && s.value(
                        "popsel_tunnel_status",
                        &[
                            ("location", EXTRA_TUNNEL.0),
                            ("tunnel", EXTRA_TUNNEL.1),
                            ("state", "Disconnected"),
                        ],
                    ) == Some(1.0)
            },
        )
        .await;
    assert_eq!(s.series("popsel_tunnel_status", &[]).len(), 12);
    let id = tunnel_id(&sim, EXTRA_TUNNEL.1);
    assert!(
        sim.with_store(|st| st.tunnel_psk_is(&id, PSK_FRA_2))
            .expect("PSK check"),
        "the added tunnel does not carry its PSK"
    );
    assert!(agent.running());
}

/// A SIGHUP (logrotate, `systemctl reload`) while the first catalogue fetch is still retrying
/// must not kill the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_the_first_catalogue_fetch_does_not_kill_the_agent() {
    // An API URL where nothing listens: the first catalogue fetch keeps retrying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let site = Site::new(&format!("http://{closed}"));
    let (mut agent, base) = site.start_agent(&[]).await;
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));

    agent.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        agent.running(),
        "the agent died of SIGHUP: {:?}\nstderr:\n{}",
        agent.child.try_wait(),
        agent.stderr_tail()
    );
    assert_eq!(get_status(&format!("{base}/healthz")).await, Some(200));
}

// ---- 6. --once and JSON logs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_zero_after_one_cycle() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let started = Instant::now();
    let out = support::run(site.run_command(&["--once"])).await;
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr.contains("metrics on http://"), "{stderr}");
    assert!(!stderr.contains("stage failed"), "{stderr}");
    assert_eq!(tunnel_names(&sim), sorted(&TUNNELS));
    assert!(site.state_dir().join("selection.json").is_file());
    assert!(site.state_dir().join("tunnels.json").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_makes_every_stderr_line_a_json_object() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let out = support::run(site.run_command(&["--once", "--log-format", "json"])).await;
    let stderr = support::stderr(&out);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    let mut messages = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr:\n{stderr}"));
        assert!(v.is_object(), "{line}");
        assert!(v["level"].is_string(), "no level: {line}");
        assert!(v["timestamp"].is_string(), "no timestamp: {line}");
        if let Some(m) = v["fields"]["message"].as_str() {
            messages.push(m.to_owned());
        }
    }
    assert!(
        messages.iter().any(|m| m.starts_with("metrics on http://")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("selection changed")),
        "{messages:?}"
    );
}

// ---- 7. the demo ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_metrics_until_sigterm() {
    let mut cmd = support::popsel();
    cmd.args(["demo", "--metrics-listen", "127.0.0.1:0"]);
    let mut demo = AgentProc::spawn(cmd);
    let line = demo
        .wait_line(
            Stream::Stdout,
            "Metrics on http://",
            Duration::from_secs(30),
        )
        .await;
    assert!(line.trim_end().ends_with("(Ctrl-C to stop)"), "{line}");
    let base = base_url_in(&line, "Metrics on http://");
    let s = scrape(&base).await.expect("the demo's /metrics");
    assert!(
        !s.series("popsel_selected_pop_info", &[]).is_empty(),
        "{}",
        s.summary()
    );
    assert_eq!(s.value("popsel_catalog_pops", &[]), Some(52.0));
    assert_eq!(
        s.value(
            "popsel_selected_pop_info",
            &[("location", "chicago"), ("role", "primary")]
        ),
        Some(1.0)
    );

    demo.signal("TERM");
    let status = demo
        .wait_exit(Duration::from_secs(6))
        .await
        .expect("the demo exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\nstderr:\n{}",
        demo.stderr_tail()
    );
    let state = std::env::temp_dir().join(format!("popsel-demo-{}", demo.pid()));
    assert!(!state.exists(), "the demo left {}", state.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_once_exits_zero_and_shows_the_tunnels() {
    let mut cmd = support::popsel();
    cmd.args(["demo", "--once"]);
    let out = support::run(cmd).await;
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for tunnel in ["Chicago IPSec1", "Chicago IPSec2", "Frankfurt IPSec1"] {
        assert!(stdout.contains(tunnel), "{tunnel} missing:\n{stdout}");
    }
    assert!(!stdout.contains("(not created)"), "{stdout}");
    assert!(!stdout.contains("Metrics on"), "{stdout}");
}

// ---- 8. promtool ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_accepts_the_exposition() {
    let available = match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("promtool --version failed: {:?}", o.status)),
        Err(e) => Err(format!("promtool is not on PATH: {e}")),
    };
    if !support::can_run_privileged(available) {
        return;
    }
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    let s = agent.first_cycle(&base).await;

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- 9. secrets ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak_to_output_metrics_or_state() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    // Debug logs: the most the agent ever says.
    let mut cmd = site.run_command(&[]);
    cmd.env("POPSEL_LOG", "debug");
    let mut agent = AgentProc::spawn(cmd);
    let base = agent.metrics_base().await;
    agent.first_cycle(&base).await;

    // Exercise more paths: a status change, a reload that adds a tunnel (a fourth PSK pushed),
    // a reload with a broken config.
    let id = tunnel_id(&sim, "Chicago IPSec1");
    sim_put(
        &sim,
        &format!("/_sim/tunnels/{id}/status"),
        json!({ "status": "Connected" }),
    )
    .await;
    site.write_config(true);
    agent.signal("HUP");
    let mut all = TUNNELS.to_vec();
    all.push(EXTRA_TUNNEL);
    let s = agent
        .scrape_until(
            &base,
            Duration::from_secs(10),
            "four tunnels created and polled",
            |s| {
                tunnel_names(&sim) == sorted(&all)
                    && s.value(
                        "popsel_tunnel_status",
                        &[("tunnel", EXTRA_TUNNEL.1), ("state", "Disconnected")],
                    ) == Some(1.0)
                    && s.value("popsel_tunnel_up", &[("tunnel", "Chicago IPSec1")]) == Some(1.0)
            },
        )
        .await;
    std::fs::write(site.config_path(), "[api]\nbase_url = 42\n").expect("write");
    agent.signal("HUP");
    agent
        .wait_line(Stream::Stderr, "not reloaded", Duration::from_secs(5))
        .await;
    let (_, _, healthz) = get(&format!("{base}/healthz")).await.expect("healthz");
    let (_, _, readyz) = get(&format!("{base}/readyz")).await.expect("readyz");

    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(6)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    // The reader threads drain the pipes once the process is gone.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), agent.stdout().into_bytes()),
        ("stderr".into(), agent.stderr().into_bytes()),
        ("/metrics".into(), s.text.clone().into_bytes()),
        ("/healthz".into(), healthz.into_bytes()),
        ("/readyz".into(), readyz.into_bytes()),
    ];
    let state_files = files_under(&site.state_dir());
    for name in [
        "selection.json",
        "tunnels.json",
        "catalog.json",
        "audit.log",
        "fingerprint.key",
    ] {
        assert!(
            state_files.iter().any(|(p, _)| p.ends_with(name)),
            "{name} not in the state dir: {:?}",
            state_files.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
    }
    places.extend(
        state_files
            .into_iter()
            .map(|(p, bytes)| (p.display().to_string(), bytes)),
    );
    assert!(
        places[1].1.len() > 1000,
        "suspiciously little debug output: {}",
        String::from_utf8_lossy(&places[1].1)
    );
    for (place, bytes) in &places {
        for secret in SECRETS {
            assert!(
                !contains_bytes(bytes, secret.as_bytes()),
                "a secret ({}…) leaked into {place}",
                &secret[..6]
            );
        }
    }
}
