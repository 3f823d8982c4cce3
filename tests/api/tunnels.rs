//! The typed Atmos client's tunnel endpoints against `popsel sim` (and, for answers the emulator
//! never gives, a raw HTTP server on loopback): create and update, paging when the server
//! misbehaves, the documented errors tunnels alone have, transport failures, and secrets that
//! never show up in errors. What tunnels share with connectors is in `resources`.

use std::time::{Duration, Instant};

use popsel::atmos::{ApiError, RetryPolicy, Tunnel, TunnelSpec, TunnelUpdate};
use popsel::sim::{Faults, Sim};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support;
use crate::support::api::{assert_no_secrets, client_at};
use crate::support::assert_contains;
use crate::support::raw_http::{raw_server, response};

const LOCATION: &str = support::site::CHICAGO_LOCATION_ID;
const OTHER_LOCATION: &str = support::site::FRANKFURT_LOCATION_ID;
pub(crate) const PSK: &str = "Tunnel-Psk-4b7e19c2";
const NEW_PSK: &str = "Rotated-Psk-90af33d1";

// ---- helpers ----

pub(crate) fn spec(name: &str, authentication_id: &str) -> TunnelSpec {
    TunnelSpec {
        name: name.to_owned(),
        authentication_id: authentication_id.to_owned(),
        psk: SecretString::from(PSK.to_owned()),
        location_id: LOCATION.to_owned(),
    }
}

/// Whether the emulator's tunnel `id` has PSK `psk`, asked over its control API.
async fn psk_matches(sim: &Sim, id: &str, psk: &str) -> bool {
    let (status, body) = support::sim_request(
        sim,
        reqwest::Method::POST,
        &format!("/_sim/tunnels/{id}/psk-check"),
        json!({ "psk": psk }),
    )
    .await;
    assert_eq!(status, 200, "psk-check: {body}");
    body["matches"].as_bool().expect("matches is a bool")
}

fn tunnel_json(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("tunnel {id}"),
        "authenticationID": format!("{id}@branch.example"),
        "locationID": LOCATION,
    })
}

// ---- create and update ----

#[tokio::test]
async fn create_then_update_every_field_and_the_psk() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);

    let created = client
        .create_tunnel(&spec("Chicago IPSec1", "chicago-1@branch.example"))
        .await
        .expect("create");
    assert!(!created.id.is_empty());
    assert_eq!(created.name, "Chicago IPSec1");
    assert_eq!(created.authentication_id, "chicago-1@branch.example");
    assert_eq!(created.location_id, LOCATION);
    assert!(psk_matches(&sim, &created.id, PSK).await);
    assert_eq!(
        client.list::<Tunnel>().await.unwrap(),
        vec![created.clone()]
    );

    let update = TunnelUpdate {
        name: Some("Chicago IPSec1b".into()),
        authentication_id: Some("203.0.113.7".into()),
        psk: Some(SecretString::from(NEW_PSK.to_owned())),
        location_id: Some(OTHER_LOCATION.into()),
    };
    client.update_tunnel(&created.id, &update).await.unwrap();
    let updated = client.get::<Tunnel>(&created.id).await.unwrap();
    assert_eq!(
        updated,
        Tunnel {
            id: created.id.clone(),
            name: "Chicago IPSec1b".into(),
            authentication_id: "203.0.113.7".into(),
            location_id: OTHER_LOCATION.into(),
        }
    );
    assert!(psk_matches(&sim, &created.id, NEW_PSK).await);
    assert!(!psk_matches(&sim, &created.id, PSK).await);

    client.delete::<Tunnel>(&created.id).await.unwrap();
    assert!(sim.with_store(|s| s.list::<Tunnel>()).is_empty());
}

#[tokio::test]
async fn update_of_some_fields_keeps_the_others() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let t = client
        .create_tunnel(&spec("Keep", "keep@branch.example"))
        .await
        .unwrap();

    // Only the PSK: the document's `AuthenticationPSK` spelling is applied.
    let only_psk = TunnelUpdate {
        psk: Some(SecretString::from(NEW_PSK.to_owned())),
        ..Default::default()
    };
    client.update_tunnel(&t.id, &only_psk).await.unwrap();
    assert_eq!(client.get::<Tunnel>(&t.id).await.unwrap(), t);
    assert!(sim.with_store(|s| s.tunnel_psk_is(&t.id, NEW_PSK)).unwrap());

    // Only the name: the PSK stays the rotated one.
    let only_name = TunnelUpdate {
        name: Some("Kept".into()),
        ..Default::default()
    };
    client.update_tunnel(&t.id, &only_name).await.unwrap();
    let got = client.get::<Tunnel>(&t.id).await.unwrap();
    assert_eq!(got.name, "Kept");
    assert_eq!(got.authentication_id, t.authentication_id);
    assert_eq!(got.location_id, t.location_id);
    assert!(sim.with_store(|s| s.tunnel_psk_is(&t.id, NEW_PSK)).unwrap());
}

