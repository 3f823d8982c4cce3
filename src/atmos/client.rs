//! The HTTP machinery under the typed endpoints: one exchange, and the retry loop with what
//! makes a DELETE and a create safe to retry.

use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::resource::{API_ROOT, Resource, endpoint_template};
use super::retry::{RetryPolicy, parse_retry_after};

pub const DEFAULT_BASE_URL: &str = "https://admin-api.axissecurity.com";
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much of an unexpected body an error quotes.
const SNIPPET_BYTES: usize = 200;
const REDACTED: &str = "(sensitive)";

/// Told about every HTTP exchange with the API (for metrics).
pub trait ApiObserver: Send + Sync {
    /// `endpoint` is a path template (`/api/v1/tunnels/{id}`), `code` the HTTP status or, when
    /// no answer came, `timeout`, `connection_refused` or `transport`.
    fn observe(&self, endpoint: &str, method: &str, code: &str, elapsed: Duration);
}

/// An optional [`ApiObserver`].
#[derive(Clone, Default)]
pub struct Observer(pub Option<Arc<dyn ApiObserver>>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub token: SecretString,
    /// Per request, connection included.
    pub timeout: Duration,
    pub page_size: u32,
    pub retry: RetryPolicy,
    pub observer: Observer,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            timeout: DEFAULT_TIMEOUT,
            page_size: DEFAULT_PAGE_SIZE,
            retry: RetryPolicy::default(),
            observer: Observer::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("API URL {url:?} is not usable: {detail} (expected e.g. {DEFAULT_BASE_URL})")]
    BadUrl { url: String, detail: String },
    #[error("could not set up the HTTP client: {0}")]
    Http(String),
}

/// A typed client for the Atmos Cloud admin API. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    timeout: Duration,
    page_size: u32,
    retry: RetryPolicy,
    observer: Observer,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("token", &REDACTED)
            .finish()
    }
}

struct HttpAnswer {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

/// Where a call goes: a collection (`tunnels`, `pops/ipsec`), maybe one object of it, maybe
/// one of that object's sub-resources (`status`). Only the id comes from the caller, so the
/// metric label, made from the rest, stays bounded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    pub collection: &'static str,
    pub id: Option<&'a str>,
    pub sub: Option<&'static str>,
}

impl<'a> Target<'a> {
    pub fn collection(collection: &'static str) -> Self {
        Self {
            collection,
            id: None,
            sub: None,
        }
    }

    pub fn object(collection: &'static str, id: &'a str, sub: Option<&'static str>) -> Self {
        Self {
            collection,
            id: Some(id),
            sub,
        }
    }

    /// The metric label: `/api/v1/tunnels/{id}/status`.
    pub fn template(&self) -> String {
        endpoint_template(self.collection, self.id.is_some(), self.sub)
    }
}

/// One API request, described for the machinery and for error messages.
pub(super) struct Call<'a> {
    /// What is being done, in operator words: `create tunnel "Chicago IPSec1"`.
    pub op: String,
    /// What a 404 or 409 is about: `tunnel 6ee0bd21-…`.
    pub resource: String,
    pub method: Method,
    pub target: Target<'a>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Secrets in the body (PSKs), redacted from anything the server echoes back.
    pub secrets: Vec<&'a SecretString>,
}

impl<'a> Call<'a> {
    pub fn new(op: String, resource: String, method: Method, target: Target<'a>) -> Self {
        Self {
            op,
            resource,
            method,
            target,
            query: Vec::new(),
            body: None,
            secrets: Vec::new(),
        }
    }

    /// `<verb> tunnel <id>` on object `id` of `R`, or on its sub-resource `sub`.
    pub fn on_object<R: Resource>(
        verb: &str,
        method: Method,
        id: &'a str,
        sub: Option<&'static str>,
    ) -> Self {
        Self::new(
            format!("{verb} {} {id}", R::NAME),
            format!("{} {id}", R::NAME),
            method,
            Target::object(R::COLLECTION, id, sub),
        )
    }
}

/// What sets one kind of call apart in the retry loop: what a successful answer becomes, and
/// what it means for later attempts that an earlier one may have been carried out although its
/// answer was lost (a 5xx, a timeout, a broken connection).
pub(super) trait Recovery {
    type Output;

    fn answered(&self, body: Vec<u8>) -> Result<Self::Output, ApiError>;

    /// An attempt after a lost answer failed with `err`: `Break` when that tells how the call
    /// ended, else `Continue` with `err` to handle it as any failure.
    async fn after_loss(
        &self,
        err: ApiError,
    ) -> ControlFlow<Result<Self::Output, ApiError>, ApiError> {
        ControlFlow::Continue(err)
    }

    /// Right after a lost answer: the result when the call turns out to have gone through.
    async fn went_through(&self) -> Result<Option<Self::Output>, ApiError> {
        Ok(None)
    }
}

/// A call that is safe to repeat: GET, PUT, a connector update, regenerate.
pub(super) struct Repeatable;

impl Recovery for Repeatable {
    type Output = Vec<u8>;

    fn answered(&self, body: Vec<u8>) -> Result<Vec<u8>, ApiError> {
        Ok(body)
    }
}

