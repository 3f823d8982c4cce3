//! The wire types against the document samples (with their JSON typos corrected).

use secrecy::SecretString;
use serde_json::json;

use super::*;
use crate::atmos::Resource;

#[test]
fn tunnel_create_body_uses_the_documented_names() {
    let spec = TunnelSpec {
        name: "Chicago IPSec1".into(),
        authentication_id: "branch@example.com".into(),
        psk: SecretString::from("s3cret-psk-value".to_owned()),
        location_id: "d88fc23a-59a1-476a-a62e-a51ff3543fe7".into(),
    };
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({
            "name": "Chicago IPSec1",
            "authenticationID": "branch@example.com",
            "authenticationPSK": "s3cret-psk-value",
            "locationID": "d88fc23a-59a1-476a-a62e-a51ff3543fe7"
        })
    );
    assert!(!format!("{spec:?}").contains("s3cret"));
}

#[test]
fn tunnel_update_sends_only_given_fields_and_spells_psk_as_documented() {
    let update = TunnelUpdate {
        psk: Some(SecretString::from("another-secret".to_owned())),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({ "AuthenticationPSK": "another-secret" })
    );
    assert!(!format!("{update:?}").contains("another-secret"));
    assert!(TunnelUpdate::default().is_empty());
}

#[test]
fn tunnel_response_sample_parses() {
    let t: Tunnel = serde_json::from_str(
        r#"{"id":"6ee0bd21-4f50-454a-9f75-82f6933d54b0","name":"Chicago IPSec1",
            "authenticationID":"<email>","locationID":"d88fc23a-59a1-476a-a62e-a51ff3543fe7",
            "somethingNew": 1}"#,
    )
    .unwrap();
    assert_eq!(t.id, "6ee0bd21-4f50-454a-9f75-82f6933d54b0");
    assert_eq!(t.authentication_id, "<email>");
    assert_eq!(t.location_id, "d88fc23a-59a1-476a-a62e-a51ff3543fe7");
}

#[test]
fn tunnel_list_sample_parses() {
    let page: Page<Tunnel> = serde_json::from_str(
        r#"{"pageNumber":1,"pageSize":100,"firstPage":"<URL to retrieve first page>",
            "lastPage":"<URL to retrieve last page>","totalPages":1,"totalRecords":50,
            "nextPage":"<URL to retrieve next page>","previousPage":"<URL to retrieve previous page>",
            "data":[{"id":"6ee0bd21-4f50-454a-9f75-82f6933d54b0","name":"Chicago IPSec1",
                     "authenticationID":"<email>","locationID":"d88fc23a-59a1-476a-a62e-a51ff3543fe7"}]}"#,
    )
    .unwrap();
    assert_eq!(
        (page.page_number, page.total_pages, page.total_records),
        (1, 1, 50)
    );
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].name, "Chicago IPSec1");
}

#[test]
fn connector_samples_parse() {
    // Create response.
    let c: Connector = serde_json::from_str(
        r#"{"id":"string","name":"string","enabled": true,"connectorZoneID": "string",
            "command": "sudo bash < <(curl -fskSL https://ops.stg.axissecurity.com/2wn5m0Cn/install)"}"#,
    )
    .unwrap();
    assert_eq!(c.enabled, Some(true));
    assert!(c.command.as_deref().unwrap().contains("install"));
    // Get response: no id, no command.
    let c: Connector = serde_json::from_str(
        r#"{"name":"myconnector","enabled": true,"connectorZoneID":"string"}"#,
    )
    .unwrap();
    assert_eq!((c.id.as_str(), c.list_key()), ("", "myconnector"));
    // List response.
    let page: Page<Connector> = serde_json::from_str(
        r#"{"pageNumber":1,"pageSize":100,"totalPages":1,"totalRecords":50,
            "data":[{"name":"myconnector","enabled": true,"connectorZoneID":"string"}]}"#,
    )
    .unwrap();
    assert_eq!(page.data[0].name, "myconnector");
    // Regenerate response.
    let cmd: InstallCommand = serde_json::from_str(
        r#"{"id":"string","command": "sudo bash < <(curl -fskSL https://ops.stg.axissecurity.com/2wn5m0Cn/install)"}"#,
    )
    .unwrap();
    assert!(cmd.command.starts_with("sudo bash"));
}

#[test]
fn connector_bodies_leave_out_what_is_not_given() {
    let spec = ConnectorSpec {
        name: "myconnector".into(),
        connector_zone_id: None,
    };
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        json!({"name": "myconnector"})
    );
    let update = ConnectorUpdate {
        enabled: Some(false),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_value(&update).unwrap(),
        json!({"enabled": false})
    );
}

