//! Fuzz targets: everything popsel parses from the network or the disk, one function per input,
//! each taking arbitrary bytes and feeding them through the real parsing path and on through
//! the stages that use what was parsed. None may panic, whatever the bytes.
//!
//! Two harnesses call the same functions: the coverage-guided one in `fuzz/` (libFuzzer through
//! cargo-fuzz, its own crate, run by hand for hours) and the bounded run of the test suite
//! (`fuzz_tests.rs`: the committed corpus `fuzz/corpus/<target>/` replayed, then hostile
//! documents from proptest). [`TARGETS`] lists them by the name both use.
//!
//! The state files are read from a scratch state dir and the API is a loopback server of this
//! module (`fuzz::loopback`), so that the pipeline reads them as the agent does: nothing here talks
//! to anything but 127.0.0.1, and nothing is written outside [`scratch_dir`].

// Harness code, not the agent's: its setup (a loopback port, a scratch dir, a runtime) failing
// is the harness's failure, and a target reports a bug by panicking.
#![allow(clippy::expect_used, clippy::panic)]

mod loopback;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use crate::atmos::types::{ConnectorStatus, InstallCommand, Page, PopDocument, TunnelStatus};
use crate::atmos::{
    Client, ClientConfig, Connector, Resource, RetryPolicy, StateSet, Tunnel, TunnelSpec,
    TunnelUpdate, parse_retry_after,
};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::{
    Generation, Mode, Notice, Pipeline, ProberSlot, Report, SELECTION_FILE, StageError,
};
use crate::reconcile::managed::{AuditEntry, MANAGED_FILE};
use crate::reconcile::{plan_json, plan_text};
use crate::schedule::Stage;

pub use loopback::Answer;

/// A fuzz target: any bytes, and it must not panic.
pub type Target = fn(&[u8]);

/// Every target by name: `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("catalog", catalog),
    ("config", config),
    ("selection_file", selection_file),
    ("managed_file", managed_file),
    ("catalog_cache_file", catalog_cache_file),
    ("audit_log", audit_log),
    ("api_response", api_response),
    ("client_answer", client_answer),
    ("retry_after", retry_after),
    ("vici_frame", vici_frame),
];

/// The API token and PSK of the fuzzed client: neither may ever show in an error.
pub const TOKEN: &str = "fuzz-token-8c1e5f";
pub const PSK: &str = "fuzz-psk-2b7d90aa";
/// The PSK every tunnel of the demo site gets (its `psk_env`).
const DEMO_PSK_ENV: &str = "DEMO_PSK";

/// Where the targets keep their state dirs: one directory per process, removed by nobody but
/// the caller (the tests remove it when done).
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("popsel-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the fuzz scratch dir can be created");
        dir
    })
}

/// A state dir of its own for `target`, emptied of what the last input left.
fn state_dir(target: &str) -> PathBuf {
    let dir = scratch_dir().join(target);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// A client of `base` (a loopback server of [`account`]) that tries once: a fuzz input is one
/// exchange, not a backoff.
fn client(base: &str) -> Client {
    let mut config = ClientConfig::new(base, SecretString::from(TOKEN));
    config.retry = RetryPolicy::none();
    config.timeout = Duration::from_secs(10);
    Client::new(config).expect("a loopback client can be built")
}

/// Notices are formatted (their text is part of what must not panic) and dropped, but for a
/// stage's panic: the agent survives it by design (`Pipeline::run_job` catches it), which would
/// hide it from both harnesses, so it is raised again here.
struct Quiet;

impl Report for Quiet {
    fn notice(&self, notice: Notice) {
        if let Notice::StageFailed {
            stage,
            error: StageError::Panicked(message),
        } = &notice
        {
            panic!("the {stage:?} stage panicked: {message}");
        }
        let _ = notice.to_string();
    }
}

/// The demo site (`config/demo-site.toml`) as a validated config, every PSK [`PSK`].
fn demo_config() -> Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let text = include_str!("../config/demo-site.toml");
            let env = |name: &str| (name == DEMO_PSK_ENV).then(|| PSK.to_owned());
            Config::parse_with(text, "demo-site.toml", scratch_dir(), &env)
                .expect("the demo site is a valid config")
        })
        .clone()
}

