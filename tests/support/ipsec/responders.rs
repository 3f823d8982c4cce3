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

use secrecy::{ExposeSecret, SecretString};

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

/// A swanctl value, double-quoted with escapes.
pub fn quoted(s: &str) -> String {
    let escaped: String = s
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

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
