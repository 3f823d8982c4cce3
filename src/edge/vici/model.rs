//! Connections and SAs as VICI messages describe them, pure: what `load-conn` takes
//! ([`ConnSpec`]), what `list-conns` and `list-sas` give back ([`LoadedConn`], [`IkeSa`]).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use super::message::{Element, Message, shown};

/// A connection as `list-conns` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedConn {
    pub name: String,
    pub local_addrs: Vec<String>,
    pub remote_addrs: Vec<String>,
    /// `IKEv1`, `IKEv2` or `0` (any).
    pub version: String,
    /// The names of its CHILD_SA configurations.
    pub children: Vec<String>,
}

/// What charon does with a CHILD_SA at load (`start_action`), on a dead peer (`dpd_action`)
/// or when the peer closes it (`close_action`). charon reads `start`/`restart`, `trap`/`route`
/// and `none`/`clear` alike (`vici_config.c`, `parse_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    Trap,
    Start,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Trap => "trap",
            Action::Start => "start",
        }
    }
}

/// Whether an IKE_SA may come up without a CHILD_SA (RFC 6023; `vici_config.c`,
/// `parse_childless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Childless {
    Allow,
    Prefer,
    Never,
    Force,
}

impl Childless {
    fn as_str(self) -> &'static str {
        match self {
            Childless::Allow => "allow",
            Childless::Prefer => "prefer",
            Childless::Never => "never",
            Childless::Force => "force",
        }
    }
}

/// An IKEv2 connection authenticated by PSK both ways (swanctl.conf(5) keys, as `load-conn`
/// takes them: `vici_config.c`). Empty lists and absent values are left to charon's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnSpec {
    pub local_addrs: Vec<String>,
    pub remote_addrs: Vec<String>,
    /// IKE proposals.
    pub proposals: Vec<String>,
    /// Dead peer detection interval, rounded up to whole seconds; charon's default is off.
    pub dpd_delay: Option<Duration>,
    pub childless: Option<Childless>,
    /// MOBIKE (RFC 4555); charon's default is on.
    pub mobike: Option<bool>,
    pub local_id: String,
    /// None: any identity the PSK matches.
    pub remote_id: Option<String>,
    pub children: Vec<ChildSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSpec {
    pub name: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub esp_proposals: Vec<String>,
    pub start_action: Option<Action>,
    pub dpd_action: Option<Action>,
    pub close_action: Option<Action>,
}

impl ConnSpec {
    /// The `load-conn` message: `{name: {version = 2, …, local {…}, remote {…}, children {…}}}`.
    /// Addresses, proposals and traffic selectors go as lists, which charon requires.
    pub fn to_message(&self, name: &str) -> Message {
        let mut children = Message::new();
        for child in &self.children {
            let action = |a: Option<Action>| a.map(Action::as_str);
            let section = Message::new()
                .list_nonempty("local_ts", &child.local_ts)
                .list_nonempty("remote_ts", &child.remote_ts)
                .list_nonempty("esp_proposals", &child.esp_proposals)
                .kv_opt("start_action", action(child.start_action))
                .kv_opt("dpd_action", action(child.dpd_action))
                .kv_opt("close_action", action(child.close_action));
            children.push(&child.name, Element::Section(section));
        }
        let local = Message::new().kv("auth", "psk").kv("id", &self.local_id);
        let remote = Message::new()
            .kv("auth", "psk")
            .kv_opt("id", self.remote_id.as_deref());
        let conn = Message::new()
            .kv("version", "2")
            .list_nonempty("local_addrs", &self.local_addrs)
            .list_nonempty("remote_addrs", &self.remote_addrs)
            .list_nonempty("proposals", &self.proposals)
            .kv_opt("dpd_delay", self.dpd_delay.map(whole_seconds))
            .kv_opt("childless", self.childless.map(Childless::as_str))
            .kv_opt(
                "mobike",
                self.mobike.map(|on| if on { "yes" } else { "no" }),
            )
            .section("local", local)
            .section("remote", remote)
            .section("children", children);
        Message::new().section(name, conn)
    }
}

/// A duration in seconds, rounded up: half a second must not become `0`, which is "off".
fn whole_seconds(d: Duration) -> String {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .to_string()
}

/// IKE_SA states (`ike_sa.c`, `ike_sa_state_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeState {
    Created,
    Connecting,
    Established,
    Passive,
    Rekeying,
    Rekeyed,
    Deleting,
    Destroying,
    Other(String),
}

impl IkeState {
    fn from_vici(s: &str) -> Self {
        match s {
            "CREATED" => Self::Created,
            "CONNECTING" => Self::Connecting,
            "ESTABLISHED" => Self::Established,
            "PASSIVE" => Self::Passive,
            "REKEYING" => Self::Rekeying,
            "REKEYED" => Self::Rekeyed,
            "DELETING" => Self::Deleting,
            "DESTROYING" => Self::Destroying,
            other => Self::Other(shown(other)),
        }
    }
}

