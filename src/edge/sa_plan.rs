//! What charon must do so that a location's traffic goes through its selection, pure: from the
//! selection and what charon holds now (its `popsel-` connections and IKE SAs), the VICI steps
//! to take, in order. The shell (`edge::charon`) runs them and reads charon back.
//!
//! One connection per Atmos tunnel (`popsel-<location>-<tunnel role>`, its identity and PSK),
//! pointed at a PoP address. The connection pointed at the primary PoP is the **carrier**: its
//! CHILD_SA carries the traffic. The other is the **standby**: an IKE_SA with no CHILD_SA
//! (childless, RFC 6023) at the secondary PoP, so that a failover is one CREATE_CHILD_SA
//! exchange over an IKE_SA already up, not a new IKE negotiation with a PoP nobody has talked
//! to (make before break). Which tunnel carries is decided by what charon holds: when the
//! secondary PoP becomes the primary, the tunnel already connected there becomes the carrier,
//! and the other tunnel goes to the new secondary. The old carrier's CHILD_SA is closed only
//! after the new one is asked for: with kernel-libipsec the newest of two CHILD_SAs with the
//! same selectors carries the traffic (strongswan-notes.md).

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;

use super::swanctl::connection_name;
use super::vici::model::{
    Action, ChildSpec, ChildState, Childless, ConnSpec, IkeSa, IkeState, LoadedConn,
};
use crate::location::{Location, Role, TrafficSelector, TunnelConfig};
use crate::select::LocationSelection;

/// Every popsel connection's name starts so; charon's other connections are never touched.
pub const PREFIX: &str = "popsel-";

/// Dead peer detection on popsel's connections: popsel's own probes decide failovers; DPD
/// only clears an SA whose PoP died while popsel was not looking.
const DPD_DELAY: Duration = Duration::from_secs(10);

/// What charon holds now, as far as popsel's connections go.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub conns: Vec<LoadedConn>,
    pub sas: Vec<IkeSa>,
}

impl Observed {
    fn remote_of(&self, conn: &str) -> Option<IpAddr> {
        let loaded = self.conns.iter().find(|c| c.name == conn)?;
        loaded.remote_addrs.first()?.parse().ok()
    }

    /// The conn's established IKE_SA (or the one being rekeyed), if it has one.
    fn ike(&self, conn: &str) -> Option<&IkeSa> {
        self.sas.iter().find(|sa| sa.name == conn && is_up(sa))
    }

    /// The conn's established IKE_SA (or the one being rekeyed) to `ip`, if it has one.
    pub fn ike_at(&self, conn: &str, ip: IpAddr) -> Option<&IkeSa> {
        self.sas
            .iter()
            .find(|sa| sa.name == conn && is_up(sa) && sa.remote_host == Some(ip))
    }

    /// Whether `conn` has a CHILD_SA carrying: installed, or being rekeyed or moved (the new
    /// one of a rekey is listed only once installed; asking for another then would make two).
    fn child_installed(&self, conn: &str) -> bool {
        self.ike(conn).is_some_and(|sa| {
            sa.children.iter().any(|c| {
                c.name == conn
                    && matches!(
                        c.state,
                        ChildState::Installed | ChildState::Rekeying | ChildState::Updating
                    )
            })
        })
    }

    /// The IKE_SAs of `conn`, up or on their way, to another address than `ip`.
    fn elsewhere(&self, conn: &str, ip: IpAddr) -> impl Iterator<Item = u32> {
        self.sas
            .iter()
            .filter(move |sa| {
                sa.name == conn
                    && sa.remote_host != Some(ip)
                    && !matches!(sa.state, IkeState::Deleting | IkeState::Destroying)
            })
            .map(|sa| sa.uniqueid)
    }

    /// Whether an IKE_SA of `conn` to `ip` is being set up, or a CHILD_SA under it: asked for
    /// in an earlier round and not answered yet. Asking again would make a second one.
    fn pending(&self, conn: &str, ip: IpAddr) -> bool {
        self.sas.iter().any(|sa| {
            sa.name == conn
                && sa.remote_host.is_none_or(|r| r == ip)
                && (matches!(sa.state, IkeState::Created | IkeState::Connecting)
                    || sa.children.iter().any(|c| {
                        c.name == conn
                            && matches!(
                                c.state,
                                ChildState::Created | ChildState::Installing | ChildState::Retrying
                            )
                    }))
        })
    }
}

