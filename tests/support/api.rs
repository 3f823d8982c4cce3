//! Helpers for the typed Atmos client's tests: clients with their own paging, timeout and
//! retries, and the check that no secret leaks into an error.

use std::time::Duration;

use popsel::atmos::{Client, ClientConfig, RetryPolicy};
use popsel::sim::Sim;

/// A client for `base_url` with the test token and the given page size, timeout and retries.
pub fn client_at(base_url: &str, page_size: u32, timeout: Duration, retry: RetryPolicy) -> Client {
    let mut cc = ClientConfig::new(base_url, super::token());
    cc.page_size = page_size;
    cc.timeout = timeout;
    cc.retry = retry;
    Client::new(cc).expect("client")
}

/// A client for `sim` that asks for `page_size` objects a page.
pub fn paged_client(sim: &Sim, page_size: u32) -> Client {
    client_at(
        &sim.url(),
        page_size,
        Duration::from_secs(5),
        super::fast_retry(),
    )
}

/// Asserts that neither the test token nor any of `secrets` appears in `text`.
#[track_caller]
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for s in std::iter::once(&super::TOKEN).chain(secrets) {
        assert!(!text.contains(s), "{s:?} leaked into: {text}");
    }
}
