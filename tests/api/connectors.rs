//! The typed Atmos client's connector endpoints against `popsel sim`: create (with its
//! installation command), update (a `POST` to the connector's URL), regenerate, and the errors
//! connectors alone have. What connectors share with tunnels is in `resources`.

use popsel::atmos::{
    ApiError, Client, ClientConfig, Connector, ConnectorSpec, ConnectorState, ConnectorUpdate,
};
use secrecy::SecretString;
use serde_json::json;

use crate::support;
use crate::support::api::assert_no_secrets;
use crate::support::assert_contains;

const ZONE: &str = "3f1d2c4b-0a9e-4e7b-8c6d-5a4b3c2d1e0f";
const COMMAND_START: &str = "sudo bash < <(curl -fskSL https://";

// ---- helpers ----

fn spec(name: &str) -> ConnectorSpec {
    ConnectorSpec {
        name: name.to_owned(),
        connector_zone_id: None,
    }
}

/// The connector as `get` and `list` return it: no installation command.
fn without_command(c: &Connector) -> Connector {
    Connector {
        command: None,
        ..c.clone()
    }
}

// ---- create, update, regenerate ----

#[tokio::test]
async fn create_update_and_regenerate() {
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
    assert_eq!(client.get::<Connector>(&created.id).await.unwrap(), stored);
    let status = client.status::<Connector>(&created.id).await.unwrap();
    assert_eq!(status.id, created.id);
    assert_eq!(status.status, ConnectorState::Pending);

    let update = ConnectorUpdate {
        name: Some("renamed".into()),
        enabled: Some(false),
        connector_zone_id: Some("zone-2".into()),
    };
    client.update_connector(&created.id, &update).await.unwrap();
    let updated = client.get::<Connector>(&created.id).await.unwrap();
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
    let got = client.get::<Connector>(&created.id).await.unwrap();
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
    assert!(client.list::<Connector>().await.unwrap().is_empty());
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
        sim.with_store(|s| s.list::<Connector>()),
        vec![without_command(&first)]
    );
    assert_eq!(sim.request_counts()["POST"], 2, "a 409 is not retried");
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
    assert!(sim.with_store(|s| s.list::<Connector>()).is_empty());

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
    assert_eq!(client.get::<Connector>(&c.id).await.unwrap().name, "named");
}

#[tokio::test]
async fn regenerate_is_a_404_for_an_unknown_id_and_a_401_for_a_wrong_token() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let id = "0b8c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4";
    let err = client.regenerate_connector(id).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "regenerate the installation command of connector {id}: connector {id} not found (HTTP 404)"
        )
    );

    let wrong = "wrong-token-connectors-77a1";
    let mut cc = ClientConfig::new(sim.url(), SecretString::from(wrong.to_owned()));
    cc.retry = support::fast_retry();
    let client = Client::new(cc).unwrap();
    let err = client.regenerate_connector("c1").await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    let text = format!("{err} {err:?}");
    assert_contains(&text, "token rejected or lacks the scope");
    assert_no_secrets(&text, &[wrong]);
}
