//! The emulator's account: tunnels, connectors and the PoP catalogue, with the rules the API
//! documents. Pure (no HTTP): the routes translate requests into these calls and results into
//! responses.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::atmos::rules::{MIN_PSK_CHARS, is_valid_authentication_id, is_valid_psk};
use crate::atmos::{Connector, ConnectorState, Resource, Tunnel, TunnelState};

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

/// A resource the emulator keeps: where its objects live in the account, and the rules of its
/// create and update, which the documents make differ.
pub trait Emulated: Resource {
    /// What the emulator keeps of an object but never sends back (a tunnel's PSK).
    type WriteOnly: Send + Sync;

    fn collection(store: &Store) -> &Collection<Self>;
    fn collection_mut(store: &mut Store) -> &mut Collection<Self>;
    fn create_in(store: &mut Store, body: &Value) -> Result<Self, Rejection>;
    fn update_in(store: &mut Store, id: &str, body: &Value) -> Result<Self, Rejection>;
}

struct Stored<R: Emulated> {
    object: R,
    status: R::State,
    write_only: R::WriteOnly,
}

/// The objects of one resource in creation order, as a database would list them.
pub struct Collection<R: Emulated> {
    objects: Vec<Stored<R>>,
}

impl<R: Emulated> Default for Collection<R> {
    fn default() -> Self {
        Self {
            objects: Vec::new(),
        }
    }
}

impl<R: Emulated> Collection<R> {
    fn not_found(id: &str) -> Rejection {
        reject(404, format!("{} {id} not found", R::NAME))
    }

    fn position(&self, id: &str) -> Result<usize, Rejection> {
        self.objects
            .iter()
            .position(|s| s.object.id() == id)
            .ok_or_else(|| Self::not_found(id))
    }

    fn stored(&self, id: &str) -> Result<&Stored<R>, Rejection> {
        self.objects
            .iter()
            .find(|s| s.object.id() == id)
            .ok_or_else(|| Self::not_found(id))
    }

    fn stored_mut(&mut self, id: &str) -> Result<&mut Stored<R>, Rejection> {
        self.objects
            .iter_mut()
            .find(|s| s.object.id() == id)
            .ok_or_else(|| Self::not_found(id))
    }

    fn insert(&mut self, object: R, status: R::State, write_only: R::WriteOnly) {
        self.objects.push(Stored {
            object,
            status,
            write_only,
        });
    }

    /// 409 with the first clash `clash` finds between the new fields and an object other than
    /// `except`.
    fn check_unique(
        &self,
        except: Option<&str>,
        clash: impl Fn(&R) -> Option<String>,
    ) -> Result<(), Rejection> {
        let others = self
            .objects
            .iter()
            .map(|s| &s.object)
            .filter(|o| Some(o.id()) != except);
        match others.filter_map(clash).next() {
            Some(message) => Err(reject(409, message)),
            None => Ok(()),
        }
    }

    pub fn get(&self, id: &str) -> Result<R, Rejection> {
        self.stored(id).map(|s| s.object.clone())
    }

    pub fn list(&self) -> Vec<R> {
        self.objects.iter().map(|s| s.object.clone()).collect()
    }

    pub fn delete(&mut self, id: &str) -> Result<(), Rejection> {
        let at = self.position(id)?;
        self.objects.remove(at);
        Ok(())
    }

    pub fn status(&self, id: &str) -> Result<R::State, Rejection> {
        self.stored(id).map(|s| s.status)
    }

    pub fn set_status(&mut self, id: &str, status: R::State) -> Result<(), Rejection> {
        self.stored_mut(id)?.status = status;
        Ok(())
    }
}

/// The 409 message when another object of `R` has this name.
fn name_taken<R: Resource>(other: &R, name: &str) -> Option<String> {
    (other.name() == name).then(|| format!("a {} named {name:?} already exists", R::NAME))
}

#[derive(Default)]
pub struct Store {
    tunnels: Collection<Tunnel>,
    connectors: Collection<Connector>,
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

impl Emulated for Tunnel {
    type WriteOnly = SecretString;

    fn collection(store: &Store) -> &Collection<Self> {
        &store.tunnels
    }

    fn collection_mut(store: &mut Store) -> &mut Collection<Self> {
        &mut store.tunnels
    }

    fn create_in(store: &mut Store, body: &Value) -> Result<Self, Rejection> {
        store.create_tunnel(body)
    }

    fn update_in(store: &mut Store, id: &str, body: &Value) -> Result<Self, Rejection> {
        store.update_tunnel(id, body)
    }
}

impl Emulated for Connector {
    type WriteOnly = ();

    fn collection(store: &Store) -> &Collection<Self> {
        &store.connectors
    }

