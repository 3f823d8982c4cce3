//! HTTP to the agent and the emulator's control API.

use std::time::{Duration, Instant};

use crate::exposition::*;
use crate::support;

/// GET `url`: the status, the Content-Type and the body, or why it failed.
pub async fn get(url: &str) -> Result<(u16, String, String), String> {
    let resp = support::http()
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
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

/// Waits for `f` to hold, at most `timeout`.
pub async fn until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