// ---- paging ----

#[tokio::test]
async fn objects_moving_between_pages_are_listed_once() {
    // Page 2 repeats the last tunnel of page 1 and page 3 the last of page 2, as when tunnels
    // are created in front of the cursor while a client pages.
    let (url, seen) = raw_server(move |req, _| {
        let page: u32 = req
            .target
            .split("pageNumber=")
            .nth(1)
            .and_then(|n| n.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let ids: &[&str] = match page {
            1 => &["a", "b", "c"],
            2 => &["c", "d", "e"],
            3 => &["e", "f"],
            _ => &[],
        };
        let body = json!({
            "pageNumber": page, "pageSize": 3, "totalPages": 3, "totalRecords": 8,
            "data": ids.iter().map(|id| tunnel_json(id)).collect::<Vec<_>>(),
        });
        response("200 OK", "application/json", &body.to_string())
    })
    .await;
    let client = client_at(&url, 3, Duration::from_secs(5), RetryPolicy::none());
    let listed = client.list::<Tunnel>().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(listed[3], serde_json::from_value(tunnel_json("d")).unwrap());
    let targets: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(
        targets,
        (1..=3)
            .map(|n| format!("/api/v1/tunnels?pageSize=3&pageNumber={n}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn without_total_pages_the_next_page_link_drives_paging() {
    let (url, _) = raw_server(|req, _| {
        let body = if req.target.ends_with("pageNumber=1") {
            json!({ "nextPage": "http://elsewhere.invalid/page2", "data": [tunnel_json("x")] })
        } else if req.target.ends_with("pageNumber=2") {
            json!({ "nextPage": null, "data": [tunnel_json("y")] })
        } else {
            json!({ "data": [tunnel_json("never")] })
        };
        response("200 OK", "application/json", &body.to_string())
    })
    .await;
    let client = client_at(&url, 1, Duration::from_secs(5), RetryPolicy::none());
    let ids: Vec<String> = client
        .list::<Tunnel>()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["x", "y"]);
}

// ---- 400 ----

#[tokio::test]
async fn a_psk_of_seven_characters_is_a_400() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let short = "7-chars";
    assert_eq!(short.chars().count(), 7);
    let mut s = spec("Short", "short@branch.example");
    s.psk = SecretString::from(short.to_owned());
    let err = client.create_tunnel(&s).await.unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create tunnel \"Short\": bad request (HTTP 400): authenticationPSK: value must be at least 8 characters"
    );
    assert_no_secrets(&format!("{err} {err:?} {s:?}"), &[short]);
    assert!(sim.with_store(|s| s.list::<Tunnel>()).is_empty());

    // Eight is enough.
    s.psk = SecretString::from("8-chars!".to_owned());
    client.create_tunnel(&s).await.expect("8 characters");

    // An update with a short PSK is refused too, and the PSK is left as it was.
    let id = sim.with_store(|s| s.list::<Tunnel>())[0].id.clone();
    let update = TunnelUpdate {
        psk: Some(SecretString::from(short.to_owned())),
        ..Default::default()
    };
    let err = client.update_tunnel(&id, &update).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "update tunnel {id}: bad request (HTTP 400): authenticationPSK: value must be at least 8 characters"
        )
    );
    assert!(
        sim.with_store(|s| s.tunnel_psk_is(&id, "8-chars!"))
            .unwrap()
    );
}

