//! What the crash-consistency tests need: a proxy in front of the emulator that logs each API
//! write (when it came, when the emulator carried it out, when its answer went back) and can
//! hold a write's answer after the emulator carried it out, so that a kill lands between the
//! API's change and popsel learning of it; and a look at a state dir after a kill: which PSK
//! `tunnels.json` says was pushed, what was left half-written, what does not parse.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::proxy::{pass_on, serve};
use popsel::reconcile::{Fingerprinter, ManagedTunnels};
use secrecy::SecretString;

/// One API write as the proxy saw it.
#[derive(Debug, Clone)]
pub struct WriteSeen {
    pub method: String,
    pub path: String,
    pub started: Instant,
    /// When the emulator answered, and its status: the write was carried out if 2xx (or, for
    /// an injected 500, maybe: the emulator carries half of them out).
    pub carried: Option<(Instant, u16)>,
    /// When the answer went back to popsel; `None`: it never did (popsel was killed first).
    pub delivered: Option<Instant>,
}

impl WriteSeen {
    /// Started before `at` and not yet answered to popsel at `at`.
    pub fn in_flight_at(&self, at: Instant) -> bool {
        self.started <= at && self.delivered.is_none_or(|d| d > at)
    }

    /// Carried out by the emulator (2xx) before `at`, its answer not delivered by then.
    pub fn done_unanswered_at(&self, at: Instant) -> bool {
        self.in_flight_at(at)
            && self
                .carried
                .is_some_and(|(when, status)| when <= at && (200..300).contains(&status))
    }
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    writes: Arc<Mutex<Vec<WriteSeen>>>,
    hold_ms: Arc<AtomicU64>,
    /// 0, or the status every write is answered with once the emulator carried it out.
    replace_status: Arc<AtomicU64>,
}

/// A real HTTP server on 127.0.0.1 port 0 forwarding everything to the emulator, logging the
/// writes and holding each write's answer for [`WriteProxy::hold`] after the emulator
/// answered.
pub struct WriteProxy {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteProxy {
    pub async fn start(upstream: &str) -> WriteProxy {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: super::http(),
            writes: Arc::default(),
            hold_ms: Arc::default(),
            replace_status: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let (url, task) = serve(app).await;
        WriteProxy { url, shared, task }
    }

    /// Each write's answer waits this long after the emulator's.
    pub fn hold(&self, hold: Duration) {
        let ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        self.shared.hold_ms.store(ms, Ordering::SeqCst);
    }

    /// Each write is carried out by the emulator, then answered with `status` (a 500: a proxy
    /// timing out in front of a slow backend), until `None`.
    pub fn answer_writes_with(&self, status: Option<u16>) {
        let status = status.map_or(0, u64::from);
        self.shared.replace_status.store(status, Ordering::SeqCst);
    }

    /// Waits for the first write that started after `since` to start (`answered` false) or
    /// for its answer to go back to popsel (`answered` true), at most until `deadline`; when
    /// it did, if it did.
    pub async fn first_write(
        &self,
        since: Instant,
        answered: bool,
        deadline: Instant,
    ) -> Option<Instant> {
        loop {
            let seen = lock(&self.shared.writes)
                .iter()
                .filter(|w| w.started >= since)
                .find_map(|w| {
                    if answered {
                        w.delivered
                    } else {
                        Some(w.started)
                    }
                });
            if seen.is_some() || Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<WriteSeen> {
        lock(&self.shared.writes).clone()
    }
}

impl Drop for WriteProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let is_write = [Method::POST, Method::PUT, Method::DELETE].contains(&parts.method)
        && parts.uri.path().starts_with("/api/");
    let seen = is_write.then(|| {
        let mut writes = lock(&shared.writes);
        writes.push(WriteSeen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            started: Instant::now(),
            carried: None,
            delivered: None,
        });
        writes.len() - 1
    });
    let mut answer = match pass_on(&shared.client, &shared.upstream, &parts, body).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if let Some(i) = seen {
        lock(&shared.writes)[i].carried = Some((Instant::now(), answer.status.as_u16()));
        let hold = shared.hold_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(hold)).await;
        let replaced = u16::try_from(shared.replace_status.load(Ordering::SeqCst)).ok();
        if let Some(code) = replaced.and_then(|c| StatusCode::from_u16(c).ok()) {
            answer.status = code;
            answer.body =
                axum::body::Bytes::from_static(b"{\"message\": \"injected by the proxy\"}");
        }
        lock(&shared.writes)[i].delivered = Some(Instant::now());
    }
    answer.into_response()
}