/// A pipeline over `config` in the state dir `state`, talking to the fixed account.
fn pipeline(mut config: Config, state: &Path, mode: Mode) -> Option<Pipeline> {
    config.state_dir = state.to_owned();
    let generation =
        Generation::new(config, loopback::client_of_account().clone(), false, &Quiet).ok()?;
    Pipeline::new(generation, ProberSlot::none(), mode, Box::new(Quiet)).ok()
}

/// `popsel plan` over `pipeline`: catalogue, survey (no DNS, no ICMP), rank, select, the
/// reconcile plan against the account; its outputs rendered.
fn plan(pipeline: &Pipeline, prune: bool) {
    if let Ok(planned) = runtime().block_on(pipeline.plan(prune)) {
        let _ = plan_text(&planned.tunnels.plan, None);
        let _ = plan_json(&planned.tunnels.plan);
        let _ = serde_json::to_vec(&planned.decision.selection);
    }
}

/// The IPsec PoP catalogue: as the API sends it (bytes) and as a file (text), then ranked and
/// selected from the demo site's locations (latency from synthetic probes for the local one,
/// distance for the other). The text read straight (`Catalog::from_json`, by its hand reader
/// of the documented shape or its lenient one) must give what the document gives: the same
/// catalogue, or the same error.
pub fn catalog(data: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<PopDocument>(data) {
        use_catalog(&Catalog::from_document(&doc));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let straight = Catalog::from_json(text).map_err(|e| e.to_string());
        let through_document = serde_json::from_str::<PopDocument>(text)
            .map(|doc| Catalog::from_document(&doc))
            .map_err(|e| e.to_string());
        assert_eq!(
            straight, through_document,
            "Catalog::from_json differs from the document"
        );
    }
}

fn use_catalog(catalog: &Catalog) {
    let config = demo_config();
    let _ = serde_json::to_vec(catalog);
    loopback::rank_and_select(&config, catalog);
}

/// The config file, and what comes through its environment and PSK files: the bytes are the
/// TOML text, then after a NUL byte the value of every environment variable, then after
/// another the content of the file `psk` beside it (mode 600; `psk-open` beside it is
/// world-readable, `token` holds a token). A valid config is planned against the account.
pub fn config(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let env_value = parts
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let psk_file = parts.next().unwrap_or(b"psk-from-file-1");
    let base = state_dir("config");
    if !loopback::write_config_files(&base, psk_file) {
        return;
    }
    let env = |_: &str| env_value.clone();
    let Ok(config) = Config::parse_with(&text, "fuzz.toml", &base, &env) else {
        return;
    };
    let _ = config.tunnels().count();
    if let Some(pipeline) = pipeline(config, &base.join("state"), Mode::OneShot) {
        plan(&pipeline, true);
    }
}

/// `selection.json` as the pipeline reads it at start, then one plan (rank → select with it
/// as the previous selection and its anti-flap evidence).
pub fn selection_file(data: &[u8]) {
    let state = state_dir("selection");
    if std::fs::write(state.join(SELECTION_FILE), data).is_err() {
        return;
    }
    if let Some(pipeline) = pipeline(demo_config(), &state, Mode::OneShot) {
        plan(&pipeline, false);
    }
}

/// `tunnels.json` as the reconcile stage reads it: the managed tunnels, those gone from the
/// account forgotten, then the plan (with pruning) against the account.
pub fn managed_file(data: &[u8]) {
    let state = state_dir("managed");
    if std::fs::write(state.join(MANAGED_FILE), data).is_err() {
        return;
    }
    if let Some(pipeline) = pipeline(demo_config(), &state, Mode::OneShot) {
        plan(&pipeline, true);
    }
}

