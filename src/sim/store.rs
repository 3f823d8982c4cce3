//! The emulator's account: tunnels, connectors and the PoP catalogue, with the rules the API
//! documents. Pure (no HTTP): the routes translate requests into these calls and results into
//! responses.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::atmos::rules::{MIN_PSK_CHARS, is_valid_authentication_id, is_valid_psk};
use crate::atmos::{Connector, ConnectorState, Tunnel, TunnelState};

/// Largest page a list request may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A failed request: HTTP status and the message the body carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

fn reject(status: u16, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        message: message.into(),
    }
}

struct StoredTunnel {
    tunnel: Tunnel,
    psk: SecretString,
    status: TunnelState,
}

struct StoredConnector {
    connector: Connector,
    status: ConnectorState,
}

#[derive(Default)]
pub struct Store {
    /// Keyed by creation sequence so that listing order is stable, as a database's would be.
    tunnels: BTreeMap<u64, StoredTunnel>,
    connectors: BTreeMap<u64, StoredConnector>,
    next_seq: u64,
    pub catalog: Value,
}

/// A field of a JSON object, by name, ignoring case: the document itself spells the PSK field
/// two ways (`authenticationPSK`, `AuthenticationPSK`).
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(reject(400, format!("{name} must be a string"))),
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, Rejection> {
    body.as_object()
        .ok_or_else(|| reject(400, "the request body must be a JSON object"))
}

fn mandatory(obj: &Map<String, Value>, name: &str) -> Result<String, Rejection> {
    string_field(obj, name)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| reject(400, format!("{name} is mandatory")))
}

fn check_authentication_id(id: &str) -> Result<(), Rejection> {
    if is_valid_authentication_id(id) {
        Ok(())
    } else {
        Err(reject(
            400,
            "authenticationID: value must be a valid email or IP address",
        ))
    }
}

fn check_psk(psk: &str) -> Result<(), Rejection> {
    if is_valid_psk(psk) {
        Ok(())
    } else {
        Err(reject(
            400,
            format!("authenticationPSK: value must be at least {MIN_PSK_CHARS} characters"),
        ))
    }
}

/// A random id shaped like the document's (`6ee0bd21-4f50-454a-9f75-82f6933d54b0`).
fn new_id() -> String {
    let a = fastrand::u128(..);
    let hex = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn install_command() -> String {
    let code: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(8)
        .collect();
    format!("sudo bash < <(curl -fskSL https://ops.popsel-sim.invalid/{code}/install)")
}

/// A page of a list: which slice, and the numbers the response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub number: u32,
}

impl PageRequest {
    pub fn parse(size: Option<&str>, number: Option<&str>) -> Result<Self, Rejection> {
        let parse = |v: Option<&str>, name: &str, default: u32, max: u32| match v {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    reject(
                        400,
                        format!("{name} must be a whole number from 1 to {max}"),
                    )
                }),
        };
        Ok(Self {
            size: parse(size, "pageSize", 100, MAX_PAGE_SIZE)?,
            number: parse(number, "pageNumber", 1, u32::MAX)?,
        })
    }

    fn total_pages(self, records: usize) -> u32 {
        records.div_ceil(self.size as usize) as u32
    }

    fn slice<T: Clone>(self, items: &[T]) -> Vec<T> {
        let start = (self.number as usize - 1).saturating_mul(self.size as usize);
        items
            .iter()
            .skip(start)
            .take(self.size as usize)
            .cloned()
            .collect()
    }

    /// The list response, with page URLs built on `url_base` (scheme, host and path).
    pub fn respond<T: serde::Serialize + Clone>(self, items: &[T], url_base: &str) -> Value {
        let total_pages = self.total_pages(items.len());
        let url = |n: u32| format!("{url_base}?pageSize={}&pageNumber={n}", self.size);
        json!({
            "pageNumber": self.number,
            "pageSize": self.size,
            "firstPage": url(1),
            "lastPage": url(total_pages.max(1)),
            "totalPages": total_pages,
            "totalRecords": items.len(),
            "nextPage": (self.number < total_pages).then(|| url(self.number + 1)),
            "previousPage": (self.number > 1).then(|| url((self.number - 1).min(total_pages.max(1)))),
            "data": self.slice(items),
        })
    }
}

