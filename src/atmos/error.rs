//! What can go wrong talking to the API, in the words an operator needs.
//!
//! Every variant names the operation (`create tunnel "Chicago IPSec1"`), so a one-line error
//! tells what was being done and what to do about it. Messages never carry the token or a PSK:
//! the client redacts both from anything the server echoes back.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{op}: bad request (HTTP 400): {message}")]
    BadRequest { op: String, message: String },

    #[error(
        "{op}: unauthorized (HTTP 401): token rejected or lacks the scope; check POPSEL_API_TOKEN or the token file and the token's scopes"
    )]
    Unauthorized { op: String },

    #[error("{op}: {resource} not found (HTTP 404)")]
    NotFound { op: String, resource: String },

    #[error("{op}: conflict (HTTP 409) on {resource}: {message}")]
    Conflict {
        op: String,
        resource: String,
        message: String,
    },

    #[error("{op}: rate limited (HTTP 429){}", fmt_retry_after(*.retry_after))]
    RateLimited {
        op: String,
        retry_after: Option<Duration>,
    },

    #[error("{op}: server error (HTTP {status}): {message}")]
    Server {
        op: String,
        status: u16,
        message: String,
    },

    #[error("{op}: unexpected HTTP {status}: {message}")]
    UnexpectedStatus {
        op: String,
        status: u16,
        message: String,
    },

    #[error("{op}: no answer within {:.1}s (timeout)", .timeout.as_secs_f64())]
    Timeout { op: String, timeout: Duration },

    #[error("{op}: connection refused by {endpoint}: is the API URL right and the server up?")]
    ConnectionRefused { op: String, endpoint: String },

    #[error("{op}: could not reach {endpoint}: {detail}")]
    Transport {
        op: String,
        endpoint: String,
        detail: String,
    },

    #[error("{op}: response is not the JSON expected ({detail}); body starts with {snippet:?}")]
    InvalidBody {
        op: String,
        detail: String,
        snippet: String,
    },

    #[error(
        "{op}: {id:?} is not an object id (an id is 1 to {max} letters, digits, '-', '_', '.' or '~', not only dots, e.g. 6ee0bd21-4f50-454a-9f75-82f6933d54b0); nothing was sent",
        max = super::rules::MAX_OBJECT_ID_CHARS
    )]
    BadId { op: String, id: String },

    #[error(
        "{op}: the answer is larger than {limit} bytes; stopped reading it (if the API's answers are legitimately this large, raise [api] {setting})"
    )]
    TooLarge {
        op: String,
        limit: usize,
        setting: &'static str,
    },

    /// A redirect that was not followed: to another origin, or one too many.
    #[error("{op}: {detail}")]
    Redirected { op: String, detail: String },

    #[error("{op}: the API's paging is broken: {detail}; stopped listing")]
    BadPaging { op: String, detail: String },

    #[error(
        "{last}, beyond the retry budget ({:.1}s left of it): not waited for (gave up after {attempts} attempt{} in {:.1}s)",
        .left.as_secs_f64(),
        if *.attempts == 1 { "" } else { "s" },
        .elapsed.as_secs_f64()
    )]
    RetryAfterBeyondBudget {
        attempts: u32,
        elapsed: Duration,
        left: Duration,
        last: Box<ApiError>,
    },

    /// Not sent: the agent holds its API calls back after a 429 or a failure of the API, until
    /// one call, the probe, gets an answer.
    #[error(
        "{op}: not sent: the API {}; popsel holds its API calls back, and one call tries again in {:.0}s",
        if *.throttled { "throttled popsel (HTTP 429)" } else { "failed (server errors or no answer)" },
        .left.as_secs_f64().ceil()
    )]
    HeldBack {
        op: String,
        left: Duration,
        throttled: bool,
    },

    #[error("{last} (gave up after {attempts} attempts in {:.1}s)", .elapsed.as_secs_f64())]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        last: Box<ApiError>,
    },
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    d.map(|d| format!(", server asks to retry after {}s", d.as_secs_f64()))
        .unwrap_or_default()
}

impl ApiError {
    /// The error itself, looking through `GaveUp` and `RetryAfterBeyondBudget`.
    pub fn root(&self) -> &ApiError {
        match self {
            ApiError::GaveUp { last, .. } | ApiError::RetryAfterBeyondBudget { last, .. } => {
                last.root()
            }
            e => e,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self.root(), ApiError::Conflict { .. })
    }

    /// No such object: a 404, or an id that cannot name one.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.root(),
            ApiError::NotFound { .. } | ApiError::BadId { .. }
        )
    }

    pub fn is_unauthorized(&self) -> bool {
        matches!(self.root(), ApiError::Unauthorized { .. })
    }

    /// The server may be fine a moment later: throttling, server errors, timeouts and network
    /// trouble. Client errors (4xx other than 429) are not worth repeating.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.root(),
            ApiError::RateLimited { .. }
                | ApiError::Server { .. }
                | ApiError::Timeout { .. }
                | ApiError::ConnectionRefused { .. }
                | ApiError::Transport { .. }
        )
    }

    /// The request may have been carried out although no success came back, so repeating a
    /// non-idempotent request (create) could do it twice. A 429 or a refused connection means
    /// the server did not act.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self.root(),
            ApiError::Server { .. } | ApiError::Timeout { .. } | ApiError::Transport { .. }
        )
    }

    /// The API cannot be used now: a transient failure, or a call held back because of one.
    /// A stage that meets this backs off across its runs.
    pub fn is_unavailable(&self) -> bool {
        self.is_transient() || matches!(self.root(), ApiError::HeldBack { .. })
    }

    /// The error is about reaching the API at all (for the `popsel_api_up` view of things).
    pub fn is_transport(&self) -> bool {
        matches!(
            self.root(),
            ApiError::Timeout { .. }
                | ApiError::ConnectionRefused { .. }
                | ApiError::Transport { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self.root() {
            ApiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What went wrong in a few words, for a status line (`HTTP 503`, `timeout`): the status
    /// or the kind, never the server's text.
    pub fn brief(&self) -> String {
        match self.root() {
            ApiError::RateLimited { .. } => "HTTP 429".into(),
            ApiError::Server { status, .. } | ApiError::UnexpectedStatus { status, .. } => {
                format!("HTTP {status}")
            }
            ApiError::ConnectionRefused { .. } => "connection refused".into(),
            other => other.kind().replace('_', " "),
        }
    }

    /// A small fixed label for metrics: never free text.
    pub fn kind(&self) -> &'static str {
        match self.root() {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Server { .. } => "server_error",
            ApiError::UnexpectedStatus { .. } => "unexpected_status",
            ApiError::Timeout { .. } => "timeout",
            ApiError::ConnectionRefused { .. } => "connection_refused",
            ApiError::Transport { .. } => "transport",
            ApiError::InvalidBody { .. } => "invalid_body",
            ApiError::BadId { .. } => "bad_id",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::Redirected { .. } => "redirected",
            ApiError::BadPaging { .. } => "bad_paging",
            ApiError::HeldBack { .. } => "held_back",
            ApiError::GaveUp { .. } | ApiError::RetryAfterBeyondBudget { .. } => "gave_up",
        }
    }
}
