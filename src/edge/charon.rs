//! The hand-off to the router's charon over VICI: what charon holds is read, the steps of
//! [`sa_plan`](super::sa_plan) are run, and what charon holds after is read back for the
//! metrics. Level-triggered: every round makes charon match the selection, so a charon that
//! restarted, or an SA that went down, is brought back on the next round without a change.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::sa_plan::{Assignment, Observed, PREFIX, Step, plan_location, plan_removals};
use super::vici::{SaRef, Vici, ViciError, Wait};
use crate::location::{Location, Role};
use crate::select::Selection;

/// How long the carrier's CHILD_SA is waited for before the old one is closed: one
/// CREATE_CHILD_SA exchange on failover, a full IKE negotiation on a first start. Past it, the
/// negotiation goes on in charon and the next round looks again.
const CARRIER_WAIT: Duration = Duration::from_secs(5);

/// One tunnel's part in a location, as charon holds it after the round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaStatus {
    pub location: String,
    /// The selection role it serves: the primary carries, the secondary stands by.
    pub role: Role,
    /// The Atmos tunnel (its identity) doing it.
    pub tunnel: String,
    /// The PoP it is at.
    pub pop: String,
    /// Primary: its CHILD_SA is installed. Secondary: its IKE_SA is established.
    pub up: bool,
    /// Whether its IKE_SA is established (what Atmos should report as Connected).
    pub ike_up: bool,
    /// The installed CHILD_SA's unique id and traffic (primary only).
    pub child_id: Option<u32>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    /// Since its IKE_SA was established.
    pub established_secs: Option<u64>,
}

/// What a round did: each location's SAs afterwards, and the locations it failed for.
#[derive(Debug, Default)]
pub struct Converged {
    pub sas: Vec<SaStatus>,
    pub failures: Vec<(String, ViciError)>,
    /// (location, address) where the carrier's CHILD_SA could not be brought up while the
    /// location's standby stood at its secondary PoP: the tunnels exist in Atmos (a PoP took
    /// one), so the PoP at that address refuses; the selection then leaves it.
    pub refused: Vec<(String, IpAddr)>,
}

/// What charon holds of popsel's connections.
async fn observe(vici: &mut Vici) -> Result<Observed, ViciError> {
    let mut conns = vici.list_conns(None).await?;
    conns.retain(|c| c.name.starts_with(PREFIX));
    let mut sas = vici.list_sas(None).await?;
    sas.retain(|sa| sa.name.starts_with(PREFIX));
    Ok(Observed { conns, sas })
}

async fn run(vici: &mut Vici, step: &Step) -> Result<(), ViciError> {
    match step {
        Step::LoadShared { id, owner, psk } => vici.load_shared(id, psk, &[owner]).await,
        Step::LoadConn { name, spec } => vici.load_conn(name, spec).await,
        Step::InitiateChild { conn } => {
            vici.initiate(conn, Some(conn), Wait::UpTo(CARRIER_WAIT))
                .await
        }
        Step::InitiateIke { conn } => vici.initiate(conn, None, Wait::Background).await,
        Step::TerminateChild { conn } => {
            let child = SaRef::Child {
                ike: Some(conn),
                child: conn,
            };
            vici.terminate(child, false, Wait::Background)
                .await
                .map(drop)
        }
        Step::TerminateIke { conn, id } => {
            let sa = id.map_or(SaRef::Ike(conn), SaRef::IkeId);
            vici.terminate(sa, true, Wait::Background).await.map(drop)
        }
        Step::UnloadConn { name } => vici.unload_conn(name).await,
        Step::UnloadShared { id } => vici.unload_shared(id).await,
    }
}

