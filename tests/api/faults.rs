//! The typed Atmos client against a flaky API: injected 500s (half of them after the request
//! was carried out) and 429s with `Retry-After` from `popsel sim`, and, where a lost answer
//! has to happen deterministically, a raw HTTP server on loopback. The client must end with
//! exactly the objects asked for, give up within its bounds, and honour `Retry-After`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use popsel::atmos::{
    ApiError, Client, Connector, ConnectorSpec, RetryPolicy, Tunnel, TunnelSpec, TunnelUpdate,
};
use popsel::sim::{Faults, Sim};
use secrecy::SecretString;
use serde_json::json;
use tokio::task::JoinSet;

use crate::support;
use crate::support::assert_contains;
use crate::support::raw_http::{self, Log, Seen, raw_server};

const LOCATION: &str = support::site::CHICAGO_LOCATION_ID;
const OTHER_LOCATION: &str = support::site::FRANKFURT_LOCATION_ID;
const PSK: &str = "Flaky-Psk-1e2d3c4b";

// ---- helpers ----

fn tunnel_spec(i: usize) -> TunnelSpec {
    TunnelSpec {
        name: format!("flaky-tunnel-{i:02}"),
        authentication_id: format!("site{i}@branch.example"),
        psk: SecretString::from(PSK.to_owned()),
        location_id: LOCATION.to_owned(),
    }
}

fn connector_spec(i: usize) -> ConnectorSpec {
    ConnectorSpec {
        name: format!("flaky-connector-{i:02}"),
        connector_zone_id: None,
    }
}

fn faulty() -> Faults {
    Faults {
        fail_rate: 0.3,
        throttle_rate: 0.1,
        retry_after_secs: 0,
        ..Default::default()
    }
}

fn client_at(base_url: &str, page_size: u32, retry: RetryPolicy) -> Client {
    support::api::client_at(base_url, page_size, Duration::from_secs(5), retry)
}

/// An emulator that answers every API request with a 500.
async fn always_failing_sim() -> Sim {
    support::start_sim(Faults {
        fail_rate: 1.0,
        ..Default::default()
    })
    .await
}

/// An emulator that answers every API request with a 429 asking to retry after `secs`.
async fn always_throttling_sim(secs: u64) -> Sim {
    support::start_sim(Faults {
        throttle_rate: 1.0,
        retry_after_secs: secs,
        ..Default::default()
    })
    .await
}

/// The attempts made and the last error of a call that gave up.
#[track_caller]
fn gave_up(err: &ApiError) -> (u32, &ApiError) {
    match err {
        ApiError::GaveUp { attempts, last, .. } => (*attempts, last),
        other => panic!("expected GaveUp, got {other:?}"),
    }
}

fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        ..Default::default()
    }
}

fn count(sim: &Sim, method: &str) -> u64 {
    sim.request_counts()[method].as_u64().unwrap_or(0)
}

/// A raw HTTP response with a JSON body.
fn response(status: &str, body: &str) -> String {
    raw_http::response(status, "application/json", body)
}

fn list_page(data: serde_json::Value) -> String {
    let n = data.as_array().map_or(0, Vec::len);
    let body = json!({
        "pageNumber": 1, "pageSize": 100, "totalPages": 1, "totalRecords": n, "data": data,
    });
    response("200 OK", &body.to_string())
}

/// The methods of the requests a raw server answered, in order.
fn methods(log: &Log) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .map(|s| s.method.clone())
        .collect()
}

fn earlier(log: &[Seen], method: &str) -> usize {
    log.iter().filter(|s| s.method == method).count()
}

// ---- a flaky emulator ----

