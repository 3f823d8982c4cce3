//! HTTP to the agent and the emulator's control API.

use std::time::{Duration, Instant};

use popsel::sim::Sim;
use serde_json::Value;

use crate::exposition::*;
use crate::support;

pub fn http() -> reqwest::Client {
    // reqwest is built without a bundled crypto provider; plain http needs none, but building
    // a client wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("HTTP client")
}

/// GET `url`: the status, the Content-Type and the body, or why it failed.
pub async fn get(url: &str) -> Result<(u16, String, String), String> {
    let resp = http().get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((status, content_type, body))
}

pub async fn get_status(url: &str) -> Option<u16> {
    get(url).await.ok().map(|(status, _, _)| status)
}

pub async fn scrape(base: &str) -> Option<Scrape> {
    match get(&format!("{base}/metrics")).await {
        Ok((200, _, body)) => Some(Scrape::parse(body)),
        _ => None,
    }
}

/// `PUT` to the emulator's control API, with the token.
pub async fn sim_put(sim: &Sim, path: &str, body: Value) -> u16 {
    http()
        .put(format!("{}{path}", sim.url()))
        .bearer_auth(support::TOKEN)
        .json(&body)
        .send()
        .await
        .expect("PUT to the emulator")
        .status()
        .as_u16()
}

/// Waits for `f` to hold, at most `timeout`.
pub async fn until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