/// What a look at a state dir found.
#[derive(Debug, Default)]
pub struct StateCheck {
    /// Files that do not parse as what popsel writes, and why.
    pub unparsable: Vec<String>,
    /// Files set aside as damaged (`*.corrupt-*`).
    pub set_aside: Vec<String>,
    /// Temporary files of atomic writes that never finished (`.<name>.<pid>.<hex>.tmp`).
    pub temporary: Vec<String>,
    /// Audit log lines.
    pub audit_lines: usize,
}

/// Looks at every file of the state dir: each must be what popsel writes, whole.
pub fn check_state_dir(dir: &Path) -> StateCheck {
    let mut check = StateCheck::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return check;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    check.temporary = temporaries(dir);
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
        if name.contains(".corrupt-") {
            check.set_aside.push(name);
            continue;
        }
        if name.starts_with('.') && name.ends_with(".tmp") {
            continue;
        }
        let problem = match name.as_str() {
            "tunnels.json" | "selection.json" | "catalog.json" => {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .err()
                    .map(|e| e.to_string())
            }
            "fingerprint.key" => (bytes.len() != popsel::state::SECRET_KEY_BYTES)
                .then(|| format!("{} bytes", bytes.len())),
            "popsel.lock" => {
                let text = String::from_utf8_lossy(&bytes);
                (!text.trim().is_empty() && text.trim().parse::<u32>().is_err())
                    .then(|| format!("not a PID: {text:?}"))
            }
            audit if audit.starts_with("audit.log") => {
                let text = String::from_utf8_lossy(&bytes);
                check.audit_lines += text.lines().count();
                let torn = !text.is_empty() && !text.ends_with('\n');
                let bad = text
                    .lines()
                    .find(|l| serde_json::from_str::<serde_json::Value>(l).is_err());
                match (torn, bad) {
                    (true, _) => Some("its last line is cut".to_owned()),
                    (false, Some(line)) => Some(format!("a line is not JSON: {line:?}")),
                    (false, None) => None,
                }
            }
            _ => Some("a file popsel does not write".to_owned()),
        };
        if let Some(problem) = problem {
            check.unparsable.push(format!("{name}: {problem}"));
        }
    }
    check
}

/// The temporary files of atomic writes in `dir` that never finished
/// (`.<name>.<pid>.<hex>.tmp`).
pub fn temporaries(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

/// The secrets of the swanctl files popsel wrote in `dir`, all locations together.
pub fn swanctl_secrets(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("-secrets.conf"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// A PSK as the swanctl secrets hold it.
pub fn swanctl_secret(psk: &str) -> String {
    let hex: String = psk.bytes().map(|b| format!("{b:02x}")).collect();
    format!("secret = 0x{hex}\n")
}

/// Which of `candidates` (a tunnel's PSKs, oldest first) `tunnels.json` says popsel last
/// pushed to each tunnel, by name: `None` when it records none of them (no record, or the
/// PSK is to be pushed again).
pub fn recorded_psks(
    dir: &Path,
    candidates: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Option<String>> {
    let key = std::fs::read(dir.join("fingerprint.key")).unwrap_or_default();
    let managed: ManagedTunnels = std::fs::read(dir.join("tunnels.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let fingerprints = Fingerprinter::new(&key);
    candidates
        .iter()
        .map(|(name, psks)| {
            let record = managed.tunnels.values().find(|m| &m.name == name);
            let pushed = record
                .filter(|m| m.psk_record_lost.is_none())
                .and_then(|m| {
                    psks.iter()
                        .rev()
                        .find(|psk| {
                            let psk = SecretString::from(psk.to_string());
                            !key.is_empty() && fingerprints.fingerprint(&psk) == m.psk_fingerprint
                        })
                        .cloned()
                });
            (name.clone(), pushed)
        })
        .collect()
}
