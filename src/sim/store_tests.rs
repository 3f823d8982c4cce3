use serde_json::json;

use super::*;

fn tunnel_body(name: &str, auth: &str) -> Value {
    json!({"name": name, "authenticationID": auth, "authenticationPSK": "12345678", "locationID": "loc-1"})
}

#[test]
fn create_applies_the_documented_validation() {
    let mut s = Store::default();
    let cases = [
        (
            json!({"authenticationID": "a@b.co", "authenticationPSK": "12345678", "locationID": "l"}),
            "name is mandatory",
        ),
        (
            json!({"name": "t", "authenticationPSK": "12345678", "locationID": "l"}),
            "authenticationID is mandatory",
        ),
        (
            json!({"name": "t", "authenticationID": "bob@", "authenticationPSK": "12345678", "locationID": "l"}),
            "valid email or IP address",
        ),
        (
            json!({"name": "t", "authenticationID": "a@b.co", "authenticationPSK": "1234567", "locationID": "l"}),
            "at least 8 characters",
        ),
        (
            json!({"name": "t", "authenticationID": "a@b.co", "authenticationPSK": "12345678"}),
            "locationID is mandatory",
        ),
        (
            json!({"name": 5, "authenticationID": "a@b.co", "authenticationPSK": "12345678", "locationID": "l"}),
            "name must be a string",
        ),
        (json!(["not", "an", "object"]), "JSON object"),
    ];
    for (body, message) in cases {
        let e = s.create_tunnel(&body).unwrap_err();
        assert_eq!(e.status, 400, "{body}");
        assert!(e.message.contains(message), "{body}: {}", e.message);
    }
    assert!(s.list::<Tunnel>().is_empty());
}

#[test]
fn duplicate_name_or_authentication_id_is_a_conflict() {
    let mut s = Store::default();
    s.create_tunnel(&tunnel_body("t1", "a@b.co")).unwrap();
    let e = s.create_tunnel(&tunnel_body("t1", "c@d.co")).unwrap_err();
    assert_eq!((e.status, e.message.contains("named \"t1\"")), (409, true));
    let e = s.create_tunnel(&tunnel_body("t2", "a@b.co")).unwrap_err();
    assert_eq!(
        (e.status, e.message.contains("already in use")),
        (409, true)
    );
    assert_eq!(s.list::<Tunnel>().len(), 1);
}

#[test]
fn update_keeps_what_is_left_out_and_accepts_both_psk_spellings() {
    let mut s = Store::default();
    let t = s.create_tunnel(&tunnel_body("t1", "a@b.co")).unwrap();
    let other = s.create_tunnel(&tunnel_body("t2", "c@d.co")).unwrap();
    let u = s
        .update_tunnel(&t.id, &json!({"AuthenticationPSK": "new-secret"}))
        .unwrap();
    assert_eq!(
        (u.name.as_str(), u.authentication_id.as_str()),
        ("t1", "a@b.co")
    );
    assert!(s.tunnel_psk_is(&t.id, "new-secret").unwrap());
    s.update_tunnel(&t.id, &json!({"authenticationPSK": "newer-secret"}))
        .unwrap();
    assert!(s.tunnel_psk_is(&t.id, "newer-secret").unwrap());
    // Renaming onto another tunnel's name is a conflict; keeping one's own name is not.
    assert_eq!(
        s.update_tunnel(&t.id, &json!({"name": "t2"}))
            .unwrap_err()
            .status,
        409
    );
    assert!(s.update_tunnel(&t.id, &json!({"name": "t1"})).is_ok());
    assert_eq!(
        s.update_tunnel(&other.id, &json!({"authenticationPSK": "short"}))
            .unwrap_err()
            .status,
        400
    );
    assert_eq!(s.update_tunnel("nope", &json!({})).unwrap_err().status, 404);
}

#[test]
fn delete_status_and_not_found() {
    let mut s = Store::default();
    let t = s.create_tunnel(&tunnel_body("t1", "10.0.0.1")).unwrap();
    assert_eq!(
        s.status::<Tunnel>(&t.id).unwrap(),
        TunnelState::Disconnected
    );
    s.set_status::<Tunnel>(&t.id, TunnelState::Connected)
        .unwrap();
    assert_eq!(s.status::<Tunnel>(&t.id).unwrap(), TunnelState::Connected);
    s.delete::<Tunnel>(&t.id).unwrap();
    assert_eq!(s.delete::<Tunnel>(&t.id).unwrap_err().status, 404);
    assert_eq!(s.get::<Tunnel>(&t.id).unwrap_err().status, 404);
    assert_eq!(s.status::<Tunnel>(&t.id).unwrap_err().status, 404);
}

