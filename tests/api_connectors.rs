//! The typed Atmos client's connector endpoints against `popsel sim`: create (with its
//! installation command), get, list across pages, update (a `POST` to the connector's URL),
//! delete, status, regenerate, and the documented error codes.

mod support;

use std::time::Duration;

use popsel::atmos::{
    ApiError, Client, ClientConfig, Connector, ConnectorSpec, ConnectorState, ConnectorUpdate,
};
use popsel::sim::Sim;
use secrecy::SecretString;
use serde_json::json;
use support::assert_contains;

const ZONE: &str = "3f1d2c4b-0a9e-4e7b-8c6d-5a4b3c2d1e0f";
const COMMAND_START: &str = "sudo bash < <(curl -fskSL https://";

// ---- helpers ----

fn spec(name: &str) -> ConnectorSpec {
    ConnectorSpec {
        name: name.to_owned(),
        connector_zone_id: None,
    }
}

fn paged_client(sim: &Sim, page_size: u32) -> Client {
    let mut cc = ClientConfig::new(sim.url(), support::token());
    cc.page_size = page_size;
    cc.retry = support::fast_retry();
    cc.timeout = Duration::from_secs(5);
    Client::new(cc).expect("client")
}

fn names(connectors: &[Connector]) -> Vec<String> {
    connectors.iter().map(|c| c.name.clone()).collect()
}

/// The connector as `get` and `list` return it: no installation command.
fn without_command(c: &Connector) -> Connector {
    Connector {
        command: None,
        ..c.clone()
    }
}

// ---- round trip ----