#[tokio::test]
async fn a_flaky_api_ends_with_exactly_the_objects_asked_for() {
    let sim = support::start_sim(faulty()).await;
    let client = support::client_for(&sim);

    let mut tasks = JoinSet::new();
    for i in 0..40 {
        let client = client.clone();
        tasks.spawn(async move {
            let t = client.create_tunnel(&tunnel_spec(i)).await;
            (t.map(|t| t.name), format!("tunnel {i}"))
        });
    }
    for i in 0..15 {
        let client = client.clone();
        tasks.spawn(async move {
            let c = client.create_connector(&connector_spec(i)).await;
            (c.map(|c| c.name), format!("connector {i}"))
        });
    }
    let mut returned = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (result, what) = joined.expect("task");
        returned.push(result.unwrap_or_else(|e| panic!("{what}: {e}")));
    }
    assert_eq!(returned.len(), 55);

    // Listing across pages while the faults go on sees each object once.
    let paged = client_at(&sim.url(), 7, support::fast_retry());
    let listed: Vec<Tunnel> = paged.list::<Tunnel>().await.expect("list under faults");
    let listed_connectors: Vec<Connector> = paged.list::<Connector>().await.expect("list");

    sim.set_faults(Faults::default()).unwrap();
    let tunnels = sim.with_store(|s| s.list::<Tunnel>());
    let connectors = sim.with_store(|s| s.list::<Connector>());
    let tunnel_names: Vec<String> = tunnels.iter().map(|t| t.name.clone()).collect();
    let connector_names: Vec<String> = connectors.iter().map(|c| c.name.clone()).collect();
    let expected_tunnels: BTreeSet<String> = (0..40).map(|i| tunnel_spec(i).name).collect();
    let expected_connectors: BTreeSet<String> = (0..15).map(|i| connector_spec(i).name).collect();
    assert_eq!(tunnel_names.len(), 40, "{tunnel_names:?}");
    assert_eq!(connector_names.len(), 15, "{connector_names:?}");
    assert_eq!(
        tunnel_names.iter().cloned().collect::<BTreeSet<_>>(),
        expected_tunnels
    );
    assert_eq!(
        connector_names.iter().cloned().collect::<BTreeSet<_>>(),
        expected_connectors
    );
    let all_returned: BTreeSet<String> = returned.into_iter().collect();
    assert_eq!(all_returned.len(), 55, "each call returned its own object");
    assert_eq!(listed, tunnels);
    assert_eq!(listed_connectors, connectors);
    for t in &tunnels {
        assert!(sim.with_store(|s| s.tunnel_psk_is(&t.id, PSK)).unwrap());
    }

    // The faults did happen: more POSTs than objects.
    let posts = count(&sim, "POST");
    assert!(posts > 55, "only {posts} POSTs for 55 objects");
}

#[tokio::test]
async fn updates_and_deletes_through_a_flaky_api_all_take_effect() {
    let sim = support::start_sim(support::no_faults()).await;
    let client = support::client_for(&sim);
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(client.create_tunnel(&tunnel_spec(i)).await.unwrap().id);
    }
    sim.set_faults(faulty()).unwrap();
    for id in &ids[..10] {
        let update = TunnelUpdate {
            location_id: Some(OTHER_LOCATION.into()),
            ..Default::default()
        };
        client.update_tunnel(id, &update).await.expect("update");
    }
    // A DELETE whose 500 hid a success meets a 404 on retry: that is a success too.
    for id in &ids[10..] {
        client.delete::<Tunnel>(id).await.expect("delete");
    }
    sim.set_faults(Faults::default()).unwrap();
    let left = sim.with_store(|s| s.list::<Tunnel>());
    assert_eq!(
        left.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        ids[..10]
    );
    assert!(left.iter().all(|t| t.location_id == OTHER_LOCATION));
}

// ---- 429 and Retry-After ----