#[test]
fn connectors_follow_their_rules() {
    let mut s = Store::default();
    let c = s
        .create_connector(&json!({"name": "c1", "connectorZoneID": "z"}))
        .unwrap();
    assert!(
        c.command
            .as_deref()
            .is_some_and(|cmd| cmd.starts_with("sudo bash"))
    );
    assert_eq!(
        s.get::<Connector>(&c.id).unwrap().command,
        None,
        "the command only comes with create"
    );
    assert_eq!(
        s.create_connector(&json!({"name": "c1"}))
            .unwrap_err()
            .status,
        409
    );
    assert_eq!(s.create_connector(&json!({})).unwrap_err().status, 400);
    assert_eq!(
        s.status::<Connector>(&c.id).unwrap(),
        ConnectorState::Pending
    );
    let u = s
        .update_connector(&c.id, &json!({"enabled": false}))
        .unwrap();
    assert_eq!(
        (u.enabled, u.connector_zone_id.as_deref()),
        (Some(false), Some("z"))
    );
    assert_eq!(
        s.update_connector(&c.id, &json!({"enabled": "no"}))
            .unwrap_err()
            .status,
        400
    );
    let first = s.regenerate_connector(&c.id).unwrap();
    assert_ne!(first, s.regenerate_connector(&c.id).unwrap());
    s.delete::<Connector>(&c.id).unwrap();
    assert_eq!(s.regenerate_connector(&c.id).unwrap_err().status, 404);
}

#[test]
fn paging_slices_and_links_pages() {
    let items: Vec<u32> = (1..=7).collect();
    let page = PageRequest::parse(Some("3"), Some("2")).unwrap();
    let v = page.respond(&items, "http://h/api/v1/tunnels");
    assert_eq!(v["data"], json!([4, 5, 6]));
    assert_eq!(
        (v["totalPages"].as_u64(), v["totalRecords"].as_u64()),
        (Some(3), Some(7))
    );
    assert_eq!(
        v["nextPage"],
        json!("http://h/api/v1/tunnels?pageSize=3&pageNumber=3")
    );
    assert_eq!(
        v["previousPage"],
        json!("http://h/api/v1/tunnels?pageSize=3&pageNumber=1")
    );
    assert_eq!(
        v["lastPage"],
        json!("http://h/api/v1/tunnels?pageSize=3&pageNumber=3")
    );
    let last = PageRequest::parse(Some("3"), Some("3"))
        .unwrap()
        .respond(&items, "u");
    assert_eq!(
        (last["data"].clone(), last["nextPage"].clone()),
        (json!([7]), Value::Null)
    );
    let beyond = PageRequest::parse(Some("3"), Some("9"))
        .unwrap()
        .respond(&items, "u");
    assert_eq!(beyond["data"], json!([]));
    let first = PageRequest::parse(None, None).unwrap();
    assert_eq!(
        first,
        PageRequest {
            size: 100,
            number: 1
        }
    );
    for (size, number) in [
        (Some("0"), None),
        (Some("1001"), None),
        (None, Some("0")),
        (Some("x"), None),
    ] {
        assert_eq!(PageRequest::parse(size, number).unwrap_err().status, 400);
    }
}

#[test]
fn every_resource_lists_in_creation_order_and_names_itself_in_404s() {
    let mut s = Store::default();
    let tunnels: Vec<Tunnel> = (0..3)
        .map(|i| {
            s.create::<Tunnel>(&tunnel_body(&format!("t{i}"), &format!("t{i}@b.co")))
                .unwrap()
        })
        .collect();
    let connectors: Vec<Connector> = (0..3)
        .map(|i| {
            s.create::<Connector>(&json!({ "name": format!("c{i}") }))
                .unwrap()
        })
        .collect();
    s.delete::<Tunnel>(&tunnels[1].id).unwrap();
    s.delete::<Connector>(&connectors[0].id).unwrap();
    assert_eq!(s.list::<Tunnel>(), [tunnels[0].clone(), tunnels[2].clone()]);
    let names: Vec<String> = s.list::<Connector>().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["c1", "c2"]);

    let missing = |e: Rejection| (e.status, e.message);
    let not_found = |what: &str| (404, format!("{what} x not found"));
    assert_eq!(
        missing(s.get::<Tunnel>("x").unwrap_err()),
        not_found("tunnel")
    );
    assert_eq!(
        missing(s.status::<Tunnel>("x").unwrap_err()),
        not_found("tunnel")
    );
    assert_eq!(
        missing(
            s.set_status::<Connector>("x", ConnectorState::Available)
                .unwrap_err()
        ),
        not_found("connector")
    );
    assert_eq!(
        missing(s.delete::<Connector>("x").unwrap_err()),
        not_found("connector")
    );
    assert_eq!(
        missing(s.update::<Connector>("x", &json!({})).unwrap_err()),
        not_found("connector")
    );
    s.set_status::<Connector>(&connectors[1].id, ConnectorState::UdpOnly)
        .unwrap();
    assert_eq!(
        s.status::<Connector>(&connectors[1].id).unwrap(),
        ConnectorState::UdpOnly
    );
}

#[test]
fn a_tunnel_conflict_names_the_first_tunnel_that_clashes() {
    let mut s = Store::default();
    s.create_tunnel(&tunnel_body("t1", "a@b.co")).unwrap();
    s.create_tunnel(&tunnel_body("t2", "c@d.co")).unwrap();
    // Its authentication ID clashes with t1, made first; its name with t2.
    let e = s.create_tunnel(&tunnel_body("t2", "a@b.co")).unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (409, "authenticationID \"a@b.co\" is already in use")
    );
}