/// A DELETE, safe to repeat but for its answer: a 404 after a lost answer means that the
/// earlier attempt did the job.
pub(super) struct Delete;

impl Recovery for Delete {
    type Output = ();

    fn answered(&self, _: Vec<u8>) -> Result<(), ApiError> {
        Ok(())
    }

    async fn after_loss(&self, err: ApiError) -> ControlFlow<Result<(), ApiError>, ApiError> {
        if err.is_not_found() {
            ControlFlow::Break(Ok(()))
        } else {
            ControlFlow::Continue(err)
        }
    }
}

/// A create (POST), which is not safe to repeat blindly: after a lost answer it asks whether
/// the object now exists (the one `matches` picks out of the list) and returns it instead of
/// creating a duplicate. A 409 after a lost answer is resolved the same way.
pub(super) struct Create<'c, R, M> {
    client: &'c Client,
    call: &'c Call<'c>,
    matches: M,
    made: PhantomData<fn() -> R>,
}

impl<'c, R: Resource, M: Fn(&R) -> bool> Create<'c, R, M> {
    pub fn new(client: &'c Client, call: &'c Call<'c>, matches: M) -> Self {
        Self {
            client,
            call,
            matches,
            made: PhantomData,
        }
    }

    async fn lookup(&self) -> Result<Option<R>, ApiError> {
        let all = self.client.list::<R>().await?;
        Ok(all.into_iter().find(|o| (self.matches)(o)))
    }
}