/// `catalog.json`, the agent's cache of the last good catalogue, as the catalogue stage reads
/// it when the API is down; then the probe stage over it and the metrics it exported.
pub fn catalog_cache_file(data: &[u8]) {
    static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
    let metrics = METRICS.get_or_init(|| Arc::new(Metrics::new()));
    let state = state_dir("catalog_cache");
    if std::fs::write(state.join("catalog.json"), data).is_err() {
        return;
    }
    let mut config = demo_config();
    config.state_dir = state.clone();
    let Ok(generation) = Generation::new(
        config,
        loopback::client_of_down_api().clone(),
        false,
        &Quiet,
    ) else {
        return;
    };
    let mode = Mode::Agent(metrics.clone());
    if let Ok(pipeline) = Pipeline::new(generation, ProberSlot::none(), mode, Box::new(Quiet)) {
        runtime().block_on(pipeline.run_job(&[Stage::Catalog, Stage::Probe]));
        let _ = metrics.encode();
    }
}

/// `audit.log` (`reconcile::managed::AUDIT_FILE`): one JSON document a line.
pub fn audit_log(data: &[u8]) {
    for line in String::from_utf8_lossy(data).lines() {
        if let Ok(entry) = serde_json::from_str::<AuditEntry>(line) {
            let _ = serde_json::to_string(&entry);
        }
    }
}

/// Every type the client decodes, as the body of an answer: the first byte picks the type.
pub fn api_response(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let decoders: [fn(&[u8]); 8] = [
        tunnel_page,
        connector_page,
        |b| decoded::<Tunnel>(b),
        |b| decoded::<Connector>(b),
        |b| status::<TunnelStatus, _>(b, |s| s.status.as_str()),
        |b| status::<ConnectorStatus, _>(b, |s| s.status.as_str()),
        |b| decoded::<InstallCommand>(b),
        pop_document,
    ];
    decoders[usize::from(kind) % decoders.len()](body);
}

fn decoded<T: serde::de::DeserializeOwned + serde::Serialize>(body: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        let _ = serde_json::to_vec(&value);
    }
}

fn status<T: serde::de::DeserializeOwned, S>(body: &[u8], state: impl Fn(&T) -> S) {
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        let _ = state(&value);
    }
}

/// `GET /tunnels`: a page, its tunnels de-duplicated as the client lists them, and the
/// managed tunnels missing from it noted (and forgotten after enough listings).
fn tunnel_page(body: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<Page<Tunnel>>(body) {
        let keys: Vec<&str> = page.data.iter().map(Resource::list_key).collect();
        let _ = keys;
        let mut managed = loopback::managed();
        let _ = managed.note_listing(&page.data);
        let _ = managed.id_of("Chicago IPSec1");
    }
}

fn connector_page(body: &[u8]) {
    if let Ok(page) = serde_json::from_slice::<Page<Connector>>(body) {
        let _: Vec<&str> = page.data.iter().map(Resource::list_key).collect();
        let _ = serde_json::to_vec(&page);
    }
}

fn pop_document(body: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<PopDocument>(body) {
        use_catalog(&Catalog::from_document(&doc));
    }
}

/// The client's own handling of an answer, over HTTP from a loopback server: the first byte
/// picks the call, the next two the status code (200 to 599), then a `Retry-After` value up to
/// the first newline (sent when it is a valid header value, empty: none), then the body. The
/// error must not quote the token, nor the PSK of a create or update, whatever the server
/// echoes.
pub fn client_answer(data: &[u8]) {
    let Some(answer) = Answer::from_bytes(data) else {
        return;
    };
    let result = loopback::call_answered(&answer);
    if let Err(error) = result {
        let text = format!("{error} {error:?}");
        assert!(!text.contains(TOKEN), "the token leaked into an error");
        // Only a call that sends the PSK knows it; to any other it is text like any other.
        let sends_psk = matches!(answer.call, Call::CreateTunnel | Call::UpdateTunnel);
        assert!(
            !(sends_psk && text.contains(PSK)),
            "a PSK leaked into an error"
        );
        let _ = error.retry_after();
    }
}

