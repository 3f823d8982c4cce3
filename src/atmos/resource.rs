//! What the API's object collections (tunnels, connectors) have in common, said once: where
//! they live, what an object is called in messages, what its status endpoint reports and how
//! a list is de-duplicated. The client, the emulator and the CLI are generic over it wherever
//! the documents describe the same behaviour for both.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{Connector, ConnectorState, Tunnel, TunnelState};

/// Every documented endpoint lives under this path.
pub const API_ROOT: &str = "/api/v1";

/// The IPsec PoP catalogue, under [`API_ROOT`].
pub const IPSEC_POPS: &str = "pops/ipsec";

/// The states a status endpoint reports, `Unknown` among them for anything undocumented.
pub trait StateSet:
    Copy + Eq + fmt::Debug + fmt::Display + Serialize + DeserializeOwned + Send + Sync + 'static
{
    const ALL: &'static [Self];
    const UNKNOWN: Self;

    /// The state as the document spells it.
    fn as_str(self) -> &'static str;

    /// Case-insensitive; anything undocumented is `Unknown` rather than an error, so a new
    /// state on the server never breaks status polling.
    fn parse(s: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .unwrap_or(Self::UNKNOWN)
    }
}

/// A collection of the API with get, list, delete and status endpoints of the same shape.
pub trait Resource:
    fmt::Debug + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The collection's path under [`API_ROOT`]: `tunnels`.
    const COLLECTION: &'static str;
    /// One object, as messages name it: `tunnel`.
    const NAME: &'static str;
    type State: StateSet;

    /// Empty when the server left it out.
    fn id(&self) -> &str;
    fn set_id(&mut self, id: String);
    fn name(&self) -> &str;

    /// What list de-duplication goes by: the id, or the name when the server left the id out
    /// (the connector list sample has none).
    fn list_key(&self) -> &str {
        if self.id().is_empty() {
            self.name()
        } else {
            self.id()
        }
    }
}

/// The path template of an endpoint: `/api/v1/<collection>`, then `/{id}` when it addresses
/// one object, then `/<sub>` for one of the object's sub-resources (`status`). It is both the
/// metric label of a call, which must never carry an id, and the route the emulator serves.
pub fn endpoint_template(collection: &str, object: bool, sub: Option<&str>) -> String {
    let mut out = format!("{API_ROOT}/{collection}");
    if object {
        out.push_str("/{id}");
    }
    if let Some(sub) = sub {
        out.push('/');
        out.push_str(sub);
    }
    out
}

/// Tunnels and connectors keep their id and name in fields of those names.
macro_rules! resource {
    ($object:ty, $collection:literal, $name:literal, $state:ty) => {
        impl Resource for $object {
            const COLLECTION: &'static str = $collection;
            const NAME: &'static str = $name;
            type State = $state;

            fn id(&self) -> &str {
                &self.id
            }

            fn set_id(&mut self, id: String) {
                self.id = id;
            }

            fn name(&self) -> &str {
                &self.name
            }
        }
    };
}

resource!(Tunnel, "tunnels", "tunnel", TunnelState);
resource!(Connector, "connectors", "connector", ConnectorState);

/// Defines a state enum whose variants are spelled as the document spells the states, with
/// `ALL` and `as_str` (the metrics iterate over them) and its [`StateSet`] and serde impls.
macro_rules! state_set {
    ($(#[$doc:meta])* $name:ident { $($state:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($state),+
        }

        impl $name {
            pub const ALL: [$name; [$(stringify!($state)),+].len()] = [$($name::$state),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$state => stringify!($state)),+
                }
            }

            pub fn parse(s: &str) -> Self {
                <Self as $crate::atmos::resource::StateSet>::parse(s)
            }
        }

        impl $crate::atmos::resource::StateSet for $name {
            const ALL: &'static [Self] = &$name::ALL;
            const UNKNOWN: Self = $name::Unknown;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::parse(&<String as serde::Deserialize>::deserialize(d)?))
            }
        }
    };
}
pub(super) use state_set;

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
