//! What the test proxies between popsel and the emulator share (`chaos`, `state_faults`): a
//! request passed on upstream as it came, and the upstream's answer handed back.

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

/// Serves `app` on 127.0.0.1, a port the kernel picks: its URL, and the task to abort when
/// the proxy is dropped.
pub async fn serve(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// The upstream's answer, which a proxy may alter before handing it back.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    headers: HeaderMap,
}

impl Answer {
    /// The answer as the proxy's response, with the headers popsel reads.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        for name in ["content-type", "retry-after"] {
            if let Some(v) = self.headers.get(name) {
                if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                    response.headers_mut().insert(name, v);
                }
            }
        }
        response
    }
}

/// Passes a request (`parts`, `body`) on to `upstream` (a base URL) with its method, path,
/// query, body and the headers popsel sends. A 502 when upstream does not answer.
pub async fn pass_on(
    client: &reqwest::Client,
    upstream: &str,
    parts: &Parts,
    body: Body,
) -> Result<Answer, Response> {
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let mut call = client
        .request(parts.method.clone(), format!("{upstream}{target}"))
        .body(body.to_vec());
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = parts.headers.get(name) {
            call = call.header(name, v);
        }
    }
    let answer = call
        .send()
        .await
        .map_err(|_| status_only(StatusCode::BAD_GATEWAY))?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    Ok(Answer {
        status,
        body,
        headers,
    })
}

/// A response of `status` and nothing else.
pub fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