#[test]
fn statuses_parse_known_unknown_and_bare_forms() {
    let s: ConnectorStatus =
        serde_json::from_str(r#"{"id":"string","status": "AgentlessOnly"}"#).unwrap();
    assert_eq!(s.status, ConnectorState::AgentlessOnly);
    let s: ConnectorStatus = serde_json::from_str(r#"{"id":"x","status":"tcponly"}"#).unwrap();
    assert_eq!(s.status, ConnectorState::TcpOnly);
    let s: ConnectorStatus = serde_json::from_str(r#"{"id":"x","status":"Rebooting"}"#).unwrap();
    assert_eq!(s.status, ConnectorState::Unknown);
    let s: TunnelStatus = serde_json::from_str(r#"{"id":"t","status":"Connected"}"#).unwrap();
    assert_eq!(s.status, TunnelState::Connected);
    let s: TunnelStatus = serde_json::from_str(r#""Disconnected""#).unwrap();
    assert_eq!(s.status, TunnelState::Disconnected);
    assert_eq!(
        serde_json::to_value(TunnelState::Unknown).unwrap(),
        json!("Unknown")
    );
}

/// The document's sample, corrected: it lacks the opening brace and closes with extra braces.
const POP_SAMPLE: &str = r#"{"ipSecLocations": [
  {"country": "UAE", "locations": [
    {"city": "Dubai", "latitude": "25.26", "longitude": "55.31", "provider": "Azure",
     "fqdn": [{"name": "<tunnel-name>.axisapps.io", "ip": ["20.233.16.163"]},
              {"name": "<tunnel-name>.axisapps.io", "ip": ["20.216.62.25"]}]}]},
  {"country": "CL", "locations": [
    {"city": "Santiago", "latitude": "-33.45", "longitude": "-70.64", "provider": "GCP",
     "fqdn": [{"name": "<tunnel-name>.axisapps.io", "ip": ["34.176.69.23"]},
              {"name": "<tunnel-name>.axisapps.io", "ip": ["34.176.247.253"]}]}]}
]}"#;

#[test]
fn pop_sample_parses() {
    let doc: PopDocument = serde_json::from_str(POP_SAMPLE).unwrap();
    assert_eq!(doc.ip_sec_locations.len(), 2);
    let uae = doc.ip_sec_locations[0].valid().unwrap();
    assert_eq!(uae.country, "UAE");
    let dubai = uae.locations[0].valid().unwrap();
    assert_eq!(dubai.city.as_deref(), Some("Dubai"));
    assert_eq!(
        dubai.latitude.as_ref().and_then(Coordinate::degrees),
        Some(25.26)
    );
    assert_eq!(dubai.provider.as_deref(), Some("Azure"));
    let ips: Vec<&str> = dubai
        .fqdn
        .iter()
        .filter_map(Lenient::valid)
        .flat_map(|f| f.ip.0.iter().map(String::as_str))
        .collect();
    assert_eq!(ips, ["20.233.16.163", "20.216.62.25"]);
}

#[test]
fn pop_document_is_liberal_and_keeps_bad_entries() {
    let doc: PopDocument = serde_json::from_value(json!({"ipSecLocations": [
        {"country": "DE", "extra": true, "locations": [
            {"city": "Frankfurt", "latitude": 50.11, "longitude": "8.68", "provider": "AWS",
             "fqdn": [{"name": "a.example", "ip": "192.0.2.1"}, {"name": "b.example"}, 7]},
            {"city": "Broken", "latitude": ["no"], "fqdn": []},
            "not an object"
        ]}
    ]}))
    .unwrap();
    let de = doc.ip_sec_locations[0].valid().unwrap();
    let fra = de.locations[0].valid().unwrap();
    assert_eq!(
        fra.latitude.as_ref().and_then(Coordinate::degrees),
        Some(50.11)
    );
    assert_eq!(fra.fqdn[0].valid().unwrap().ip.0, ["192.0.2.1"]);
    assert!(fra.fqdn[1].valid().unwrap().ip.0.is_empty());
    assert!(matches!(fra.fqdn[2], Lenient::Invalid { .. }));
    assert!(matches!(de.locations[1], Lenient::Invalid { .. }));
    match &de.locations[2] {
        Lenient::Invalid { raw, .. } => assert_eq!(raw, &json!("not an object")),
        Lenient::Valid(_) => panic!("a string is not a PoP entry"),
    }
    // What is kept is served back unchanged.
    assert_eq!(
        serde_json::to_value(&de.locations[2]).unwrap(),
        json!("not an object")
    );
}

#[test]
fn coordinates_that_are_not_numbers_have_no_degrees() {
    for bad in [
        Coordinate::Text("north".into()),
        Coordinate::Text("NaN".into()),
        Coordinate::Text(String::new()),
    ] {
        assert_eq!(bad.degrees(), None, "{bad:?}");
    }
    assert_eq!(Coordinate::Text(" -70.64 ".into()).degrees(), Some(-70.64));
}

#[test]
fn the_shipped_sample_catalogue_is_realistic() {
    let doc: PopDocument = serde_json::from_str(crate::sim::SAMPLE_CATALOG).unwrap();
    let pops: Vec<&PopEntry> = doc
        .ip_sec_locations
        .iter()
        .filter_map(Lenient::valid)
        .flat_map(|c| c.locations.iter().filter_map(Lenient::valid))
        .collect();
    assert!(pops.len() >= 40, "{} PoPs", pops.len());
    let providers: std::collections::BTreeSet<_> =
        pops.iter().filter_map(|p| p.provider.as_deref()).collect();
    assert!(providers.len() >= 3, "{providers:?}");
    for p in &pops {
        assert_eq!(
            p.fqdn.iter().filter_map(Lenient::valid).count(),
            2,
            "{:?}",
            p.city
        );
        for ip in p
            .fqdn
            .iter()
            .filter_map(Lenient::valid)
            .flat_map(|f| &f.ip.0)
        {
            // Only the RFC 2544 benchmarking range, so nothing ever probes a real host.
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            assert_eq!(ip.octets()[0], 198);
            assert!(matches!(ip.octets()[1], 18 | 19), "{ip}");
        }
    }
}
