//! The PoP responders' configuration: what Atmos would accept, read from the emulator.
//!
//! Every tunnel of the account may connect to every IPsec PoP (the catalogue is account-wide),
//! so each PoP's charon gets one connection per tunnel stored in the emulator, authenticated by
//! PSK with the tunnel's authentication ID as the peer's identity and the tunnel's stored PSK
//! (read through the emulator's lab-only route, `GET /_sim/tunnels/{id}/psk`). The PoP's own
//! identity is its address (charon's default), which popsel's `remote { auth = psk }` accepts.
//!
//! Full tunnels: the PoP side is `local_ts = 0.0.0.0/0`; the branch side is narrowed to the
//! branch's own address (`remote_ts = dynamic`) unless the lab is told to accept more
//! ([`super::LabSpec::branch_ts`]), so a branch proposing `0.0.0.0/0` for its side gets its
//! address, and one proposing a subnet the PoP accepts gets that subnet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use popsel::atmos::{Client, ClientConfig, Tunnel};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::super::{TOKEN, fast_retry, http, token};
use super::charon::Swanctl;

/// A tunnel as the PoPs know it.
#[derive(Clone)]
pub struct AcceptedTunnel {
    pub id: String,
    pub name: String,
    pub authentication_id: String,
    pub psk: SecretString,
}

impl AcceptedTunnel {
    /// The connection's name on the PoPs: `atmos-<tunnel id>`, in the characters swanctl takes.
    pub fn connection(&self) -> String {
        let id: String = self
            .id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("atmos-{id}")
    }

    /// Whether the PoPs must drop SAs made with `old`: the peer's identity or key changed.
    fn changed_from(&self, old: &AcceptedTunnel) -> bool {
        self.authentication_id != old.authentication_id
            || self.psk.expose_secret() != old.psk.expose_secret()
    }
}

impl std::fmt::Debug for AcceptedTunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptedTunnel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("authentication_id", &self.authentication_id)
            .finish_non_exhaustive()
    }
}

/// A swanctl value, double-quoted with escapes: as popsel writes its own files.
pub use popsel::edge::swanctl::quoted;

/// A secret as swanctl reads it without any quoting: `0x` and hex.
pub fn hex_secret(secret: &str) -> String {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}")
}

/// The `swanctl.conf` of every PoP responder for `tunnels`; `branch_ts` is the list of
/// traffic selectors a PoP accepts for the branch side.
pub fn render(tunnels: &[AcceptedTunnel], branch_ts: &[String]) -> String {
    let mut conns = String::from(
        "# Written by popsel's IPsec lab: the tunnels the emulator holds, as Atmos accepts them.\n\
         connections {\n",
    );
    let mut secrets = String::from("secrets {\n");
    for t in tunnels {
        let name = t.connection();
        conns.push_str(&format!(
            "  {name} {{
    # tunnel {tunnel}
    version = 2
    local {{
      auth = psk
    }}
    remote {{
      auth = psk
      id = {id}
    }}
    children {{
      {name} {{
        local_ts = 0.0.0.0/0
        remote_ts = {branch_ts}
      }}
    }}
  }}
",
            tunnel = t.name.replace(['\n', '\r'], " "),
            id = quoted(&t.authentication_id),
            branch_ts = branch_ts.join(","),
        ));
        secrets.push_str(&format!(
            "  ike-{name} {{\n    id = {}\n    secret = {}\n  }}\n",
            quoted(&t.authentication_id),
            hex_secret(t.psk.expose_secret())
        ));
    }
    conns.push_str("}\n");
    secrets.push_str("}\n");
    conns + &secrets
}

/// The connections whose SAs the PoPs must terminate when going from `old` to `new`: tunnels
/// deleted, and tunnels whose identity or PSK changed (Atmos would not keep a tunnel up with
/// credentials it no longer holds).
pub fn to_terminate(
    old: &BTreeMap<String, AcceptedTunnel>,
    new: &BTreeMap<String, AcceptedTunnel>,
) -> Vec<String> {
    old.iter()
        .filter(|(id, t)| new.get(*id).is_none_or(|n| n.changed_from(t)))
        .map(|(_, t)| t.connection())
        .collect()
}