/// CHILD_SA states (`child_sa.c`, `child_sa_state_names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildState {
    Created,
    Routed,
    Installing,
    Installed,
    Updating,
    Rekeying,
    Rekeyed,
    Retrying,
    Deleting,
    Deleted,
    Destroying,
    Other(String),
}

impl ChildState {
    fn from_vici(s: &str) -> Self {
        match s {
            "CREATED" => Self::Created,
            "ROUTED" => Self::Routed,
            "INSTALLING" => Self::Installing,
            "INSTALLED" => Self::Installed,
            "UPDATING" => Self::Updating,
            "REKEYING" => Self::Rekeying,
            "REKEYED" => Self::Rekeyed,
            "RETRYING" => Self::Retrying,
            "DELETING" => Self::Deleting,
            "DELETED" => Self::Deleted,
            "DESTROYING" => Self::Destroying,
            other => Self::Other(shown(other)),
        }
    }
}

/// An IKE_SA as a `list-sa` event shows it (README, "list-sa").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSa {
    /// Its connection's name.
    pub name: String,
    pub uniqueid: u32,
    pub state: IkeState,
    /// None when absent or not an address (`%any` while connecting).
    pub local_host: Option<IpAddr>,
    pub local_id: Option<String>,
    pub remote_host: Option<IpAddr>,
    pub remote_id: Option<String>,
    /// Seconds since it was established; only once it is.
    pub established_secs: Option<u64>,
    /// In charon's order; during a rekey the old CHILD_SA (REKEYED) sits beside the new one.
    pub children: Vec<ChildSa>,
}

/// A CHILD_SA of an [`IkeSa`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    /// The key charon lists it under: `<name>-<uniqueid>`.
    pub key: String,
    /// Its configuration's name: match on this.
    pub name: String,
    pub uniqueid: u32,
    pub state: ChildState,
    /// Traffic and install time: only from INSTALLED on (`vici_query.c`, `list_child`).
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub packets_in: Option<u64>,
    pub packets_out: Option<u64>,
    pub install_time_secs: Option<u64>,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
}

/// A numeric value, if present; an error naming the key if it is not a number.
pub(super) fn number<T: FromStr>(m: &Message, key: &str) -> Result<Option<T>, String> {
    match m.get_text(key) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} is not a number")),
    }
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("{key} is missing"))
}

fn address(m: &Message, key: &str) -> Option<IpAddr> {
    m.get_text(key).and_then(|t| t.parse().ok())
}

impl IkeSa {
    /// One IKE_SA of a `list-sa` event: its section `name` and what it holds.
    pub fn from_vici(name: &str, sa: &Message) -> Result<IkeSa, String> {
        let context = |e: String| format!("IKE_SA \"{}\": {e}", shown(name));
        let uniqueid = number(sa, "uniqueid").and_then(|n| required(n, "uniqueid"));
        let state = required(sa.get_text("state"), "state").map_err(context)?;
        let mut children = Vec::new();
        for (key, child) in sa
            .get_section("child-sas")
            .iter()
            .flat_map(|c| c.sections())
        {
            children.push(ChildSa::from_vici(key, child).map_err(context)?);
        }
        Ok(IkeSa {
            name: name.to_owned(),
            uniqueid: uniqueid.map_err(context)?,
            state: IkeState::from_vici(&state),
            local_host: address(sa, "local-host"),
            local_id: sa.get_text("local-id"),
            remote_host: address(sa, "remote-host"),
            remote_id: sa.get_text("remote-id"),
            established_secs: number(sa, "established").map_err(context)?,
            children,
        })
    }

    pub fn is_established(&self) -> bool {
        self.state == IkeState::Established
    }

    /// The installed CHILD_SA named `name`; the newest (highest uniqueid) if a rekey left two.
    pub fn installed_child(&self, name: &str) -> Option<&ChildSa> {
        self.children
            .iter()
            .filter(|c| c.name == name && c.state == ChildState::Installed)
            .max_by_key(|c| c.uniqueid)
    }
}

impl ChildSa {
    fn from_vici(key: &str, child: &Message) -> Result<ChildSa, String> {
        let context = |e: String| format!("CHILD_SA \"{}\": {e}", shown(key));
        let field = |k: &str| number::<u64>(child, k).map_err(context);
        Ok(ChildSa {
            key: key.to_owned(),
            name: required(child.get_text("name"), "name").map_err(context)?,
            uniqueid: number(child, "uniqueid")
                .and_then(|n| required(n, "uniqueid"))
                .map_err(context)?,
            state: ChildState::from_vici(
                &required(child.get_text("state"), "state").map_err(context)?,
            ),
            bytes_in: field("bytes-in")?,
            bytes_out: field("bytes-out")?,
            packets_in: field("packets-in")?,
            packets_out: field("packets-out")?,
            install_time_secs: field("install-time")?,
            local_ts: child.get_texts("local-ts"),
            remote_ts: child.get_texts("remote-ts"),
        })
    }
}