#[tokio::test]
async fn a_bad_authentication_id_is_a_400() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let err = client
        .create_tunnel(&spec("Bob", "bob@"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::BadRequest { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create tunnel \"Bob\": bad request (HTTP 400): authenticationID: value must be a valid email or IP address"
    );
    assert!(!err.is_transient());
    assert_no_secrets(&format!("{err} {err:?}"), &[PSK]);
    assert!(sim.with_store(|s| s.list::<Tunnel>()).is_empty());
    assert_eq!(sim.request_counts()["POST"], 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_missing_location_id_is_a_400() {
    let sim = support::start_sim(support::no_faults()).await;
    // The typed client always sends locationID; leave it out by hand.
    let (status, body) = support::sim_request(
        &sim,
        reqwest::Method::POST,
        "/api/v1/tunnels",
        json!({
            "name": "NoLocation",
            "authenticationID": "noloc@branch.example",
            "authenticationPSK": PSK,
        }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({ "message": "locationID is mandatory" }));

    // An empty one, as the typed client can send it, is the same 400.
    let client = support::client_for(&sim);
    let mut s = spec("NoLocation", "noloc@branch.example");
    s.location_id = String::new();
    let err = client.create_tunnel(&s).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "create tunnel \"NoLocation\": bad request (HTTP 400): locationID is mandatory"
    );
    assert!(sim.with_store(|s| s.list::<Tunnel>()).is_empty());
}

// ---- 409 ----

#[tokio::test]
async fn duplicate_names_and_authentication_ids_are_409s() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let first = client
        .create_tunnel(&spec("Chicago IPSec1", "chicago-1@branch.example"))
        .await
        .unwrap();

    let err = client
        .create_tunnel(&spec("Chicago IPSec1", "other@branch.example"))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create tunnel \"Chicago IPSec1\": conflict (HTTP 409) on tunnel \"Chicago IPSec1\" / authentication ID \"other@branch.example\": a tunnel named \"Chicago IPSec1\" already exists"
    );

    let err = client
        .create_tunnel(&spec("Chicago IPSec2", "chicago-1@branch.example"))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "create tunnel \"Chicago IPSec2\": conflict (HTTP 409) on tunnel \"Chicago IPSec2\" / authentication ID \"chicago-1@branch.example\": authenticationID \"chicago-1@branch.example\" is already in use"
    );
    assert_no_secrets(&format!("{err:?}"), &[PSK]);
    assert_eq!(sim.with_store(|s| s.list::<Tunnel>()), vec![first.clone()]);

    // An update onto another tunnel's authentication ID is a 409 too (a rename onto another's
    // name is in `resources`).
    let second = client
        .create_tunnel(&spec("Chicago IPSec2", "chicago-2@branch.example"))
        .await
        .unwrap();
    let onto_first = TunnelUpdate {
        authentication_id: Some("chicago-1@branch.example".into()),
        ..Default::default()
    };
    let err = client
        .update_tunnel(&second.id, &onto_first)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "update tunnel {id}: conflict (HTTP 409) on tunnel {id}: authenticationID \"chicago-1@branch.example\" is already in use",
            id = second.id
        )
    );
    assert_eq!(client.get::<Tunnel>(&second.id).await.unwrap(), second);
}

// ---- transport ----

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let sim = support::start_sim(Faults {
        delay_ms: 500,
        ..Default::default()
    })
    .await;
    let client = client_at(
        &sim.url(),
        100,
        Duration::from_millis(100),
        RetryPolicy::none(),
    );
    let start = Instant::now();
    let err = client.get::<Tunnel>("t1").await.unwrap_err();
    let elapsed = start.elapsed();
    match &err {
        ApiError::Timeout { op, timeout } => {
            assert_eq!(op, "get tunnel t1");
            assert_eq!(*timeout, Duration::from_millis(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "get tunnel t1: no answer within 0.1s (timeout)"
    );
    assert!(err.is_transient() && err.is_ambiguous() && err.is_transport());
    assert!(elapsed < Duration::from_millis(450), "took {elapsed:?}");
}

#[tokio::test]
async fn nobody_listening_is_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let client = client_at(&url, 100, Duration::from_secs(2), RetryPolicy::none());
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert!(matches!(err, ApiError::ConnectionRefused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "list tunnels (page 1): connection refused by http://127.0.0.1:{port}/: is the API URL right and the server up?"
        )
    );
    // Refused means the server did nothing: a create may be repeated.
    assert!(err.is_transient() && !err.is_ambiguous() && err.is_transport());
    let err = client
        .create_tunnel(&spec("X", "x@branch.example"))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::ConnectionRefused { .. }), "{err:?}");
    assert_no_secrets(&format!("{err} {err:?}"), &[PSK]);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_invalid_body_quoting_200_bytes() {
    let page: String = format!(
        "<!DOCTYPE html><html><head><title>Gateway</title></head><body>{}</body></html>",
        "maintenance ".repeat(100)
    );
    assert!(page.len() > 1000);
    let body = page.clone();
    let (url, _) = raw_server(move |_, _| response("200 OK", "text/html", &body)).await;
    let client = client_at(&url, 100, Duration::from_secs(5), support::fast_retry());
    let err = client.get::<Tunnel>("t1").await.unwrap_err();
    let ApiError::InvalidBody {
        op,
        detail,
        snippet,
    } = &err
    else {
        panic!("expected InvalidBody, got {err:?}");
    };
    assert_eq!(op, "get tunnel t1");
    assert_contains(detail, "expected value");
    assert_eq!(snippet, &page[..200]);
    assert!(!err.to_string().contains(&page[..201]));
    assert!(
        err.to_string()
            .starts_with("get tunnel t1: response is not the JSON expected ("),
        "{err}"
    );
    assert!(!err.is_transient(), "a malformed body is not retried");
}