#[tokio::test]
async fn retry_after_is_honoured_before_giving_up() {
    let sim = always_throttling_sim(1).await;
    let client = support::client_with(&sim, quick_policy(2));
    let start = Instant::now();
    let err = client.list::<Tunnel>().await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "waited only {elapsed:?}");
    let (attempts, last) = gave_up(&err);
    assert_eq!(attempts, 2);
    assert!(
        matches!(*last, ApiError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "{last:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "list tunnels (page 1): rate limited (HTTP 429), server asks to retry after 1s (gave up after 2 attempts in "
        ),
        "{text}"
    );
    assert_contains(&text, "gave up after 2 attempts");
    assert_eq!(count(&sim, "GET"), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_time_budget_is_not_waited_for() {
    let sim = always_throttling_sim(30).await;
    let client = support::client_with(
        &sim,
        RetryPolicy {
            max_elapsed: Duration::from_secs(2),
            ..quick_policy(5)
        },
    );
    let start = Instant::now();
    let err = client.get::<Tunnel>("t1").await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(err.root(), ApiError::RateLimited { .. }),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "get tunnel t1: rate limited (HTTP 429), server asks to retry after 30s, beyond the retry budget (2.0s left of it): not waited for (gave up after 1 attempt in "
        ),
        "{text}"
    );
    assert_eq!(count(&sim, "GET"), 1);
}

// ---- persistent 500s ----

#[tokio::test]
async fn persistent_500s_end_in_gave_up_wrapping_the_server_error() {
    let sim = always_failing_sim().await;
    let client = support::client_with(&sim, quick_policy(3));
    let err = client.list::<Tunnel>().await.unwrap_err();
    let (attempts, last) = gave_up(&err);
    assert_eq!(attempts, 3);
    let ApiError::Server {
        status, message, ..
    } = last
    else {
        panic!("expected a server error inside, got {last:?}");
    };
    assert_eq!(*status, 500);
    assert_eq!(message, "Internal server error (injected)");
    assert!(err.is_transient() && err.is_ambiguous());
    assert_eq!(err.kind(), "server_error");
    assert!(
        err.to_string().starts_with(
            "list tunnels (page 1): server error (HTTP 500): Internal server error (injected) (gave up after 3 attempts in "
        ),
        "{err}"
    );
    assert_eq!(count(&sim, "GET"), 3);
}

#[tokio::test]
async fn persistent_500s_end_within_the_time_budget() {
    let sim = always_failing_sim().await;
    let client = support::client_with(
        &sim,
        RetryPolicy {
            max_attempts: 1000,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(40),
            max_elapsed: Duration::from_millis(400),
        },
    );
    let start = Instant::now();
    let err = client.status::<Tunnel>("t1").await.unwrap_err();
    let elapsed = start.elapsed();
    let (attempts, _) = gave_up(&err);
    assert!(attempts > 1 && attempts < 1000, "{attempts} attempts");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(count(&sim, "GET"), u64::from(attempts));
}

