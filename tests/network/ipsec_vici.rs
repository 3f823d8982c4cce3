//! `popsel run` driving the branch's charon over VICI (`[edge] vici_socket`) in the IPsec lab:
//! the tunnels popsel provisions through the emulator come up at the PoPs it selects, the
//! primary carries the traffic, the secondary stands by with an IKE_SA and no CHILD_SA; when the
//! primary PoP goes dark, the standby carries and a new secondary stands by; a PoP that comes
//! back is not switched back to; a silent endpoint of the primary PoP is left for the PoP's
//! other one; a charon that lost popsel's connections gets them again; popsel's probes stay
//! out of the tunnel. Packets tell: the lab's service address answers with the name of the PoP
//! that carried the question.
//!
//! Root only (namespaces, charon): skips elsewhere, fails under CI=true.

use crate::support;
use crate::support::ipsec::agent::{
    AgentLab, METRICS, PRIMARY_CONN, PSK_1, PSK_2, PSK_FRANKFURT, SECONDARY_CONN, branch_sas,
    pop_of, settled,
};
use crate::support::ipsec::{self, LabSpec};

use std::net::IpAddr;
use std::time::Duration;

use popsel::atmos::Tunnel;
use popsel::edge::vici::{ChildState, SaRef, Vici, Wait};
/// Generous: the first round waits for the tunnels to be created and the PoPs to follow.
const SETTLED_WITHIN: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_carries_the_standby_takes_over_when_it_goes_dark_and_nothing_flaps_back() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let running = AgentLab::start(lab).await.expect("the agent's lab");
    let (lab, agent) = (&running.lab, &running.agent);

    // Steady state: the primary's CHILD_SA carries, the secondary stands by without one.
    let (primary, secondary) = settled(lab, agent, SETTLED_WITHIN).await;
    assert_ne!(pop_of(lab, primary), pop_of(lab, secondary));
    // Frankfurt is configured but not measured from here: its tunnels are another router's.
    let mut vici = Vici::connect(&lab.branch_charon().vici_socket(), Duration::from_secs(5))
        .await
        .expect("connect");
    let conns = vici.get_conns().await.expect("get-conns");
    assert_eq!(conns.len(), 2, "only Chicago's: {conns:?}");
    assert!(
        conns.iter().all(|c| c.starts_with("popsel-chicago-")),
        "{conns:?}"
    );
    // The metrics say the same (from the next round on: the standby's IKE_SA is asked for in
    // the background): the primary carries (and has carried the service's questions), the
    // secondary stands by, both tunnels' IKE_SAs are up.
    let roles_up = |metrics: &str| {
        ["primary", "secondary"].iter().all(|role| {
            metrics.lines().any(|l| {
                l.starts_with("popsel_ipsec_sa_up{")
                    && l.contains(&format!("role=\"{role}\""))
                    && l.ends_with(" 1")
            })
        })
    };
    // Counted at a hand-off after the questions went through: a round or two later.
    let bytes_out = |metrics: &str| {
        metrics.lines().any(|l| {
            l.starts_with("popsel_ipsec_bytes_total{")
                && l.contains("direction=\"out\"")
                && !l.ends_with(" 0")
        })
    };
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = agent
            .metrics(METRICS.parse().expect("address"))
            .unwrap_or_else(|e| panic!("{e}"));
        if roles_up(&metrics) && bytes_out(&metrics) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(roles_up(&metrics), "{metrics}");
    assert!(bytes_out(&metrics), "{metrics}");
    let ike_up = metrics
        .lines()
        .filter(|l| l.starts_with("popsel_ipsec_ike_up{"));
    assert_eq!(ike_up.filter(|l| l.ends_with(" 1")).count(), 2, "{metrics}");
    for psk in [PSK_1, PSK_2, PSK_FRANKFURT] {
        assert!(!metrics.contains(psk), "a PSK in the metrics");
    }
    // And it stays so: the probes to the carrying PoP are answered (through the tunnel, when
    // the PoP's selectors cover this host) and it never looks dead.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        agent.selection(),
        Some((primary, Some(secondary))),
        "{}",
        agent.log()
    );
    assert_eq!(lab.who_answers(), Some(pop_of(lab, primary)));

    // The primary PoP goes dark: the standby carries, with no IKE negotiation on the way.
    let dark = pop_of(lab, primary);
    let standby = pop_of(lab, secondary);
    lab.go_dark(dark).expect("go dark");
    let took = lab
        .wait_until_answered_by(standby, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n--- log\n{}", agent.log()));
    eprintln!("failover: the standby PoP answered {took:?} after the primary went dark");

    // popsel promoted the secondary and stands by at the third PoP.
    let (new_primary, new_secondary) = settled(lab, agent, Duration::from_secs(20)).await;
    assert_eq!(new_primary, secondary, "the standby was promoted");
    let third = pop_of(lab, new_secondary);
    assert!(
        third != dark && third != standby,
        "a new secondary: {new_secondary}"
    );

    // The dark PoP comes back: anti-flap keeps the current primary (no PoP is better enough).
    lab.come_back(dark).expect("come back");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(agent.selection().map(|s| s.0), Some(new_primary));
    assert_eq!(lab.who_answers(), Some(standby));

    // The PSKs went to charon over VICI only: never in popsel's output.
    let log = agent.log();
    for psk in [PSK_1, PSK_2, PSK_FRANKFURT] {
        assert!(!log.contains(psk), "a PSK in popsel's output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_charon_is_given_its_connections_again() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(2)) else {
        return;
    };
    let running = AgentLab::start(lab).await.expect("the agent's lab");
    let (lab, agent) = (&running.lab, &running.agent);
    let (primary, _) = settled(lab, agent, SETTLED_WITHIN).await;

    // Everything popsel loaded is gone, as after a charon restart.
    let mut vici = Vici::connect(&lab.branch_charon().vici_socket(), Duration::from_secs(5))
        .await
        .expect("connect");
    for conn in [PRIMARY_CONN, SECONDARY_CONN] {
        let _ = vici
            .terminate(SaRef::Ike(conn), true, Wait::UpTo(Duration::from_secs(2)))
            .await;
        vici.unload_conn(conn).await.expect("unload");
    }
    assert_eq!(lab.who_answers(), None, "nothing carries once unloaded");

    // The next round (every 2 s) loads and brings them up again, with no selection change.
    let (again, _) = settled(lab, agent, Duration::from_secs(20)).await;
    assert_eq!(again, primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_endpoint_of_the_primary_pop_is_left_for_the_pops_other_one() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(2)) else {
        return;
    };
    let running = AgentLab::start(lab).await.expect("the agent's lab");
    let (lab, agent) = (&running.lab, &running.agent);
    let (primary, _) = settled(lab, agent, SETTLED_WITHIN).await;
    let pop = pop_of(lab, primary);
    let addresses = lab.pop(pop).addresses();
    let k = addresses
        .iter()
        .position(|a| IpAddr::V4(*a) == primary)
        .expect("the primary's address is its PoP's");
    let other = IpAddr::V4(addresses[(k + 1) % addresses.len()]);

    // The chosen address goes silent; the PoP's other one still answers.
    lab.silence_endpoint(pop, k).expect("silence the endpoint");
    let (moved, _) = settled(lab, agent, Duration::from_secs(20)).await;
    assert_eq!(
        moved,
        other,
        "the same PoP, its other endpoint:\n{}",
        agent.log()
    );
    assert_eq!(lab.who_answers(), Some(pop));
    let sas = branch_sas(lab).await;
    let carrier = sas
        .iter()
        .find(|sa| sa.children.iter().any(|c| c.state == ChildState::Installed))
        .expect("a carrier");
    assert_eq!(carrier.remote_host, Some(other), "{sas:#?}");
    assert!(
        agent
            .log()
            .contains("stopped answering or left the catalogue"),
        "{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_pop_that_answers_pings_but_refuses_the_tunnel_is_left_for_the_standby() {
    let Some(lab) = ipsec::start_or_skip(LabSpec::new(3)) else {
        return;
    };
    let running = AgentLab::start(lab).await.expect("the agent's lab");
    let (lab, agent) = (&running.lab, &running.agent);
    let (primary, secondary) = settled(lab, agent, SETTLED_WITHIN).await;
    let refusing = pop_of(lab, primary);

    // The primary PoP forgets the account's tunnels and closes what it held: it still answers
    // ICMP, so only the hand-off can tell.
    let pop = lab.pop(refusing).charon();
    pop.load("connections {\n}\nsecrets {\n}\n")
        .expect("unload the PoP's tunnels");
    let tunnels = support::client_for(&running.sim)
        .list::<Tunnel>()
        .await
        .expect("list the tunnels");
    for tunnel in &tunnels {
        pop.swanctl_handle()
            .terminate_ike(&format!("atmos-{}", tunnel.id));
    }

    // popsel finds the carrier refused there while the standby stands: it leaves the PoP,
    // the standby carries.
    let standby = pop_of(lab, secondary);
    lab.wait_until_answered_by(standby, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e}\n--- log\n{}", agent.log()));
    let (now, _) = settled(lab, agent, Duration::from_secs(20)).await;
    assert_ne!(pop_of(lab, now), refusing, "{}", agent.log());
}
