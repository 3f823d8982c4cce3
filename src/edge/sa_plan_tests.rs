use super::*;
use crate::edge::fixtures::{PSK, choice, location, selection};
use crate::select::{Choice, RoleState};

const PRIMARY: &str = "popsel-chicago_hq-primary";
const SECONDARY: &str = "popsel-chicago_hq-secondary";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 18, 0, last])
}

fn conn(name: &str, remote: u8) -> LoadedConn {
    LoadedConn {
        name: name.into(),
        local_addrs: vec![],
        remote_addrs: vec![ip(remote).to_string()],
        version: "IKEv2".into(),
        children: vec![name.into()],
    }
}

fn ike(name: &str, id: u32, remote: u8, state: IkeState, child: Option<ChildState>) -> IkeSa {
    IkeSa {
        name: name.into(),
        uniqueid: id,
        state,
        local_host: None,
        local_id: None,
        remote_host: Some(ip(remote)),
        remote_id: None,
        established_secs: Some(5),
        children: child
            .into_iter()
            .map(|state| crate::edge::vici::ChildSa {
                key: format!("{name}-{id}"),
                name: name.into(),
                uniqueid: id,
                state,
                bytes_in: None,
                bytes_out: None,
                packets_in: None,
                packets_out: None,
                install_time_secs: None,
                local_ts: vec![],
                remote_ts: vec![],
            })
            .collect(),
    }
}

/// Primary at .1 carrying, secondary at .2 standing by: what the fixture selection wants.
fn steady() -> Observed {
    Observed {
        conns: vec![conn(PRIMARY, 1), conn(SECONDARY, 2)],
        sas: vec![
            ike(
                PRIMARY,
                1,
                1,
                IkeState::Established,
                Some(ChildState::Installed),
            ),
            ike(SECONDARY, 2, 2, IkeState::Established, None),
        ],
    }
}

/// The steps as short words, the order being what is tested.
fn words(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::LoadShared { id, .. } => format!("shared {id}"),
            Step::LoadConn { name, spec } => format!("load {name} {}", spec.remote_addrs[0]),
            Step::InitiateChild { conn } => format!("child {conn}"),
            Step::InitiateIke { conn } => format!("ike {conn}"),
            Step::TerminateChild { conn } => format!("close child {conn}"),
            Step::TerminateIke { conn, id } => format!("close ike {conn} {id:?}"),
            Step::UnloadConn { name } => format!("unload {name}"),
            Step::UnloadShared { id } => format!("unload shared {id}"),
        })
        .collect()
}

fn with_ip(c: Choice, last: u8) -> Choice {
    Choice { ip: ip(last), ..c }
}

#[test]
fn a_fresh_charon_gets_the_carrier_up_then_the_standby_childless() {
    let (assignment, steps) = plan_location(&location(), &selection(), &Observed::default());
    assert_eq!(assignment.carrier, Some((PRIMARY.into(), ip(1))));
    assert_eq!(assignment.standby, Some((SECONDARY.into(), ip(2))));
    assert_eq!(
        words(&steps),
        [
            format!("shared {PRIMARY}"),
            format!("shared {SECONDARY}"),
            format!("load {PRIMARY} 198.18.0.1"),
            format!("child {PRIMARY}"),
            format!("load {SECONDARY} 198.18.0.2"),
            format!("ike {SECONDARY}"),
        ]
    );
}

#[test]
fn a_steady_state_initiates_and_closes_nothing() {
    let (_, steps) = plan_location(&location(), &selection(), &steady());
    assert!(
        words(&steps)
            .iter()
            .all(|w| w.starts_with("shared") || w.starts_with("load")),
        "{:?}",
        words(&steps)
    );
}

#[test]
fn on_failover_the_tunnel_already_at_the_new_primary_carries_before_the_old_path_closes() {
    // The primary PoP (.1) died: the secondary (.2) is promoted, .3 is the new secondary.
    let mut next = selection();
    next.primary.choice = Some(with_ip(choice("Toronto", "tor"), 2));
    next.secondary.choice = Some(with_ip(choice("Dallas", "dal"), 3));
    let (assignment, steps) = plan_location(&location(), &next, &steady());
    assert_eq!(assignment.carrier, Some((SECONDARY.into(), ip(2))));
    assert_eq!(assignment.standby, Some((PRIMARY.into(), ip(3))));
    assert_eq!(
        words(&steps)[2..],
        [
            format!("load {SECONDARY} 198.18.0.2"),
            // One CREATE_CHILD_SA over the IKE_SA already up: no IKE negotiation.
            format!("child {SECONDARY}"),
            format!("close ike {PRIMARY} Some(1)"),
            format!("load {PRIMARY} 198.18.0.3"),
            format!("ike {PRIMARY}"),
        ]
    );
}

#[test]
fn a_carrier_that_becomes_the_standby_closes_its_child_after_the_new_carrier_is_asked() {
    // Anti-flap swapped the roles of two live PoPs.
    let mut next = selection();
    next.primary.choice = Some(with_ip(choice("Toronto", "tor"), 2));
    next.secondary.choice = Some(with_ip(choice("Chicago", "chi"), 1));
    let (_, steps) = plan_location(&location(), &next, &steady());
    let w = words(&steps);
    let child = w.iter().position(|s| *s == format!("child {SECONDARY}"));
    let close = w
        .iter()
        .position(|s| *s == format!("close child {PRIMARY}"));
    assert!(child.is_some() && close.is_some() && child < close, "{w:?}");
    assert!(!w.iter().any(|s| s.starts_with("close ike")), "{w:?}");
    assert!(!w.iter().any(|s| s.starts_with("ike ")), "{w:?}");
}

