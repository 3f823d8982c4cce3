//! HTTP face of the emulator: the documented API under `/api/v1`, with fault injection, and a
//! small control API under `/_sim` for tests and demos (statuses, catalogue, faults, counts).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, post, put};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::store::{Emulated, PageRequest, Rejection};
use super::{Faults, SimState};
use crate::atmos::resource::{IPSEC_POPS, endpoint_template};
use crate::atmos::{Connector, Resource, StateSet, Tunnel};

type Shared = State<Arc<SimState>>;

pub fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .merge(resource_routes::<Tunnel>(MethodFilter::PUT))
        .merge(resource_routes::<Connector>(MethodFilter::POST))
        .route(
            &endpoint_template(Connector::COLLECTION, true, Some("regenerate")),
            post(regenerate),
        )
        .route(&endpoint_template(IPSEC_POPS, false, None), get(pops))
        .layer(middleware::from_fn_with_state(state.clone(), inject_faults));
    let control = Router::new()
        .route(&control_status_path::<Tunnel>(), put(set_status::<Tunnel>))
        .route("/_sim/tunnels/{id}/psk-check", post(psk_check))
        .route("/_sim/tunnels/{id}/psk", get(psk_for_lab))
        .route(
            &control_status_path::<Connector>(),
            put(set_status::<Connector>),
        )
        .route("/_sim/catalog", put(set_catalog))
        .route("/_sim/faults", put(set_faults))
        .route("/_sim/requests", get(request_counts));
    api.merge(control)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// The documented endpoints every resource has: list and create on the collection; get,
/// update (with the method its document gives) and delete on an object; its status.
fn resource_routes<R: Emulated>(update_method: MethodFilter) -> Router<Arc<SimState>> {
    Router::new()
        .route(
            &endpoint_template(R::COLLECTION, false, None),
            get(list::<R>).post(create::<R>),
        )
        .route(
            &endpoint_template(R::COLLECTION, true, None),
            get(get_one::<R>)
                .on(update_method, update::<R>)
                .delete(delete::<R>),
        )
        .route(
            &endpoint_template(R::COLLECTION, true, Some("status")),
            get(status::<R>),
        )
}

/// Where tests and demos set an object's status: `/_sim/<collection>/{id}/status`.
fn control_status_path<R: Resource>() -> String {
    format!("/_sim/{}/{{id}}/status", R::COLLECTION)
}

fn error_body(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({ "message": message }))).into_response()
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        error_body(self.status, &self.message)
    }
}

async fn require_token(State(s): Shared, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), s.token.expose_secret().as_bytes()) {
        return error_body(401, "Unauthorized: missing or invalid bearer token");
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Delay, 429s and 500s as configured. Half of the 500s come after the request was carried out,
/// as when a proxy times out in front of a slow backend: that is what makes a blind retry of a
/// create produce duplicates, so the client must be tested against it.
async fn inject_faults(State(s): Shared, req: Request, next: Next) -> Response {
    s.count(req.method().as_str());
    let faults = s.faults();
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    let roll = fastrand::f64();
    if roll < faults.throttle_rate {
        let mut resp = error_body(429, "Too many requests");
        if let Ok(v) = HeaderValue::from_str(&faults.retry_after_secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    if roll < faults.throttle_rate + faults.fail_rate {
        if fastrand::bool() {
            drop(next.run(req).await);
        }
        return error_body(500, "Internal server error (injected)");
    }
    next.run(req).await
}

fn parse_body(body: &Bytes) -> Result<Value, Rejection> {
    serde_json::from_slice(body).map_err(|e| Rejection {
        status: 400,
        message: format!("the request body is not valid JSON: {e}"),
    })
}

/// `pageSize` and `pageNumber`, in any case (the document writes both `pageSize` and `PageSize`).
fn page_request(q: &HashMap<String, String>) -> Result<PageRequest, Rejection> {
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    PageRequest::parse(get("pageSize"), get("pageNumber"))
}

fn url_base(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{path}")
}

async fn list<R: Emulated>(
    State(s): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Rejection> {
    let page = page_request(&q)?;
    let items = s.store().list::<R>();
    let path = endpoint_template(R::COLLECTION, false, None);
    Ok(Json(page.respond(&items, &url_base(&headers, &path))))
}

async fn create<R: Emulated>(State(s): Shared, body: Bytes) -> Result<Response, Rejection> {
    let created = s.store().create::<R>(&parse_body(&body)?)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn get_one<R: Emulated>(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<Response, Rejection> {
    Ok(Json(s.store().get::<R>(&id)?).into_response())
}

async fn update<R: Emulated>(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Rejection> {
    s.store().update::<R>(&id, &parse_body(&body)?)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete<R: Emulated>(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<StatusCode, Rejection> {
    s.store().delete::<R>(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status<R: Emulated>(
    State(s): Shared,
    Path(id): Path<String>,
) -> Result<Response, Rejection> {
    let status = s.store().status::<R>(&id)?;
    Ok(Json(json!({ "id": id, "status": status })).into_response())
}

async fn regenerate(State(s): Shared, Path(id): Path<String>) -> Result<Response, Rejection> {
    let command = s.store().regenerate_connector(&id)?;
    Ok(Json(json!({ "id": id, "command": command })).into_response())
}

async fn pops(State(s): Shared) -> Json<Value> {
    Json(s.store().catalog.clone())
}

// ---- control API ----

fn status_field(body: &Bytes) -> Result<String, Rejection> {
    parse_body(body)?
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Rejection {
            status: 400,
            message: "expected {\"status\": \"...\"}".into(),
        })
}

async fn set_status<R: Emulated>(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, Rejection> {
    let status = R::State::parse(&status_field(&body)?);
    s.store().set_status::<R>(&id, status)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn psk_check(
    State(s): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Rejection> {
    let psk = parse_body(&body)?
        .get("psk")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_default();
    let matches = s.store().tunnel_psk_is(&id, &psk)?;
    Ok(Json(json!({ "matches": matches })).into_response())
}

/// The stored PSK, for the IPsec lab's PoP responders, only when the emulator was started with
/// `--expose-psks-for-lab`; otherwise 404, as if the route did not exist, with a message that
/// says why.
async fn psk_for_lab(State(s): Shared, Path(id): Path<String>) -> Result<Response, Rejection> {
    if !s.expose_psks_for_lab {
        return Err(Rejection {
            status: 404,
            message: "stored PSKs are not exposed: this route is for the IPsec lab only \
                      (popsel sim --expose-psks-for-lab)"
                .into(),
        });
    }
    let psk = s.store().tunnel_psk_for_lab(&id)?;
    Ok(Json(json!({ "id": id, "psk": psk.expose_secret() })).into_response())
}

async fn set_catalog(State(s): Shared, body: Bytes) -> Result<StatusCode, Rejection> {
    s.store().catalog = parse_body(&body)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_faults(State(s): Shared, body: Bytes) -> Result<StatusCode, Rejection> {
    let faults: Faults = serde_json::from_slice(&body).map_err(|e| Rejection {
        status: 400,
        message: format!("faults: {e}"),
    })?;
    faults.validate().map_err(|e| Rejection {
        status: 400,
        message: e.to_string(),
    })?;
    s.set_faults(faults);
    Ok(StatusCode::NO_CONTENT)
}

async fn request_counts(State(s): Shared) -> Json<Value> {
    Json(s.request_counts())
}