/// Whether an IKE_SA is up: established, or being rekeyed (the old one still carries).
fn is_up(sa: &IkeSa) -> bool {
    matches!(sa.state, IkeState::Established | IkeState::Rekeying)
}

/// One VICI command, with what it needs.
#[derive(Debug, Clone)]
pub enum Step {
    /// The tunnel's PSK, owned by its authentication ID. `Debug` does not show the PSK.
    LoadShared {
        id: String,
        owner: String,
        psk: SecretString,
    },
    LoadConn {
        name: String,
        spec: ConnSpec,
    },
    /// The carrier's CHILD_SA (with its IKE_SA when there is none).
    InitiateChild {
        conn: String,
    },
    /// The standby's IKE_SA, childless.
    InitiateIke {
        conn: String,
    },
    /// A CHILD_SA that no longer carries: after the carrier's was asked for.
    TerminateChild {
        conn: String,
    },
    /// An IKE_SA at an address popsel no longer wants (`id`), or all of `conn`'s (`None`).
    TerminateIke {
        conn: String,
        id: Option<u32>,
    },
    UnloadConn {
        name: String,
    },
    UnloadShared {
        id: String,
    },
}

/// Which tunnel does what for a location, and at which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The connection that carries the traffic, at the primary PoP's address.
    pub carrier: Option<(String, IpAddr)>,
    /// The connection kept up without a CHILD_SA at the secondary PoP's address.
    pub standby: Option<(String, IpAddr)>,
}

/// A tunnel's connection (and CHILD_SA, and secret) name.
pub fn conn_name(location: &Location, role: Role) -> String {
    connection_name(&location.name, role)
}

/// Which tunnel carries and which stands by: the one charon already has at the primary PoP
/// carries (its IKE_SA is up: no negotiation on the failure path), else the primary tunnel.
pub fn assign(
    location: &Location,
    selection: &LocationSelection,
    observed: &Observed,
) -> Assignment {
    let want = |role: Role| selection.role(role).choice.as_ref().map(|c| c.ip);
    let tunnels: Vec<String> = Role::ALL
        .iter()
        .filter(|r| location.tunnel(**r).is_some())
        .map(|r| conn_name(location, *r))
        .collect();
    let Some(primary_ip) = want(Role::Primary) else {
        return Assignment {
            carrier: None,
            standby: None,
        };
    };
    let at_primary = |conn: &&String| observed.remote_of(conn) == Some(primary_ip);
    // No tunnel at the primary PoP yet (a planned switch to a third PoP): the one that is not
    // carrying goes there, so that the one carrying keeps the site up until the new one is.
    let carrier = tunnels
        .iter()
        .filter(at_primary)
        .find(|c| observed.ike(c).is_some())
        .or_else(|| tunnels.iter().find(at_primary))
        .or_else(|| tunnels.iter().find(|c| !observed.child_installed(c)))
        .or_else(|| tunnels.first())
        .cloned();
    let standby = want(Role::Secondary).and_then(|ip| {
        let other = tunnels.iter().find(|t| Some(*t) != carrier.as_ref())?;
        Some((other.clone(), ip))
    });
    Assignment {
        carrier: carrier.map(|c| (c, primary_ip)),
        standby,
    }
}

fn selectors(list: &[TrafficSelector]) -> Vec<String> {
    if list.is_empty() {
        return vec!["0.0.0.0/0".to_owned()];
    }
    list.iter().map(ToString::to_string).collect()
}

/// The connection of a tunnel at `remote`. Nothing starts on load: popsel initiates what it
/// wants, so that loading never makes a second CHILD_SA compete with the carrier's.
fn conn_spec(location: &Location, tunnel: &TunnelConfig, name: &str, remote: IpAddr) -> ConnSpec {
    ConnSpec {
        remote_addrs: vec![remote.to_string()],
        // popsel decides which address of a PoP to use (it measures them): charon moving an
        // SA to another address by itself would be undone on the next round.
        mobike: Some(false),
        dpd_delay: Some(DPD_DELAY),
        childless: Some(Childless::Allow),
        local_id: tunnel.authentication_id.clone(),
        children: vec![ChildSpec {
            name: name.to_owned(),
            local_ts: selectors(&location.local_ts),
            remote_ts: selectors(&location.remote_ts),
            start_action: Some(Action::None),
            dpd_action: Some(Action::None),
            close_action: Some(Action::None),
            ..ChildSpec::default()
        }],
        ..ConnSpec::default()
    }
}