#[tokio::test]
async fn a_create_under_persistent_500s_fails_and_makes_at_most_one_object() {
    let sim = always_failing_sim().await;
    let client = support::client_with(&sim, quick_policy(3));
    let err = client.create_tunnel(&tunnel_spec(1)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        matches!(err.root(), ApiError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains(PSK));
    let err = client
        .create_connector(&connector_spec(1))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    sim.set_faults(Faults::default()).unwrap();
    assert!(sim.with_store(|s| s.list::<Tunnel>()).len() <= 1);
    assert!(sim.with_store(|s| s.list::<Connector>()).len() <= 1);
}

// ---- lost answers, deterministically ----

#[tokio::test]
async fn a_create_whose_answer_was_lost_returns_the_object_it_made() {
    // Every POST "times out at the proxy" (500) after the backend made the object, which the
    // list then shows, next to a look-alike in another location.
    let (url, log) = raw_server(|req, _| match (req.method.as_str(), req.target.as_str()) {
        ("POST", _) => response("500 Internal Server Error", r#"{"message":"upstream timeout"}"#),
        ("GET", t) if t.starts_with("/api/v1/tunnels?") => list_page(json!([
            { "id": "look-alike", "name": "flaky-tunnel-07", "authenticationID": "site7@branch.example", "locationID": OTHER_LOCATION },
            { "id": "made-1", "name": "flaky-tunnel-07", "authenticationID": "site7@branch.example", "locationID": LOCATION },
        ])),
        ("GET", t) if t.starts_with("/api/v1/connectors?") => {
            list_page(json!([{ "id": "made-2", "name": "flaky-connector-03", "enabled": true }]))
        }
        _ => response("404 Not Found", "{}"),
    })
    .await;
    let client = client_at(&url, 100, support::fast_retry());

    let t = client.create_tunnel(&tunnel_spec(7)).await.expect("create");
    assert_eq!(t.id, "made-1");
    assert_eq!(t.location_id, LOCATION);
    let c = client
        .create_connector(&connector_spec(3))
        .await
        .expect("create");
    assert_eq!(c.id, "made-2");
    assert_eq!(c.command, None, "the command was in the lost answer");

    let log = log.lock().unwrap();
    assert_eq!(
        earlier(&log, "POST"),
        2,
        "one POST each, never repeated: {log:?}"
    );
}

#[tokio::test]
async fn a_409_after_a_lost_answer_is_the_object_already_made() {
    // POST 1: 500 with nothing listed yet; POST 2: 409; then the list shows the object.
    let (url, log) = raw_server(|req, log| match req.method.as_str() {
        "POST" if earlier(log, "POST") == 0 => {
            response("500 Internal Server Error", r#"{"message":"oops"}"#)
        }
        "POST" => response("409 Conflict", r#"{"message":"a tunnel named it already exists"}"#),
        "GET" if earlier(log, "GET") == 0 => list_page(json!([])),
        "GET" => list_page(json!([
            { "id": "made-late", "name": "flaky-tunnel-04", "authenticationID": "site4@branch.example", "locationID": LOCATION },
        ])),
        _ => response("404 Not Found", "{}"),
    })
    .await;
    let client = client_at(&url, 100, support::fast_retry());
    let t = client.create_tunnel(&tunnel_spec(4)).await.expect("create");
    assert_eq!(t.id, "made-late");
    let methods = methods(&log);
    assert_eq!(methods, ["POST", "GET", "POST", "GET"]);
}

#[tokio::test]
async fn a_409_with_nothing_lost_before_it_stays_a_conflict() {
    let (url, log) = raw_server(|req, _| match req.method.as_str() {
        "POST" => response("409 Conflict", r#"{"message":"name in use"}"#),
        _ => list_page(json!([])),
    })
    .await;
    let client = client_at(&url, 100, support::fast_retry());
    let err = client.create_tunnel(&tunnel_spec(5)).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let methods = methods(&log);
    assert_eq!(methods, ["POST"], "no lookup, no retry");
}

#[tokio::test]
async fn a_delete_whose_answer_was_lost_is_a_success() {
    // DELETE 1 is carried out but answered 500; DELETE 2 finds nothing left: 404.
    let (url, log) = raw_server(|req, log| match req.method.as_str() {
        "DELETE" if earlier(log, "DELETE") % 2 == 0 => response(
            "500 Internal Server Error",
            r#"{"message":"gateway timeout"}"#,
        ),
        _ => response("404 Not Found", r#"{"message":"not found"}"#),
    })
    .await;
    let client = client_at(&url, 100, support::fast_retry());
    client
        .delete::<Tunnel>("gone-1")
        .await
        .expect("tunnel delete");
    client
        .delete::<Connector>("gone-2")
        .await
        .expect("connector delete");
    let targets: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        targets,
        [
            "DELETE /api/v1/tunnels/gone-1",
            "DELETE /api/v1/tunnels/gone-1",
            "DELETE /api/v1/connectors/gone-2",
            "DELETE /api/v1/connectors/gone-2",
        ]
    );
}

#[tokio::test]
async fn a_404_after_throttling_only_is_still_not_found() {
    // A 429 means the server did nothing, so the 404 that follows is the truth.
    let (url, log) = raw_server(|req, log| match req.method.as_str() {
        "DELETE" if earlier(log, "DELETE") == 0 => {
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        }
        _ => response("404 Not Found", r#"{"message":"not found"}"#),
    })
    .await;
    let client = client_at(&url, 100, support::fast_retry());
    let err = client.delete::<Tunnel>("never-there").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "delete tunnel never-there: tunnel never-there not found (HTTP 404)"
    );
    assert_eq!(earlier(&log.lock().unwrap(), "DELETE"), 2);
}