impl Store {
    pub fn new(catalog: Value) -> Self {
        Self {
            catalog,
            ..Self::default()
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn tunnel_mut(&mut self, id: &str) -> Result<&mut StoredTunnel, Rejection> {
        self.tunnels
            .values_mut()
            .find(|t| t.tunnel.id == id)
            .ok_or_else(|| reject(404, format!("tunnel {id} not found")))
    }

    fn connector_mut(&mut self, id: &str) -> Result<&mut StoredConnector, Rejection> {
        self.connectors
            .values_mut()
            .find(|c| c.connector.id == id)
            .ok_or_else(|| reject(404, format!("connector {id} not found")))
    }

    /// 409 when another tunnel (not `except`) has this name or authentication ID.
    fn check_tunnel_unique(
        &self,
        except: Option<&str>,
        name: &str,
        authentication_id: &str,
    ) -> Result<(), Rejection> {
        let others = self
            .tunnels
            .values()
            .map(|t| &t.tunnel)
            .filter(|t| Some(t.id.as_str()) != except);
        for t in others {
            if t.name == name {
                return Err(reject(
                    409,
                    format!("a tunnel named {name:?} already exists"),
                ));
            }
            if t.authentication_id == authentication_id {
                return Err(reject(
                    409,
                    format!("authenticationID {authentication_id:?} is already in use"),
                ));
            }
        }
        Ok(())
    }

    pub fn create_tunnel(&mut self, body: &Value) -> Result<Tunnel, Rejection> {
        let obj = object(body)?;
        let name = mandatory(obj, "name")?;
        let authentication_id = mandatory(obj, "authenticationID")?;
        let psk = mandatory(obj, "authenticationPSK")?;
        let location_id = mandatory(obj, "locationID")?;
        check_authentication_id(&authentication_id)?;
        check_psk(&psk)?;
        self.check_tunnel_unique(None, &name, &authentication_id)?;
        let tunnel = Tunnel {
            id: new_id(),
            name,
            authentication_id,
            location_id,
        };
        let seq = self.seq();
        self.tunnels.insert(
            seq,
            StoredTunnel {
                tunnel: tunnel.clone(),
                psk: SecretString::from(psk),
                status: TunnelState::Disconnected,
            },
        );
        Ok(tunnel)
    }

    pub fn get_tunnel(&self, id: &str) -> Result<Tunnel, Rejection> {
        self.tunnels
            .values()
            .find(|t| t.tunnel.id == id)
            .map(|t| t.tunnel.clone())
            .ok_or_else(|| reject(404, format!("tunnel {id} not found")))
    }

    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.values().map(|t| t.tunnel.clone()).collect()
    }

    /// `PUT`: fields present replace the stored ones; fields left out are kept.
    pub fn update_tunnel(&mut self, id: &str, body: &Value) -> Result<Tunnel, Rejection> {
        let obj = object(body)?;
        let current = self.get_tunnel(id)?;
        let name = string_field(obj, "name")?.unwrap_or(current.name);
        let authentication_id =
            string_field(obj, "authenticationID")?.unwrap_or(current.authentication_id);
        let location_id = string_field(obj, "locationID")?.unwrap_or(current.location_id);
        let psk = string_field(obj, "authenticationPSK")?;
        if name.trim().is_empty() {
            return Err(reject(400, "name is mandatory"));
        }
        if location_id.trim().is_empty() {
            return Err(reject(400, "locationID is mandatory"));
        }
        check_authentication_id(&authentication_id)?;
        if let Some(psk) = &psk {
            check_psk(psk)?;
        }
        self.check_tunnel_unique(Some(id), &name, &authentication_id)?;
        let stored = self.tunnel_mut(id)?;
        stored.tunnel.name = name;
        stored.tunnel.authentication_id = authentication_id;
        stored.tunnel.location_id = location_id;
        if let Some(psk) = psk {
            stored.psk = SecretString::from(psk);
        }
        Ok(stored.tunnel.clone())
    }

    pub fn delete_tunnel(&mut self, id: &str) -> Result<(), Rejection> {
        let key = self
            .tunnels
            .iter()
            .find(|(_, t)| t.tunnel.id == id)
            .map(|(k, _)| *k)
            .ok_or_else(|| reject(404, format!("tunnel {id} not found")))?;
        self.tunnels.remove(&key);
        Ok(())
    }

    pub fn tunnel_status(&self, id: &str) -> Result<TunnelState, Rejection> {
        self.tunnels
            .values()
            .find(|t| t.tunnel.id == id)
            .map(|t| t.status)
            .ok_or_else(|| reject(404, format!("tunnel {id} not found")))
    }

    pub fn set_tunnel_status(&mut self, id: &str, status: TunnelState) -> Result<(), Rejection> {
        self.tunnel_mut(id)?.status = status;
        Ok(())
    }

    /// Whether the stored PSK is `psk`: lets tests check a rotation without the emulator
    /// ever handing a PSK out.
    pub fn tunnel_psk_is(&self, id: &str, psk: &str) -> Result<bool, Rejection> {
        self.tunnels
            .values()
            .find(|t| t.tunnel.id == id)
            .map(|t| t.psk.expose_secret() == psk)
            .ok_or_else(|| reject(404, format!("tunnel {id} not found")))
    }

    fn check_connector_unique(&self, except: Option<&str>, name: &str) -> Result<(), Rejection> {
        let taken = self
            .connectors
            .values()
            .any(|c| Some(c.connector.id.as_str()) != except && c.connector.name == name);
        if taken {
            return Err(reject(
                409,
                format!("a connector named {name:?} already exists"),
            ));
        }
        Ok(())
    }

    /// Returns the connector with its installation command.
    pub fn create_connector(&mut self, body: &Value) -> Result<Connector, Rejection> {
        let obj = object(body)?;
        let name = mandatory(obj, "name")?;
        let connector_zone_id = string_field(obj, "connectorZoneID")?;
        self.check_connector_unique(None, &name)?;
        let connector = Connector {
            id: new_id(),
            name,
            enabled: Some(true),
            connector_zone_id,
            command: None,
        };
        let seq = self.seq();
        self.connectors.insert(
            seq,
            StoredConnector {
                connector: connector.clone(),
                status: ConnectorState::Pending,
            },
        );
        Ok(Connector {
            command: Some(install_command()),
            ..connector
        })
    }

    pub fn get_connector(&self, id: &str) -> Result<Connector, Rejection> {
        self.connectors
            .values()
            .find(|c| c.connector.id == id)
            .map(|c| c.connector.clone())
            .ok_or_else(|| reject(404, format!("connector {id} not found")))
    }

    pub fn connectors(&self) -> Vec<Connector> {
        self.connectors
            .values()
            .map(|c| c.connector.clone())
            .collect()
    }

    pub fn update_connector(&mut self, id: &str, body: &Value) -> Result<Connector, Rejection> {
        let obj = object(body)?;
        let current = self.get_connector(id)?;
        let name = string_field(obj, "name")?.unwrap_or(current.name);
        if name.trim().is_empty() {
            return Err(reject(400, "name is mandatory"));
        }
        let enabled = match field(obj, "enabled") {
            None | Some(Value::Null) => current.enabled,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(reject(400, "enabled must be true or false")),
        };
        let zone = string_field(obj, "connectorZoneID")?.or(current.connector_zone_id);
        self.check_connector_unique(Some(id), &name)?;
        let stored = self.connector_mut(id)?;
        stored.connector.name = name;
        stored.connector.enabled = enabled;
        stored.connector.connector_zone_id = zone;
        Ok(stored.connector.clone())
    }

    pub fn delete_connector(&mut self, id: &str) -> Result<(), Rejection> {
        let key = self
            .connectors
            .iter()
            .find(|(_, c)| c.connector.id == id)
            .map(|(k, _)| *k)
            .ok_or_else(|| reject(404, format!("connector {id} not found")))?;
        self.connectors.remove(&key);
        Ok(())
    }

    pub fn connector_status(&self, id: &str) -> Result<ConnectorState, Rejection> {
        self.connectors
            .values()
            .find(|c| c.connector.id == id)
            .map(|c| c.status)
            .ok_or_else(|| reject(404, format!("connector {id} not found")))
    }

    pub fn set_connector_status(
        &mut self,
        id: &str,
        status: ConnectorState,
    ) -> Result<(), Rejection> {
        self.connector_mut(id)?.status = status;
        Ok(())
    }

    pub fn regenerate_connector(&mut self, id: &str) -> Result<String, Rejection> {
        self.connector_mut(id)?;
        Ok(install_command())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