impl<R: Resource, M: Fn(&R) -> bool> Recovery for Create<'_, R, M> {
    type Output = R;

    fn answered(&self, body: Vec<u8>) -> Result<R, ApiError> {
        self.client.decode(self.call, &body)
    }

    async fn after_loss(&self, err: ApiError) -> ControlFlow<Result<R, ApiError>, ApiError> {
        if !err.is_conflict() {
            return ControlFlow::Continue(err);
        }
        ControlFlow::Break(match self.lookup().await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(err),
            Err(e) => Err(e),
        })
    }

    async fn went_through(&self) -> Result<Option<R>, ApiError> {
        let found = self.lookup().await?;
        if found.is_some() {
            tracing::info!(op = %self.call.op, "the create went through although its answer was lost; using the existing object");
        }
        Ok(found)
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        // Never echo credentials someone put in the URL.
        let shown = match config.base_url.split_once('@') {
            Some((before, after)) => match before.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://(credentials)@{after}"),
                None => format!("(credentials)@{after}"),
            },
            None => config.base_url.clone(),
        };
        let bad_url = |detail: String| ClientBuildError::BadUrl {
            url: shown.clone(),
            detail,
        };
        let base = Url::parse(config.base_url.trim()).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(bad_url("the scheme must be http or https".into()));
        }
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("popsel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError::Http(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                token: config.token,
                timeout: config.timeout,
                page_size: config.page_size.max(1),
                retry: config.retry,
                observer: config.observer,
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// The URL of a call. An id that is empty, `.` or `..` (also percent-encoded) is refused:
    /// URL normalisation would drop it and address the collection instead (an update of
    /// connector `.` would become a create).
    fn url(&self, call: &Call<'_>) -> Result<Url, ApiError> {
        let target = call.target;
        if let Some(id) = target.id {
            let plain = id.replace("%2e", ".").replace("%2E", ".");
            if matches!(plain.as_str(), "" | "." | "..") {
                return Err(ApiError::BadId {
                    op: call.op.clone(),
                    id: id.to_owned(),
                });
            }
        }
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .extend(API_ROOT.split('/').filter(|s| !s.is_empty()))
                .extend(target.collection.split('/'))
                .extend(target.id)
                .extend(target.sub);
        }
        Ok(url)
    }

    /// One HTTP exchange, told to the observer.
    async fn attempt(&self, call: &Call<'_>) -> Result<Vec<u8>, ApiError> {
        let url = self.url(call)?;
        let start = Instant::now();
        let result = self.exchange(call, url).await;
        if let Some(observer) = &self.inner.observer.0 {
            let code = match &result {
                Ok(answer) => answer.status.to_string(),
                Err(e) => match e {
                    ApiError::Timeout { .. } => "timeout".to_owned(),
                    ApiError::ConnectionRefused { .. } => "connection_refused".to_owned(),
                    _ => "transport".to_owned(),
                },
            };
            observer.observe(
                &call.target.template(),
                call.method.as_str(),
                &code,
                start.elapsed(),
            );
        }
        let answer = result?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        let text = self.redact(&String::from_utf8_lossy(&answer.body), call);
        // Once more after decoding: a JSON message may have held an escaped secret.
        let message = self.redact(&server_message(&text), call);
        Err(classify(call, answer.status, answer.retry_after, &message))
    }

    /// One HTTP exchange: whatever the server answered, or a transport error.
    async fn exchange(&self, call: &Call<'_>, url: Url) -> Result<HttpAnswer, ApiError> {
        let endpoint = format!("{} {}", call.method, url.path());
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .bearer_auth(self.inner.token.expose_secret())
            .header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = &call.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(call, &endpoint, e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(call, &endpoint, e))?;
        Ok(HttpAnswer {
            status,
            body: body.to_vec(),
            retry_after,
        })
    }

    fn transport_error(&self, call: &Call<'_>, endpoint: &str, e: reqwest::Error) -> ApiError {
        let op = call.op.clone();
        if e.is_timeout() {
            return ApiError::Timeout {
                op,
                timeout: self.inner.timeout,
            };
        }
        if is_connection_refused(&e) {
            return ApiError::ConnectionRefused {
                op,
                endpoint: self.inner.base.as_str().to_owned(),
            };
        }
        ApiError::Transport {
            op,
            endpoint: endpoint.to_owned(),
            detail: self.redact(&error_chain(&e), call),
        }
    }

    /// Removes the token and the call's secrets from text that came from elsewhere, also in
    /// their JSON-escaped form (a server echoing a PSK inside a JSON string escapes it).
    fn redact(&self, text: &str, call: &Call<'_>) -> String {
        let mut out = text.to_owned();
        let secrets = std::iter::once(&self.inner.token).chain(call.secrets.iter().copied());
        for secret in secrets {
            let s = secret.expose_secret();
            if s.is_empty() {
                continue;
            }
            let escaped = serde_json::to_string(s).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            for form in [s, escaped] {
                if !form.is_empty() && out.contains(form) {
                    out = out.replace(form, REDACTED);
                }
            }
        }
        out
    }

    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        body: &[u8],
    ) -> Result<T, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            // Redact the whole body before cutting it, so that no part of a secret that
            // straddles the cut survives; serde's message may quote the body too.
            let text = self.redact(&String::from_utf8_lossy(body), call);
            ApiError::InvalidBody {
                op: call.op.clone(),
                detail: self.redact(&e.to_string(), call),
                snippet: cut(&text, SNIPPET_BYTES).to_owned(),
            }
        })
    }

    /// Sends a request that is safe to repeat (GET, PUT, connector update, regenerate).
    pub(super) async fn send(&self, call: &Call<'_>) -> Result<Vec<u8>, ApiError> {
        self.retrying(call, &Repeatable).await
    }

    /// Sends a request that is safe to repeat and decodes its answer.
    pub(super) async fn fetch<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, ApiError> {
        let body = self.send(call).await?;
        self.decode(call, &body)
    }

    /// The retry loop: transient failures are retried under the retry policy, and `recovery`
    /// decides what a lost answer means for the attempts after it.
    pub(super) async fn retrying<R: Recovery>(
        &self,
        call: &Call<'_>,
        recovery: &R,
    ) -> Result<R::Output, ApiError> {
        let start = Instant::now();
        let mut attempts = 0;
        let mut lost = false;
        loop {
            attempts += 1;
            let mut err = match self.attempt(call).await {
                Ok(body) => return recovery.answered(body),
                Err(e) => e,
            };
            if lost {
                err = match recovery.after_loss(err).await {
                    ControlFlow::Break(result) => return result,
                    ControlFlow::Continue(err) => err,
                };
            }
            if !err.is_transient() {
                return Err(err);
            }
            let lost_now = err.is_ambiguous();
            lost |= lost_now;
            self.backoff(attempts, start, err).await?;
            if lost_now {
                if let Some(done) = recovery.went_through().await? {
                    return Ok(done);
                }
            }
        }
    }

    /// Waits before the next attempt, or gives up with `err`.
    async fn backoff(&self, attempts: u32, start: Instant, err: ApiError) -> Result<(), ApiError> {
        let elapsed = start.elapsed();
        let Some(wait) =
            self.inner
                .retry
                .next_delay(attempts, elapsed, err.retry_after(), fastrand::f64())
        else {
            return Err(if attempts <= 1 {
                err
            } else {
                ApiError::GaveUp {
                    attempts,
                    elapsed,
                    last: Box::new(err),
                }
            });
        };
        tracing::debug!(error = %err, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying API call");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// Turns a non-2xx answer into an error. `message` is the server's, already redacted.
fn classify(
    call: &Call<'_>,
    status: u16,
    retry_after: Option<Duration>,
    message: &str,
) -> ApiError {
    let op = call.op.clone();
    let message = message.to_owned();
    match status {
        400 => ApiError::BadRequest { op, message },
        401 | 403 => ApiError::Unauthorized { op },
        404 => ApiError::NotFound {
            op,
            resource: call.resource.clone(),
        },
        409 => ApiError::Conflict {
            op,
            resource: call.resource.clone(),
            message,
        },
        429 => ApiError::RateLimited { op, retry_after },
        500..=599 => ApiError::Server {
            op,
            status,
            message,
        },
        _ => ApiError::UnexpectedStatus {
            op,
            status,
            message,
        },
    }
}

/// The server's own words from an error body: a JSON `message` (or `error`, `detail`, `title`)
/// when there is one, else the start of the text.
pub(super) fn server_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["message", "Message", "error", "detail", "title"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return s.clone();
            }
        }
    }
    let text = body.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    cut(text, SNIPPET_BYTES).to_owned()
}

/// At most `max` bytes of `text`, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn is_connection_refused(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = s.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