#[tokio::test]
async fn create_get_list_update_status_regenerate_delete_round_trip() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);

    let created = client
        .create_connector(&ConnectorSpec {
            name: "myconnector".into(),
            connector_zone_id: Some(ZONE.into()),
        })
        .await
        .expect("create");
    assert!(!created.id.is_empty());
    assert_eq!(created.name, "myconnector");
    assert_eq!(created.enabled, Some(true));
    assert_eq!(created.connector_zone_id.as_deref(), Some(ZONE));
    let first_command = created.command.clone().expect("create returns the command");
    assert!(first_command.starts_with(COMMAND_START), "{first_command}");
    assert!(first_command.ends_with("/install)"), "{first_command}");

    let stored = without_command(&created);
    assert_eq!(client.get_connector(&created.id).await.unwrap(), stored);
    assert_eq!(
        client.list_connectors().await.unwrap(),
        vec![stored.clone()]
    );
    assert_eq!(sim.with_store(|s| s.connectors()), vec![stored.clone()]);

    let status = client.connector_status(&created.id).await.unwrap();
    assert_eq!(status.id, created.id);
    assert_eq!(status.status, ConnectorState::Pending);

    let update = ConnectorUpdate {
        name: Some("renamed".into()),
        enabled: Some(false),
        connector_zone_id: Some("zone-2".into()),
    };
    client.update_connector(&created.id, &update).await.unwrap();
    let updated = client.get_connector(&created.id).await.unwrap();
    assert_eq!(
        updated,
        Connector {
            id: created.id.clone(),
            name: "renamed".into(),
            enabled: Some(false),
            connector_zone_id: Some("zone-2".into()),
            command: None,
        }
    );

    // Only some fields: the others stay.
    client
        .update_connector(
            &created.id,
            &ConnectorUpdate {
                enabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let got = client.get_connector(&created.id).await.unwrap();
    assert_eq!(got.enabled, Some(true));
    assert_eq!(got.name, "renamed");
    assert_eq!(got.connector_zone_id.as_deref(), Some("zone-2"));

    let regenerated = client.regenerate_connector(&created.id).await.unwrap();
    assert_eq!(regenerated.id, created.id);
    assert!(
        regenerated.command.starts_with(COMMAND_START),
        "{}",
        regenerated.command
    );
    assert_ne!(regenerated.command, first_command);
    let again = client.regenerate_connector(&created.id).await.unwrap();
    assert_ne!(again.command, regenerated.command);

    client.delete::<Connector>(&created.id).await.unwrap();
    assert!(
        client
            .get_connector(&created.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(client.list_connectors().await.unwrap().is_empty());
    assert!(sim.with_store(|s| s.connectors()).is_empty());
    let err = client.delete::<Connector>(&created.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn every_documented_status_set_on_the_emulator_is_read_back() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let c = client.create_connector(&spec("status")).await.unwrap();
    for state in [
        "AgentOnly",
        "Available",
        "Unavailable",
        "AgentlessOnly",
        "TcpOnly",
        "UdpOnly",
        "Pending",
    ] {
        let (code, body) = support::sim_request(
            &sim,
            reqwest::Method::PUT,
            &format!("/_sim/connectors/{}/status", c.id),
            json!({ "status": state }),
        )
        .await;
        assert_eq!(code, 204, "{body}");
        let status = client.connector_status(&c.id).await.unwrap();
        assert_eq!(status.status.as_str(), state);
        assert_eq!(status.id, c.id);
    }
    // A state the document does not list reads back as Unknown, not as an error.
    let (code, _) = support::sim_request(
        &sim,
        reqwest::Method::PUT,
        &format!("/_sim/connectors/{}/status", c.id),
        json!({ "status": "Hibernating" }),
    )
    .await;
    assert_eq!(code, 204);
    assert_eq!(
        client.connector_status(&c.id).await.unwrap().status,
        ConnectorState::Unknown
    );
}

// ---- paging ----

#[tokio::test]
async fn listing_across_pages_returns_every_connector_once_in_creation_order() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = paged_client(&sim, 3);
    let mut expected = Vec::new();
    for i in 0..8 {
        let c = client
            .create_connector(&spec(&format!("c{i}")))
            .await
            .unwrap();
        expected.push(without_command(&c));
    }
    let before = sim.request_counts()["GET"].as_u64().unwrap_or(0);
    let listed = client.list_connectors().await.unwrap();
    assert_eq!(listed, expected);
    assert_eq!(
        names(&listed),
        (0..8).map(|i| format!("c{i}")).collect::<Vec<_>>()
    );
    let gets = sim.request_counts()["GET"].as_u64().unwrap() - before;
    assert_eq!(gets, 3, "8 connectors, 3 a page");

    let page_url = |n: u32| format!("{}/api/v1/connectors?pageSize=3&pageNumber={n}", sim.url());
    let page = client.list_page::<Connector>(2).await.unwrap();
    assert_eq!(page.page_number, 2);
    assert_eq!(page.page_size, 3);
    assert_eq!(page.total_pages, 3);
    assert_eq!(page.total_records, 8);
    assert_eq!(page.first_page.as_deref(), Some(page_url(1).as_str()));
    assert_eq!(page.last_page.as_deref(), Some(page_url(3).as_str()));
    assert_eq!(page.next_page.as_deref(), Some(page_url(3).as_str()));
    assert_eq!(page.previous_page.as_deref(), Some(page_url(1).as_str()));
    assert_eq!(names(&page.data), ["c3", "c4", "c5"]);
    let last = client.list_page::<Connector>(3).await.unwrap();
    assert_eq!(last.next_page, None);
    assert_eq!(names(&last.data), ["c6", "c7"]);
}

// ---- errors ----

#[tokio::test]
async fn a_duplicate_name_is_a_409() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let first = client.create_connector(&spec("edge-1")).await.unwrap();
    let err = client.create_connector(&spec("edge-1")).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create connector \"edge-1\": conflict (HTTP 409) on connector \"edge-1\": a connector named \"edge-1\" already exists"
    );
    assert_eq!(
        sim.with_store(|s| s.connectors()),
        vec![without_command(&first)]
    );
    assert_eq!(sim.request_counts()["POST"], 2, "a 409 is not retried");

    // Renaming onto another connector's name is a 409 as well.
    let second = client.create_connector(&spec("edge-2")).await.unwrap();
    let err = client
        .update_connector(
            &second.id,
            &ConnectorUpdate {
                name: Some("edge-1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "update connector {id}: conflict (HTTP 409) on connector {id}: a connector named \"edge-1\" already exists",
            id = second.id
        )
    );
    assert_eq!(
        client.get_connector(&second.id).await.unwrap().name,
        "edge-2"
    );
}

#[tokio::test]
async fn unknown_ids_are_404s() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let other = client.create_connector(&spec("other")).await.unwrap();
    let id = "0b8c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4";
    let expect = |err: ApiError, op: &str| {
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{op}: connector {id} not found (HTTP 404)")
        );
    };
    expect(
        client.get_connector(id).await.unwrap_err(),
        &format!("get connector {id}"),
    );
    expect(
        client
            .update_connector(
                id,
                &ConnectorUpdate {
                    enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err(),
        &format!("update connector {id}"),
    );
    expect(
        client.delete::<Connector>(id).await.unwrap_err(),
        &format!("delete connector {id}"),
    );
    expect(
        client.connector_status(id).await.unwrap_err(),
        &format!("get status of connector {id}"),
    );
    expect(
        client.regenerate_connector(id).await.unwrap_err(),
        &format!("regenerate the installation command of connector {id}"),
    );
    assert_eq!(
        sim.with_store(|s| s.connectors()),
        vec![without_command(&other)]
    );
}

#[tokio::test]
async fn a_missing_name_is_a_400() {
    let sim = support::start_sim(support::no_faults()).await;
    for body in [
        json!({}),
        json!({ "connectorZoneID": ZONE }),
        json!({ "name": "  " }),
    ] {
        let (status, answer) = support::sim_request(
            &sim,
            reqwest::Method::POST,
            "/api/v1/connectors",
            body.clone(),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, json!({ "message": "name is mandatory" }), "{body}");
    }
    let client = support::client_for(&sim);
    let err = client.create_connector(&spec("")).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create connector \"\": bad request (HTTP 400): name is mandatory"
    );
    assert!(!err.is_transient());
    assert!(sim.with_store(|s| s.connectors()).is_empty());

    // Blanking the name of an existing connector is refused the same way.
    let c = client.create_connector(&spec("named")).await.unwrap();
    let err = client
        .update_connector(
            &c.id,
            &ConnectorUpdate {
                name: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "update connector {}: bad request (HTTP 400): name is mandatory",
            c.id
        )
    );
    assert_eq!(client.get_connector(&c.id).await.unwrap().name, "named");
}

#[tokio::test]
async fn a_wrong_token_is_a_401_that_never_shows_the_token() {
    let sim = support::start_sim(support::no_faults()).await;
    let wrong = "wrong-token-connectors-77a1";
    let mut cc = ClientConfig::new(sim.url(), SecretString::from(wrong.to_owned()));
    cc.retry = support::fast_retry();
    let client = Client::new(cc).unwrap();
    let errors = [
        client.create_connector(&spec("x")).await.unwrap_err(),
        client.list_connectors().await.unwrap_err(),
        client.get_connector("c1").await.unwrap_err(),
        client
            .update_connector("c1", &ConnectorUpdate::default())
            .await
            .unwrap_err(),
        client.delete::<Connector>("c1").await.unwrap_err(),
        client.connector_status("c1").await.unwrap_err(),
        client.regenerate_connector("c1").await.unwrap_err(),
    ];
    for err in &errors {
        assert!(err.is_unauthorized(), "{err:?}");
        let text = format!("{err} {err:?}");
        assert_contains(&text, "token rejected or lacks the scope");
        assert!(
            !text.contains(wrong) && !text.contains(support::TOKEN),
            "{text}"
        );
    }
    assert_eq!(
        errors[0].to_string(),
        "create connector \"x\": unauthorized (HTTP 401): token rejected or lacks the scope; check POPSEL_API_TOKEN or the token file and the token's scopes"
    );
    assert!(sim.with_store(|s| s.connectors()).is_empty());
}

#[tokio::test]
async fn a_dot_id_never_turns_an_update_into_a_create() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    for id in [".", ".."] {
        let update = ConnectorUpdate {
            name: Some(format!("made-by-update-{}", id.len())),
            ..Default::default()
        };
        let result = client.update_connector(id, &update).await;
        let created = sim.with_store(|s| s.connectors());
        assert!(
            created.is_empty(),
            "update_connector({id:?}) created {created:?}"
        );
        assert!(
            result.as_ref().is_err_and(ApiError::is_not_found),
            "update_connector({id:?}): {result:?}"
        );
    }
}