/// Makes the charon at `socket` carry the traffic of every location of this host (`local`) as
/// `selection` says, and unloads popsel's connections no such location's tunnel wants. A location whose steps fail is
/// reported and the others go on; failing to reach charon at all is an error.
pub async fn converge(
    socket: &Path,
    timeout: Duration,
    locations: &[Location],
    selection: &Selection,
) -> Result<Converged, ViciError> {
    // Only the locations measured from this host are this router's: another site's tunnels
    // brought up here would take that site's identity at the PoP.
    let locations: Vec<Location> = locations.iter().filter(|l| l.local).cloned().collect();
    let locations = &locations[..];
    let mut vici = Vici::connect(socket, timeout).await?;
    let observed = observe(&mut vici).await?;
    let mut converged = Converged::default();
    let mut assignments = Vec::new();
    for location in locations {
        let Some(wanted) = selection.locations.get(&location.name) else {
            continue;
        };
        let (assignment, steps) = plan_location(location, wanted, &observed);
        // A failed step ends the location's round: the steps after it may break what carries
        // (the old carrier is closed only after the new one was asked for successfully).
        for step in &steps {
            let result = run(&mut vici, step).await;
            // A command that timed out leaves the connection out of use: the next location
            // gets a new one.
            if vici.is_broken() {
                vici = Vici::connect(socket, timeout).await?;
            }
            if let Err(error) = result {
                if let Some(ip) = refused_at(step, &assignment, &observed) {
                    converged.refused.push((location.name.clone(), ip));
                }
                converged.failures.push((location.name.clone(), error));
                break;
            }
        }
        assignments.push((location, assignment));
    }
    for step in plan_removals(locations, &observed) {
        let result = run(&mut vici, &step).await;
        if vici.is_broken() {
            vici = Vici::connect(socket, timeout).await?;
        }
        if let Err(error) = result {
            converged.failures.push(("(removed)".to_owned(), error));
        }
    }
    let after = observe(&mut vici).await?;
    for (location, assignment) in assignments {
        converged
            .sas
            .extend(status(location, &assignment, selection, &after));
    }
    Ok(converged)
}

/// The carrier's address, when `step` (which failed) asked for the carrier's CHILD_SA and the
/// standby's IKE_SA was up at its address before the round: proof that the tunnels exist in
/// Atmos, so that a first start, before reconcile has created them, refuses nothing.
fn refused_at(step: &Step, assignment: &Assignment, observed: &Observed) -> Option<IpAddr> {
    let Step::InitiateChild { conn } = step else {
        return None;
    };
    let (carrier, ip) = assignment.carrier.as_ref()?;
    let (standby, standby_ip) = assignment.standby.as_ref()?;
    let standby_up = observed.ike_at(standby, *standby_ip).is_some();
    (conn == carrier && standby_up).then_some(*ip)
}

/// Every role of every location of this host as down: what the metrics say when charon cannot
/// be reached (rather than the last state seen, which would keep `popsel_ipsec_sa_up` at 1).
pub fn unreachable(locations: &[Location], selection: &Selection) -> Vec<SaStatus> {
    let mut out = Vec::new();
    for location in locations.iter().filter(|l| l.local) {
        let Some(wanted) = selection.locations.get(&location.name) else {
            continue;
        };
        for tunnel in &location.tunnels {
            let Some(choice) = &wanted.role(tunnel.role).choice else {
                continue;
            };
            out.push(SaStatus {
                location: location.name.clone(),
                role: tunnel.role,
                tunnel: tunnel.name.clone(),
                pop: choice.pop.to_string(),
                up: false,
                ike_up: false,
                child_id: None,
                bytes_in: None,
                bytes_out: None,
                established_secs: None,
            });
        }
    }
    out
}

/// The carrier's and the standby's status after the round.
fn status(
    location: &Location,
    assignment: &Assignment,
    selection: &Selection,
    after: &Observed,
) -> Vec<SaStatus> {
    let mut out = Vec::new();
    for (role, part) in [
        (Role::Primary, &assignment.carrier),
        (Role::Secondary, &assignment.standby),
    ] {
        let Some((conn, ip)) = part else { continue };
        let Some(tunnel) = location
            .tunnels
            .iter()
            .find(|t| super::sa_plan::conn_name(location, t.role) == *conn)
        else {
            continue;
        };
        let pop = selection
            .locations
            .get(&location.name)
            .and_then(|s| s.role(role).choice.as_ref())
            .map(|c| c.pop.to_string())
            .unwrap_or_default();
        let ike = after.ike_at(conn, *ip);
        let child = ike.and_then(|sa| sa.installed_child(conn));
        out.push(SaStatus {
            location: location.name.clone(),
            role,
            tunnel: tunnel.name.clone(),
            pop,
            up: match role {
                Role::Primary => child.is_some(),
                Role::Secondary => ike.is_some(),
            },
            ike_up: ike.is_some(),
            child_id: child.map(|c| c.uniqueid),
            bytes_in: child.and_then(|c| c.bytes_in),
            bytes_out: child.and_then(|c| c.bytes_out),
            established_secs: ike.and_then(|sa| sa.established_secs),
        });
    }
    out
}
