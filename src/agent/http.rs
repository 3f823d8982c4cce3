//! `/` (a page linking the others, as node_exporter's), `/metrics` (Prometheus text format
//! 0.0.4), `/healthz` (the stages complete their runs) and `/readyz` (a catalogue and one probe
//! round exist).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::task::JoinHandle;

use super::Agent;
use crate::http_server::{self, Limits};

/// What someone opening the agent's address in a browser finds: where to go from there.
const LANDING_PAGE: &str = concat!(
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>popsel</title></head>\n",
    "<body>\n<h1>popsel</h1>\n<p>SD-WAN PoP selection agent, version ",
    env!("CARGO_PKG_VERSION"),
    ".</p>\n<ul>\n",
    "<li><a href=\"metrics\">metrics</a>: Prometheus metrics</li>\n",
    "<li><a href=\"healthz\">healthz</a>: 200 while every stage completes its runs</li>\n",
    "<li><a href=\"readyz\">readyz</a>: 200 once a catalogue and a probe round exist</li>\n",
    "</ul>\n</body>\n</html>\n",
);

async fn landing_page() -> Html<&'static str> {
    Html(LANDING_PAGE)
}

async fn metrics(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        agent.metrics.encode(),
    )
}

/// 200 while every scheduled stage completes its runs (failed ones too: an API outage is for
/// the alerts, not for a restart); 503 naming the stages that have completed none for 3 of
/// their intervals, for a supervisor to restart a stuck agent.
async fn healthz(State(agent): State<Arc<Agent>>) -> (StatusCode, String) {
    let overdue = agent.overdue();
    if overdue.is_empty() {
        return (StatusCode::OK, "ok\n".to_owned());
    }
    let lines: String = overdue.iter().map(|o| format!("{o}\n")).collect();
    (StatusCode::SERVICE_UNAVAILABLE, lines)
}

async fn readyz(State(agent): State<Arc<Agent>>) -> (StatusCode, &'static str) {
    if agent.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for a catalogue and a probe round\n",
        )
    }
}

/// Binds `listen` and serves until the returned task is aborted. Returns the bound address.
/// The server is bounded ([`Limits::METRICS`]): a flood of connections cannot take the
/// descriptors the stages need, nor keep a scrape out.
pub async fn serve_metrics(
    agent: Arc<Agent>,
    listen: SocketAddr,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(landing_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(agent);
    let task = tokio::spawn(http_server::serve(
        listener,
        app,
        Limits::METRICS,
        std::future::pending(),
    ));
    Ok((addr, task))
}