/// What charon sends over the VICI socket, as the client reads it: frames cut from a byte
/// stream, each decoded as a packet, and every section of an event read as an IKE_SA (as
/// `list-sas` does) and of a response as its fields.
pub fn vici_frame(data: &[u8]) {
    use crate::edge::vici::IkeSa;
    use crate::edge::vici::message::{FrameDecoder, Packet};
    let mut decoder = FrameDecoder::default();
    decoder.push(data);
    while let Ok(Some((packet, _))) = decoder.next_packet() {
        let _ = format!("{packet:?}");
        match packet {
            Packet::Event { message, .. } => {
                for (name, sa) in message.sections() {
                    if let Ok(sa) = IkeSa::from_vici(name, sa) {
                        let _ = (sa.is_established(), sa.installed_child(&sa.name));
                    }
                }
            }
            Packet::CmdResponse(message) => {
                let _ = (message.get_text("success"), message.get_texts("errmsg"));
            }
            _ => {}
        }
    }
}

/// `Retry-After` as the client parses it: the first 8 bytes are the clock (seconds since the
/// epoch), the rest the header value; the wait then goes through the retry policy.
pub fn retry_after(data: &[u8]) {
    let (clock, value) = data.split_at(data.len().min(8));
    let mut secs = [0u8; 8];
    secs[..clock.len()].copy_from_slice(clock);
    let now = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::from_le_bytes(secs)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let value = String::from_utf8_lossy(value);
    let wait = parse_retry_after(&value, now);
    let policy = RetryPolicy::default();
    for attempts in [1, 3, 8] {
        let _ = policy.next_delay(attempts, Duration::from_secs(1), wait, 0.5);
    }
}

/// The calls [`client_answer`] makes, by the first byte of its input.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    GetTunnel,
    ListTunnels,
    TunnelStatus,
    GetConnector,
    ListConnectors,
    ConnectorStatus,
    Regenerate,
    IpsecPops,
    DeleteTunnel,
    CreateTunnel,
    UpdateTunnel,
}

impl Call {
    const ALL: [Call; 11] = [
        Call::GetTunnel,
        Call::ListTunnels,
        Call::TunnelStatus,
        Call::GetConnector,
        Call::ListConnectors,
        Call::ConnectorStatus,
        Call::Regenerate,
        Call::IpsecPops,
        Call::DeleteTunnel,
        Call::CreateTunnel,
        Call::UpdateTunnel,
    ];

    /// Makes the call; what it returned is used, or the error returned.
    async fn make(self, client: &Client) -> Result<(), crate::atmos::ApiError> {
        let psk = || SecretString::from(PSK);
        match self {
            Call::GetTunnel => client.get::<Tunnel>("t-1").await.map(drop),
            Call::ListTunnels => client.list::<Tunnel>().await.map(drop),
            Call::TunnelStatus => client
                .status::<Tunnel>("t-1")
                .await
                .map(|s| named(s.status)),
            Call::GetConnector => client.get::<Connector>("c-1").await.map(drop),
            Call::ListConnectors => client.list::<Connector>().await.map(drop),
            Call::ConnectorStatus => client
                .status::<Connector>("c-1")
                .await
                .map(|s| named(s.status)),
            Call::Regenerate => client.regenerate_connector("c-1").await.map(drop),
            Call::IpsecPops => client
                .ipsec_pops()
                .await
                .map(|doc| use_catalog(&Catalog::from_document(&doc))),
            Call::DeleteTunnel => client.delete::<Tunnel>("t-1").await,
            Call::CreateTunnel => {
                let spec = TunnelSpec {
                    name: "Chicago IPSec1".into(),
                    authentication_id: "chicago-primary@branch.example".into(),
                    psk: psk(),
                    location_id: "d88fc23a-59a1-476a-a62e-a51ff3543fe7".into(),
                };
                client.create_tunnel(&spec).await.map(drop)
            }
            Call::UpdateTunnel => {
                let update = TunnelUpdate {
                    psk: Some(psk()),
                    ..TunnelUpdate::default()
                };
                client.update_tunnel("t-1", &update).await
            }
        }
    }
}

fn named<S: StateSet>(state: S) {
    let _ = state.as_str();
}

#[cfg(test)]
#[path = "fuzz_tests.rs"]
mod tests;