/// The PoPs' responders as one: what they accept now, and how to reload them. Shared (`Arc`)
/// so that a background task can keep them in sync ([`Follower`]).
pub struct ResponderSet {
    /// Each PoP's name and `swanctl`.
    pops: Vec<(String, Swanctl)>,
    branch_ts: Vec<String>,
    /// The tunnels the PoPs accept now, by tunnel id.
    accepted: Mutex<BTreeMap<String, AcceptedTunnel>>,
}

impl ResponderSet {
    pub fn new(pops: Vec<(String, Swanctl)>, branch_ts: Vec<String>) -> ResponderSet {
        ResponderSet {
            pops,
            branch_ts,
            accepted: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes every PoP accept exactly the tunnels the emulator at `url` holds now (see
    /// `IpsecLab::sync_responders`). Returns their number.
    pub async fn sync(self: &Arc<Self>, url: &str) -> Result<usize, String> {
        let new: BTreeMap<String, AcceptedTunnel> = read_tunnels(url)
            .await?
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply(new))
            .await
            .map_err(|e| format!("the reload panicked: {e}"))?
    }

    /// Loads `new` into every PoP, terminates what it no longer allows, and records it.
    fn apply(&self, new: BTreeMap<String, AcceptedTunnel>) -> Result<usize, String> {
        // One sync at a time: a follower and a test's own call must not interleave.
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        let terminate = to_terminate(&accepted, &new);
        let list: Vec<AcceptedTunnel> = new.values().cloned().collect();
        if terminate.is_empty() && list.len() == accepted.len() {
            // Nothing changed (every old tunnel is in `new`, unchanged, and no new one).
            return Ok(list.len());
        }
        let conf = render(&list, &self.branch_ts);
        for (name, swanctl) in &self.pops {
            swanctl
                .load(&conf)
                .map_err(|e| format!("load the tunnels into {name}: {e}"))?;
            for conn in &terminate {
                swanctl.terminate_ike(conn);
            }
        }
        *accepted = new;
        Ok(list.len())
    }
}

/// Keeps a [`ResponderSet`] in sync with an emulator in the background, as Atmos's PoPs follow
/// its account; stops when dropped.
pub struct Follower {
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Syncs every `every`; a failure is printed once per kind and retried.
    pub fn start(set: Arc<ResponderSet>, url: String, every: Duration) -> Follower {
        let task = tokio::spawn(async move {
            let mut last_error = String::new();
            loop {
                match set.sync(&url).await {
                    Err(e) if e != last_error => {
                        eprintln!("ipsec lab: keeping the PoPs in sync: {e}");
                        last_error = e;
                    }
                    _ => {}
                }
                tokio::time::sleep(every).await;
            }
        });
        Follower { task }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every tunnel the emulator at `url` holds, with its PSK (through the lab-only route).
async fn read_tunnels(url: &str) -> Result<Vec<AcceptedTunnel>, String> {
    let mut cc = ClientConfig::new(url, token());
    cc.retry = fast_retry();
    let client = Client::new(cc).map_err(|e| format!("client for {url}: {e}"))?;
    let tunnels: Vec<Tunnel> = client
        .list::<Tunnel>()
        .await
        .map_err(|e| format!("list the emulator's tunnels: {e}"))?;
    let http = http();
    let mut out = Vec::with_capacity(tunnels.len());
    for t in tunnels {
        let resp = http
            .get(format!("{url}/_sim/tunnels/{}/psk", t.id))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| format!("GET tunnel {}'s PSK: {e}", t.id))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let Some(psk) = body
            .get("psk")
            .and_then(Value::as_str)
            .filter(|_| status == 200)
        else {
            return Err(format!(
                "the emulator did not give tunnel {}'s PSK (HTTP {status}); start it with \
                 expose_psks_for_lab (IpsecLab::start_sim does)",
                t.id
            ));
        };
        out.push(AcceptedTunnel {
            id: t.id,
            name: t.name,
            authentication_id: t.authentication_id,
            psk: SecretString::from(psk.to_owned()),
        });
    }
    Ok(out)
}