#[tokio::test]
async fn update_accepts_204_with_and_without_a_body() {
    let (url, seen) = raw_server(|req, _| {
        if req.target.ends_with("/bare") {
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_owned()
        } else {
            // "204 with the details", as the document says.
            let details = json!({
                "id": "detailed", "name": "n", "authenticationID": "a@b.example",
                "AuthenticationPSK": NEW_PSK, "locationID": LOCATION,
            });
            response("204 No Content", "application/json", &details.to_string())
        }
    })
    .await;
    let client = client_at(&url, 100, Duration::from_secs(5), RetryPolicy::none());
    let update = TunnelUpdate {
        name: Some("n".into()),
        psk: Some(SecretString::from(NEW_PSK.to_owned())),
        ..Default::default()
    };
    client.update_tunnel("bare", &update).await.expect("204");
    client
        .update_tunnel("detailed", &update)
        .await
        .expect("204 with a body");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.method, "PUT");
        let sent: Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(sent, json!({ "name": "n", "AuthenticationPSK": NEW_PSK }));
    }
    assert_eq!(seen[0].target, "/api/v1/tunnels/bare");
    assert_eq!(seen[1].target, "/api/v1/tunnels/detailed");
}

// ---- secrets ----

#[tokio::test]
async fn secrets_the_server_echoes_in_errors_are_redacted() {
    let (url, _) = raw_server(|req, _| {
        let message = format!(
            "rejected {} with Authorization: Bearer {}",
            req.body,
            support::TOKEN
        );
        response(
            "400 Bad Request",
            "application/json",
            &json!({ "message": message }).to_string(),
        )
    })
    .await;
    let client = client_at(&url, 100, Duration::from_secs(5), RetryPolicy::none());
    let s = spec("Echo", "echo@branch.example");
    assert_no_secrets(&format!("{s:?}"), &[PSK]);
    let err = client.create_tunnel(&s).await.unwrap_err();
    let ApiError::BadRequest { message, .. } = &err else {
        panic!("expected BadRequest, got {err:?}");
    };
    assert_contains(message, "\"name\":\"Echo\"");
    assert_contains(message, "(sensitive)");
    assert_no_secrets(&format!("{err} {err:?}"), &[PSK]);

    let update = TunnelUpdate {
        psk: Some(SecretString::from(NEW_PSK.to_owned())),
        ..Default::default()
    };
    let err = client.update_tunnel("t1", &update).await.unwrap_err();
    assert!(err.to_string().contains("(sensitive)"), "{err}");
    assert_no_secrets(&format!("{err} {err:?} {update:?}"), &[NEW_PSK]);
}

#[tokio::test]
async fn an_invalid_body_never_quotes_the_token_in_its_detail() {
    // serde quotes a string of the wrong type: `invalid type: string "…", expected u32`.
    let (url, _) = raw_server(|_, _| {
        let body = json!({ "pageNumber": support::TOKEN, "data": [] });
        response("200 OK", "application/json", &body.to_string())
    })
    .await;
    let client = client_at(&url, 100, Duration::from_secs(5), RetryPolicy::none());
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert!(matches!(err, ApiError::InvalidBody { .. }), "{err:?}");
    assert_no_secrets(&format!("{err} {err:?}"), &[]);
}

#[tokio::test]
async fn an_invalid_body_never_quotes_part_of_the_token() {
    // The token starts at byte 185: the first 15 of its 21 characters fall in the snippet.
    let (url, _) = raw_server(|_, _| {
        let body = format!("{}{}", "x".repeat(185), support::TOKEN);
        response("200 OK", "text/plain", &body)
    })
    .await;
    let client = client_at(&url, 100, Duration::from_secs(5), RetryPolicy::none());
    let err = client.get::<Tunnel>("t1").await.unwrap_err();
    assert!(matches!(err, ApiError::InvalidBody { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&support::TOKEN[..8]), "{text}");
}
