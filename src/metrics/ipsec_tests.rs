use super::*;
use crate::location::Role;
use crate::metrics::fixtures::exposition;

fn sa(role: Role, up: bool, child: Option<(u32, u64, u64)>) -> SaStatus {
    SaStatus {
        location: "chicago".into(),
        role,
        tunnel: format!("Chicago {role}"),
        pop: "US/Chicago/AWS".into(),
        up,
        ike_up: up,
        child_id: child.map(|c| c.0),
        bytes_in: child.map(|c| c.1),
        bytes_out: child.map(|c| c.2),
        established_secs: Some(30),
    }
}

#[test]
fn each_role_says_whether_it_is_up_where() {
    let c = IpsecCollector::new().unwrap();
    c.observe(&[
        sa(Role::Primary, true, Some((1, 10, 20))),
        sa(Role::Secondary, false, None),
    ]);
    let t = exposition(c.clone());
    assert!(t.contains(r#"popsel_ipsec_sa_up{location="chicago",pop="US/Chicago/AWS",role="primary",tunnel="Chicago primary"} 1"#), "{t}");
    assert!(t.contains(r#"popsel_ipsec_sa_up{location="chicago",pop="US/Chicago/AWS",role="secondary",tunnel="Chicago secondary"} 0"#), "{t}");
    assert!(
        t.contains(r#"popsel_ipsec_ike_up{location="chicago",tunnel="Chicago secondary"} 0"#),
        "{t}"
    );
    assert!(
        t.contains(r#"popsel_ipsec_sa_established_seconds{location="chicago",role="primary"} 30"#),
        "{t}"
    );
}

#[test]
fn bytes_never_go_back_when_the_sa_is_replaced() {
    let c = IpsecCollector::new().unwrap();
    let bytes_in = |c: &IpsecCollector| {
        c.bytes
            .with_label_values(&["chicago", "primary", "in"])
            .get()
    };
    c.observe(&[sa(Role::Primary, true, Some((1, 100, 0)))]);
    c.observe(&[sa(Role::Primary, true, Some((1, 150, 0)))]);
    assert_eq!(bytes_in(&c), 150);
    // Failover: a new CHILD_SA counts from zero.
    c.observe(&[sa(Role::Primary, true, Some((2, 40, 0)))]);
    assert_eq!(bytes_in(&c), 190);
    // A CHILD_SA whose count went back (charon restarted it under the same id) counts anew.
    c.observe(&[sa(Role::Primary, true, Some((2, 10, 0)))]);
    assert_eq!(bytes_in(&c), 200);
    // Down: no traffic counted, nothing lost.
    c.observe(&[sa(Role::Primary, false, None)]);
    assert_eq!(bytes_in(&c), 200);
}
