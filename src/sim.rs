//! `popsel sim`: an emulator of the Atmos Cloud admin API, for tests, demos and trying popsel
//! without an account.
//!
//! It behaves as `../shared/atmos-api/` says: Bearer auth, the documented validation rules and
//! conflicts, paging with page URLs, tunnel and connector status, the IPsec PoP catalogue from a
//! file. Faults (500s, 429s with `Retry-After`, delay) can be injected to prove that clients
//! cope. A control API under `/_sim` sets statuses, swaps the catalogue, changes faults and
//! counts the API requests received (see the README).
//!
//! Stored PSKs never leave the emulator, except to the IPsec lab when it is started with
//! [`SimOptions::expose_psks_for_lab`] (`popsel sim --expose-psks-for-lab`): the lab's PoP
//! responders must accept a tunnel with the PSK popsel provisioned, as Atmos does.

mod routes;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http_server::{self, Limits};

pub use store::{Collection, Emulated, MAX_PAGE_SIZE, PageRequest, Rejection, Store};

/// The sample catalogue shipped in `config/`, built in so that the emulator and the demo run
/// anywhere.
pub const SAMPLE_CATALOG: &str = include_str!("../config/catalog.sample.json");

/// What goes wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of API requests answered with 500 (half of them after carrying the request out).
    pub fail_rate: f64,
    /// Share of API requests answered with 429 and `Retry-After`.
    pub throttle_rate: f64,
    /// Added to every API request.
    pub delay_ms: u64,
    /// The `Retry-After` of a 429, in seconds.
    pub retry_after_secs: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_rate: 0.0,
            throttle_rate: 0.0,
            delay_ms: 0,
            retry_after_secs: 1,
        }
    }
}

/// Faults that cannot be injected as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFaults {
    #[error("fail_rate and throttle_rate are shares from 0 to 1")]
    NotAShare,
    #[error("fail_rate + throttle_rate must not exceed 1")]
    SharesAbove1,
}

impl Faults {
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let share = |v: f64| (0.0..=1.0).contains(&v);
        if !share(self.fail_rate) || !share(self.throttle_rate) {
            return Err(InvalidFaults::NotAShare);
        }
        if self.fail_rate + self.throttle_rate > 1.0 {
            return Err(InvalidFaults::SharesAbove1);
        }
        Ok(())
    }
}

pub struct SimOptions {
    pub listen: SocketAddr,
    pub token: SecretString,
    /// The PoP catalogue document, served as is.
    pub catalog: Value,
    pub faults: Faults,
    /// Serves each tunnel's stored PSK at `GET /_sim/tunnels/{id}/psk` (token required), for
    /// the IPsec lab's PoP responders only. Off unless asked for: everywhere else a PSK is
    /// write-only, as in Atmos.
    pub expose_psks_for_lab: bool,
}

impl SimOptions {
    /// On 127.0.0.1, a port the kernel picks, the sample catalogue, no faults, PSKs kept in.
    pub fn local(token: SecretString) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token,
            catalog: sample_catalog(),
            faults: Faults::default(),
            expose_psks_for_lab: false,
        }
    }
}

pub fn sample_catalog() -> Value {
    // The sample is checked by a unit test; a broken file fails the build's tests, not a user.
    serde_json::from_str(SAMPLE_CATALOG).unwrap_or(Value::Null)
}

/// Reads a catalogue file for the emulator: any JSON is served as is (so that malformed
/// catalogues can be emulated), but it has to be JSON.
pub fn load_catalog(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("catalogue file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "catalogue file {}: not JSON ({e}); expected {{\"ipSecLocations\": [...]}}",
            path.display()
        )
    })
}

pub(crate) struct SimState {
    store: Mutex<Store>,
    token: SecretString,
    faults: Mutex<Faults>,
    counts: Mutex<BTreeMap<String, u64>>,
    expose_psks_for_lab: bool,
}

/// A poisoned lock only means a handler panicked mid-request; the data is still the emulator's
/// best idea of the account, so keep serving it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn faults(&self) -> Faults {
        *lock(&self.faults)
    }

    fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    fn count(&self, method: &str) {
        *lock(&self.counts).entry(method.to_owned()).or_default() += 1;
    }

    /// API requests received by method, and `writes` (POST, PUT, DELETE) in all.
    fn request_counts(&self) -> Value {
        let counts = lock(&self.counts);
        let writes: u64 = ["POST", "PUT", "DELETE"]
            .iter()
            .filter_map(|m| counts.get(*m))
            .sum();
        let mut out = serde_json::Map::new();
        for (k, v) in counts.iter() {
            out.insert(k.clone(), Value::from(*v));
        }
        out.insert("writes".into(), Value::from(writes));
        Value::Object(out)
    }
}

/// A running emulator. Dropping it stops the server.
pub struct Sim {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sim {
    /// Binds and serves, within [`Limits::SIM`]: a flood of connections cannot take the
    /// emulator's descriptors nor keep its clients out.
    pub async fn start(options: SimOptions) -> anyhow::Result<Sim> {
        options.faults.validate()?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.listen))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState {
            store: Mutex::new(Store::new(options.catalog)),
            token: options.token,
            faults: Mutex::new(options.faults),
            counts: Mutex::new(BTreeMap::new()),
            expose_psks_for_lab: options.expose_psks_for_lab,
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = routes::router(state.clone());
        let task = tokio::spawn(http_server::serve(listener, app, Limits::SIM, async {
            let _ = rx.await;
        }));
        Ok(Sim {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a client uses.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Direct access to the account, for in-process callers (the demo, tests).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.state.store())
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFaults> {
        faults.validate()?;
        self.state.set_faults(faults);
        Ok(())
    }

    /// API requests received so far, by method, plus `writes`.
    pub fn request_counts(&self) -> Value {
        self.state.request_counts()
    }

    /// Serves until `stop` (the server itself does not fail; a panic in it is an error here).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await?;
        }
        Ok(())
    }

    /// Stops accepting, lets requests under way finish, and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