#[test]
fn what_is_on_its_way_is_not_asked_for_twice() {
    let observed = Observed {
        conns: vec![conn(PRIMARY, 1), conn(SECONDARY, 2)],
        sas: vec![
            ike(
                PRIMARY,
                1,
                1,
                IkeState::Established,
                Some(ChildState::Installing),
            ),
            ike(SECONDARY, 2, 2, IkeState::Connecting, None),
        ],
    };
    let (_, steps) = plan_location(&location(), &selection(), &observed);
    let w = words(&steps);
    assert!(
        !w.iter()
            .any(|s| s.starts_with("child") || s.starts_with("ike")),
        "{w:?}"
    );
}

#[test]
fn only_the_ike_sa_at_the_old_address_is_closed() {
    let mut observed = steady();
    observed
        .sas
        .push(ike(SECONDARY, 7, 9, IkeState::Connecting, None));
    let (_, steps) = plan_location(&location(), &selection(), &observed);
    let w = words(&steps);
    assert!(
        w.contains(&format!("close ike {SECONDARY} Some(7)")),
        "{w:?}"
    );
    assert!(
        !w.contains(&format!("close ike {SECONDARY} Some(2)")),
        "{w:?}"
    );
}

#[test]
fn without_a_secondary_pop_the_other_tunnel_is_closed() {
    let mut next = selection();
    next.secondary = RoleState::default();
    let (assignment, steps) = plan_location(&location(), &next, &steady());
    assert_eq!(assignment.standby, None);
    assert!(words(&steps).contains(&format!("close ike {SECONDARY} None")));
}

#[test]
fn removed_tunnels_are_closed_and_unloaded_and_other_connections_left_alone() {
    let observed = Observed {
        conns: vec![
            conn(PRIMARY, 1),
            conn("popsel-gone-primary", 5),
            conn("site-to-site", 6),
        ],
        sas: vec![
            ike("popsel-gone-primary", 3, 5, IkeState::Established, None),
            ike("site-to-site", 4, 6, IkeState::Established, None),
        ],
    };
    let steps = plan_removals(&[location()], &observed);
    assert_eq!(
        words(&steps),
        [
            "close ike popsel-gone-primary None",
            "unload popsel-gone-primary",
            "unload shared popsel-gone-primary"
        ]
    );
}

#[test]
fn connections_start_nothing_on_load_and_carry_the_locations_selectors() {
    let mut loc = location();
    loc.local_ts = vec![TrafficSelector::parse("10.1.0.0/24").unwrap()];
    let (_, steps) = plan_location(&loc, &selection(), &Observed::default());
    let Some(Step::LoadConn { spec, .. }) = steps
        .iter()
        .find(|s| matches!(s, Step::LoadConn { name, .. } if name == PRIMARY))
    else {
        panic!("no load-conn for the primary")
    };
    assert_eq!(spec.local_id, loc.tunnels[0].authentication_id);
    assert_eq!(spec.childless, Some(Childless::Allow));
    let child = &spec.children[0];
    assert_eq!(
        (child.local_ts.as_slice(), child.remote_ts.as_slice()),
        (
            &["10.1.0.0/24".to_owned()][..],
            &["0.0.0.0/0".to_owned()][..]
        )
    );
    assert_eq!(child.start_action, Some(Action::None));
}

#[test]
fn the_steps_never_show_a_psk() {
    let (_, steps) = plan_location(&location(), &selection(), &Observed::default());
    let text = format!("{steps:?}");
    assert!(text.contains("LoadShared"), "{text}");
    assert!(!text.contains(PSK) && !text.contains("s3cret"), "{text}");
}

#[test]
fn a_planned_switch_to_a_third_pop_keeps_the_carrier_until_the_new_one_is_asked_for() {
    // Anti-flap moved the primary to .3, where no tunnel is; .2 stays the secondary.
    let mut next = selection();
    next.primary.choice = Some(with_ip(choice("Dallas", "dal"), 3));
    let (assignment, steps) = plan_location(&location(), &next, &steady());
    assert_eq!(
        assignment.carrier,
        Some((SECONDARY.into(), ip(3))),
        "the tunnel that is not carrying goes to the new primary"
    );
    let w = words(&steps);
    let asked = w.iter().position(|s| *s == format!("child {SECONDARY}"));
    let closed = w
        .iter()
        .position(|s| s.starts_with(&format!("close ike {PRIMARY}")));
    assert!(
        asked.is_some() && closed.is_some() && asked < closed,
        "{w:?}"
    );
}

#[test]
fn a_child_being_rekeyed_or_moved_is_carrying() {
    for state in [ChildState::Rekeying, ChildState::Updating] {
        let observed = Observed {
            conns: vec![conn(PRIMARY, 1), conn(SECONDARY, 2)],
            sas: vec![
                ike(PRIMARY, 1, 1, IkeState::Established, Some(state.clone())),
                ike(SECONDARY, 2, 2, IkeState::Established, None),
            ],
        };
        let (_, steps) = plan_location(&location(), &selection(), &observed);
        let w = words(&steps);
        assert!(
            !w.iter().any(|s| s.starts_with("child")),
            "{state:?}: {w:?}"
        );
    }
}

#[test]
fn connections_leave_the_choice_of_address_to_popsel() {
    let (_, steps) = plan_location(&location(), &selection(), &Observed::default());
    let specs: Vec<&ConnSpec> = steps
        .iter()
        .filter_map(|s| match s {
            Step::LoadConn { spec, .. } => Some(spec),
            _ => None,
        })
        .collect();
    assert_eq!(specs.len(), 2, "{steps:?}");
    assert!(specs.iter().all(|spec| spec.mobike == Some(false)));
}