/// The tunnel whose connection is `conn`.
fn tunnel_of<'a>(location: &'a Location, conn: &str) -> Option<&'a TunnelConfig> {
    Role::ALL
        .into_iter()
        .find(|r| conn_name(location, *r) == conn)
        .and_then(|r| location.tunnel(r))
}

/// The steps that make charon carry `location`'s traffic as `selection` says, in order: the
/// secrets; the carrier (pointed at the primary PoP, its CHILD_SA asked for); only then the
/// standby (closed where it was, pointed at the secondary PoP, its CHILD_SA closed if it had
/// one, its IKE_SA brought up), so that the old path is broken only after the new one is made.
pub fn plan_location(
    location: &Location,
    selection: &LocationSelection,
    observed: &Observed,
) -> (Assignment, Vec<Step>) {
    let assignment = assign(location, selection, observed);
    let mut steps: Vec<Step> = location
        .tunnels
        .iter()
        .map(|tunnel| Step::LoadShared {
            id: conn_name(location, tunnel.role),
            owner: tunnel.authentication_id.clone(),
            psk: tunnel.psk.clone(),
        })
        .collect();
    let up_at = |conn: &str, ip: IpAddr| observed.ike_at(conn, ip).is_some();
    // Points `conn` at `ip`: load-conn replaces the config, but an IKE_SA made for another
    // address stays up unless closed.
    let point = |steps: &mut Vec<Step>, conn: &str, ip: IpAddr| {
        let Some(tunnel) = tunnel_of(location, conn) else {
            return;
        };
        for id in observed.elsewhere(conn, ip) {
            steps.push(Step::TerminateIke {
                conn: conn.to_owned(),
                id: Some(id),
            });
        }
        steps.push(Step::LoadConn {
            name: conn.to_owned(),
            spec: conn_spec(location, tunnel, conn, ip),
        });
    };
    if let Some((conn, ip)) = &assignment.carrier {
        point(&mut steps, conn, *ip);
        let carrying = up_at(conn, *ip) && observed.child_installed(conn);
        if !carrying && !observed.pending(conn, *ip) {
            steps.push(Step::InitiateChild { conn: conn.clone() });
        }
    }
    if let Some((conn, ip)) = &assignment.standby {
        point(&mut steps, conn, *ip);
        if up_at(conn, *ip) && observed.child_installed(conn) {
            steps.push(Step::TerminateChild { conn: conn.clone() });
        }
        if !up_at(conn, *ip) && !observed.pending(conn, *ip) {
            steps.push(Step::InitiateIke { conn: conn.clone() });
        }
    }
    // A tunnel with no part this round (no secondary PoP): nothing of it stays up.
    let wanted = |conn: &String| {
        [&assignment.carrier, &assignment.standby]
            .into_iter()
            .flatten()
            .any(|(c, _)| c == conn)
    };
    for tunnel in &location.tunnels {
        let conn = conn_name(location, tunnel.role);
        if !wanted(&conn) && observed.sas.iter().any(|sa| sa.name == conn) {
            steps.push(Step::TerminateIke { conn, id: None });
        }
    }
    (assignment, steps)
}

/// popsel's connections that no configured tunnel wants any more (a location or tunnel
/// removed from the config): closed, unloaded, their secrets too.
pub fn plan_removals(locations: &[Location], observed: &Observed) -> Vec<Step> {
    let configured: Vec<String> = locations
        .iter()
        .flat_map(|l| l.tunnels.iter().map(|t| conn_name(l, t.role)))
        .collect();
    let mut steps = Vec::new();
    for conn in &observed.conns {
        if !conn.name.starts_with(PREFIX) || configured.contains(&conn.name) {
            continue;
        }
        if observed.sas.iter().any(|sa| sa.name == conn.name) {
            steps.push(Step::TerminateIke {
                conn: conn.name.clone(),
                id: None,
            });
        }
        steps.push(Step::UnloadConn {
            name: conn.name.clone(),
        });
        steps.push(Step::UnloadShared {
            id: conn.name.clone(),
        });
    }
    steps
}

#[cfg(test)]
#[path = "sa_plan_tests.rs"]
mod tests;
