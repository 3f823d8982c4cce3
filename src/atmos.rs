//! A typed async client for the Atmos Cloud admin API (`../shared/atmos-api/`): tunnels,
//! connectors and the IPsec PoP catalogue.
//!
//! What it promises: every failure is an [`ApiError`] in operator words; transient failures
//! are retried with jittered backoff under a bounded [`RetryPolicy`]; a create is never blindly
//! repeated, so a flaky API never yields duplicates; lists come back whole, each object once;
//! the token and PSKs never show up in `Debug`, errors or logs.
//!
//! And against a hostile or broken API: every answer is bounded in size and in time, whatever
//! its headers say; a `Retry-After` of any value never waits past the retry budget; a list
//! whose pages never end is stopped; the token goes to the configured origin only (no
//! redirect elsewhere is followed, no plain http to another host unless configured); an id
//! that URL handling could turn into another path is refused before any request.

mod client;
mod endpoints;
pub mod error;
pub mod gate;
pub mod origin;
pub mod resource;
pub mod retry;
pub mod rules;
mod settings;
mod token;
pub mod types;

pub use client::{
    ApiObserver, Client, ClientBuildError, ClientConfig, DEFAULT_BASE_URL,
    DEFAULT_MAX_CATALOG_BYTES, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT,
    Observer,
};
pub use error::ApiError;
pub use gate::Gate;
pub use resource::{Resource, StateSet};
pub use retry::{Next, RetryPolicy, parse_retry_after};
pub use settings::ApiSettings;
pub use token::{TOKEN_ENV, TokenError, load_token};
pub use types::*;