    fn collection_mut(store: &mut Store) -> &mut Collection<Self> {
        &mut store.connectors
    }

    fn create_in(store: &mut Store, body: &Value) -> Result<Self, Rejection> {
        store.create_connector(body)
    }

    fn update_in(store: &mut Store, id: &str, body: &Value) -> Result<Self, Rejection> {
        store.update_connector(id, body)
    }
}

impl Store {
    pub fn new(catalog: Value) -> Self {
        Self {
            catalog,
            ..Self::default()
        }
    }

    // ---- every resource ----

    pub fn list<R: Emulated>(&self) -> Vec<R> {
        R::collection(self).list()
    }

    pub fn get<R: Emulated>(&self, id: &str) -> Result<R, Rejection> {
        R::collection(self).get(id)
    }

    pub fn create<R: Emulated>(&mut self, body: &Value) -> Result<R, Rejection> {
        R::create_in(self, body)
    }

    pub fn update<R: Emulated>(&mut self, id: &str, body: &Value) -> Result<R, Rejection> {
        R::update_in(self, id, body)
    }

    pub fn delete<R: Emulated>(&mut self, id: &str) -> Result<(), Rejection> {
        R::collection_mut(self).delete(id)
    }

    pub fn status<R: Emulated>(&self, id: &str) -> Result<R::State, Rejection> {
        R::collection(self).status(id)
    }

    pub fn set_status<R: Emulated>(&mut self, id: &str, status: R::State) -> Result<(), Rejection> {
        R::collection_mut(self).set_status(id, status)
    }

    // ---- tunnels ----

    /// 409 when another tunnel (not `except`) has this name or authentication ID.
    fn check_tunnel_unique(
        &self,
        except: Option<&str>,
        name: &str,
        authentication_id: &str,
    ) -> Result<(), Rejection> {
        self.tunnels.check_unique(except, |t| {
            name_taken(t, name).or_else(|| {
                (t.authentication_id == authentication_id)
                    .then(|| format!("authenticationID {authentication_id:?} is already in use"))
            })
        })
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
        self.tunnels.insert(
            tunnel.clone(),
            TunnelState::Disconnected,
            SecretString::from(psk),
        );
        Ok(tunnel)
    }

    /// `PUT`: fields present replace the stored ones; fields left out are kept.
    pub fn update_tunnel(&mut self, id: &str, body: &Value) -> Result<Tunnel, Rejection> {
        let obj = object(body)?;
        let current = self.tunnels.get(id)?;
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
        let stored = self.tunnels.stored_mut(id)?;
        stored.object.name = name;
        stored.object.authentication_id = authentication_id;
        stored.object.location_id = location_id;
        if let Some(psk) = psk {
            stored.write_only = SecretString::from(psk);
        }
        Ok(stored.object.clone())
    }

    /// Whether the stored PSK is `psk`: lets tests check a rotation without the emulator
    /// ever handing a PSK out.
    pub fn tunnel_psk_is(&self, id: &str, psk: &str) -> Result<bool, Rejection> {
        let stored = self.tunnels.stored(id)?;
        Ok(stored.write_only.expose_secret() == psk)
    }

    /// The stored PSK, for the route that serves it to the IPsec lab (and only when the
    /// emulator was started to do so): not public, so that no other caller can read one.
    pub(super) fn tunnel_psk_for_lab(&self, id: &str) -> Result<SecretString, Rejection> {
        Ok(self.tunnels.stored(id)?.write_only.clone())
    }

    // ---- connectors ----

    /// Returns the connector with its installation command.
    pub fn create_connector(&mut self, body: &Value) -> Result<Connector, Rejection> {
        let obj = object(body)?;
        let name = mandatory(obj, "name")?;
        let connector_zone_id = string_field(obj, "connectorZoneID")?;
        self.connectors
            .check_unique(None, |c| name_taken(c, &name))?;
        let connector = Connector {
            id: new_id(),
            name,
            enabled: Some(true),
            connector_zone_id,
            command: None,
        };
        self.connectors
            .insert(connector.clone(), ConnectorState::Pending, ());
        Ok(Connector {
            command: Some(install_command()),
            ..connector
        })
    }

    pub fn update_connector(&mut self, id: &str, body: &Value) -> Result<Connector, Rejection> {
        let obj = object(body)?;
        let current = self.connectors.get(id)?;
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
        self.connectors
            .check_unique(Some(id), |c| name_taken(c, &name))?;
        let stored = self.connectors.stored_mut(id)?;
        stored.object.name = name;
        stored.object.enabled = enabled;
        stored.object.connector_zone_id = zone;
        Ok(stored.object.clone())
    }

    pub fn regenerate_connector(&mut self, id: &str) -> Result<String, Rejection> {
        self.connectors.stored(id)?;
        Ok(install_command())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
