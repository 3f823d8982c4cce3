//! The HTTP machinery under the typed endpoints: one exchange, and the retry loop with what
//! makes a DELETE and a create safe to retry.

use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::gate::{Admission, Gate};
use super::origin::{check_base_url, origin_of, same_origin, shown_url};
use super::resource::{API_ROOT, Resource, endpoint_template};
use super::retry::{Next, RetryPolicy, parse_retry_after};
use super::rules::is_valid_object_id;

pub const DEFAULT_BASE_URL: &str = "https://admin-api.axissecurity.com";
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read, but for the PoP catalogue's: a page of 1000 objects is well under
/// 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The largest PoP catalogue read: the sample's 52 PoPs are 12 KiB, so this leaves room for a
/// catalogue a thousand times larger.
pub const DEFAULT_MAX_CATALOG_BYTES: usize = 32 << 20;

/// How much of an unexpected body an error quotes.
const SNIPPET_BYTES: usize = 200;
/// How much of an error answer is read: enough for any message worth quoting, and an error
/// answer never needs more, whatever the caps of successful answers.
const ERROR_BODY_BYTES: usize = 64 << 10;
/// Redirects followed within the API's origin before giving up.
const MAX_REDIRECTS: usize = 5;
const REDACTED: &str = "(sensitive)";

/// Told about every HTTP exchange with the API (for metrics).
pub trait ApiObserver: Send + Sync {
    /// `endpoint` is a path template (`/api/v1/tunnels/{id}`), `code` the HTTP status or, when
    /// no answer came, `timeout`, `connection_refused` or `transport`.
    fn observe(&self, endpoint: &str, method: &str, code: &str, elapsed: Duration);

    /// A call was held back by the agent's gate, without a request; `throttled`: because of a
    /// 429 (else because the API failed).
    fn held(&self, _throttled: bool) {}

    /// After each call through the gate: whether it holds calls back because of a 429.
    fn throttled(&self, _throttled: bool) {}

    /// The call failed with `error` and is tried again after `wait` (a progress line says
    /// so, rather than sitting silent through the backoff).
    fn retrying(&self, _wait: Duration, _error: &ApiError) {}
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
#[derive(Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub token: SecretString,
    /// Per request: connection, answer and its whole body.
    pub timeout: Duration,
    pub page_size: u32,
    pub retry: RetryPolicy,
    pub observer: Observer,
    /// The largest answer read, but for the PoP catalogue's.
    pub max_response_bytes: usize,
    /// The largest PoP catalogue read.
    pub max_catalog_bytes: usize,
    /// Plain http to a host other than this machine is refused unless this is set.
    pub allow_insecure_http: bool,
}

/// By hand, so that credentials someone wrote into the URL never show.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &shown_url(&self.base_url))
            .field("token", &REDACTED)
            .field("timeout", &self.timeout)
            .field("page_size", &self.page_size)
            .field("retry", &self.retry)
            .field("observer", &self.observer)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_catalog_bytes", &self.max_catalog_bytes)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
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
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_catalog_bytes: DEFAULT_MAX_CATALOG_BYTES,
            allow_insecure_http: false,
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

#[derive(Clone)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    timeout: Duration,
    page_size: u32,
    retry: RetryPolicy,
    observer: Observer,
    max_response_bytes: usize,
    max_catalog_bytes: usize,
    /// The agent's: calls held back together while the API throttles or fails.
    gate: Option<Arc<Gate>>,
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
    /// The origin a redirect that was not followed points to.
    redirect_to: Option<String>,
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
    /// The answer is the PoP catalogue, read up to its own, larger cap.
    pub catalog: bool,
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
            catalog: false,
        }
    }

    /// `<verb> tunnel <id>` on object `id` of `R`, or on its sub-resource `sub`.
    pub fn on_object<R: Resource>(
        verb: &str,
        method: Method,
        id: &'a str,
        sub: Option<&'static str>,
    ) -> Self {
        // An id that is no id is quoted, so that its white space and control characters show
        // as escapes rather than reaching a terminal or a log line as they are.
        let shown = if is_valid_object_id(id) {
            id.to_owned()
        } else {
            format!("{id:?}")
        };
        Self::new(
            format!("{verb} {} {shown}", R::NAME),
            format!("{} {shown}", R::NAME),
            method,
            Target::object(R::COLLECTION, id, sub),
        )
    }

    /// The largest answer this call reads, and the `[api]` key that sets it.
    fn body_cap(&self, client: &Inner) -> (usize, &'static str) {
        if self.catalog {
            (client.max_catalog_bytes, "max_catalog_bytes")
        } else {
            (client.max_response_bytes, "max_response_bytes")
        }
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
    /// A client for `config.base_url`, which must be http or https, without credentials,
    /// and https unless it is this machine or `allow_insecure_http` is set.
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let base = check_base_url(&config.base_url, config.allow_insecure_http).map_err(|e| {
            ClientBuildError::BadUrl {
                url: shown_url(&config.base_url),
                detail: e.to_string(),
            }
        })?;
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("popsel/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
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
                max_response_bytes: config.max_response_bytes.max(1),
                max_catalog_bytes: config.max_catalog_bytes.max(1),
                gate: None,
            }),
        })
    }

    /// This client, its calls going through `gate` ([`Gate`]): the agent's clients share one.
    pub fn with_gate(&self, gate: Arc<Gate>) -> Client {
        let mut inner = (*self.inner).clone();
        inner.gate = Some(gate);
        Client {
            inner: Arc::new(inner),
        }
    }

    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// The URL of a call. An id outside the allow-list of [`is_valid_object_id`] is refused:
    /// URL handling could turn it into another path (`.` or `.\t` into the collection, so
    /// that a delete would address the collection and an update of connector `.` become a
    /// create; `a/b`, `?`, `#`, `%2e` into other paths still).
    fn url(&self, call: &Call<'_>) -> Result<Url, ApiError> {
        let target = call.target;
        if let Some(id) = target.id {
            if !is_valid_object_id(id) {
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
        Err(self.classify(call, answer, &quote(&message)))
    }

    /// One HTTP exchange: whatever the server answered, or a transport error. The whole of it,
    /// body included, happens within the timeout, however slowly the body comes.
    async fn exchange(&self, call: &Call<'_>, url: Url) -> Result<HttpAnswer, ApiError> {
        let endpoint = format!("{} {}", call.method, url.path());
        let deadline = self.inner.timeout;
        match tokio::time::timeout(deadline, self.exchange_unbounded(call, url, &endpoint)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout {
                op: call.op.clone(),
                timeout: deadline,
            }),
        }
    }

    async fn exchange_unbounded(
        &self,
        call: &Call<'_>,
        url: Url,
        endpoint: &str,
    ) -> Result<HttpAnswer, ApiError> {
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
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(call, endpoint, e))?;
        let status = resp.status().as_u16();
        let success = (200..300).contains(&status);
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .filter(|_| !success)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Our redirect policy hands back a redirect to another origin unfollowed.
        let redirect_to = resp
            .headers()
            .get(LOCATION)
            .filter(|_| (300..400).contains(&status))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| resp.url().join(v).ok())
            .map(|u| origin_of(&u));
        let body = if success {
            let (cap, setting) = call.body_cap(&self.inner);
            read_body(&mut resp, cap).await.map_err(|e| match e {
                BodyError::TooLarge => ApiError::TooLarge {
                    op: call.op.clone(),
                    limit: cap,
                    setting,
                },
                BodyError::Http(e) => self.transport_error(call, endpoint, e),
            })?
        } else {
            // Only quoted: the start is all that is needed, and all that is read.
            read_start(&mut resp, ERROR_BODY_BYTES).await
        };
        Ok(HttpAnswer {
            status,
            body,
            retry_after,
            redirect_to,
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
        if e.is_redirect() {
            return ApiError::Redirected {
                op,
                detail: format!(
                    "the API redirected more than {MAX_REDIRECTS} times; check [api] base_url"
                ),
            };
        }
        if is_connection_refused(&e) {
            return ApiError::ConnectionRefused {
                op,
                endpoint: self.inner.base.as_str().to_owned(),
            };
        }
        // Without the URL: the base URL is in `endpoint` already, and a URL a redirect led to
        // is the server's to choose.
        ApiError::Transport {
            op,
            endpoint: endpoint.to_owned(),
            detail: printable(&self.redact(&error_chain(&e.without_url()), call)),
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
        self.decode_with(call, body, |body| serde_json::from_slice(body))
    }

    /// The answer read by `read`, its error redacted and quoted as [`Self::decode`]'s.
    pub(super) fn decode_with<T>(
        &self,
        call: &Call<'_>,
        body: &[u8],
        read: impl FnOnce(&[u8]) -> Result<T, serde_json::Error>,
    ) -> Result<T, ApiError> {
        read(body).map_err(|e| {
            // Redact before cutting, so that no part of a secret that straddles the cut
            // survives; serde's message may quote the body too (a whole string value).
            let start = &body[..body.len().min(ERROR_BODY_BYTES)];
            let text = self.redact(&String::from_utf8_lossy(start), call);
            ApiError::InvalidBody {
                op: call.op.clone(),
                detail: quote(&self.redact(&e.to_string(), call)),
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

    /// One call through the gate, when there is one: held back without a request while it is
    /// closed; in a single attempt when it is the probe; and its outcome told to the gate.
    pub(super) async fn retrying<R: Recovery>(
        &self,
        call: &Call<'_>,
        recovery: &R,
    ) -> Result<R::Output, ApiError> {
        let Some(gate) = &self.inner.gate else {
            return self.retrying_ungated(call, recovery, None).await;
        };
        let ticket = match gate.admit(Instant::now()) {
            Admission::Open => None,
            Admission::Probe(ticket) => Some(ticket),
            Admission::Held(hold) => {
                if let Some(observer) = &self.inner.observer.0 {
                    observer.held(hold.throttled);
                }
                return Err(ApiError::HeldBack {
                    op: call.op.clone(),
                    left: hold.left,
                    throttled: hold.throttled,
                });
            }
        };
        let single = ticket.is_some().then_some(1);
        let result = self.retrying_ungated(call, recovery, single).await;
        match &result {
            Err(e) if e.is_transient() => {
                let throttled = matches!(e.root(), ApiError::RateLimited { .. });
                let (now, jitter) = (Instant::now(), fastrand::f64());
                let wait = gate.failed(ticket, now, throttled, e.retry_after(), jitter);
                tracing::debug!(error = %e, wait_ms = wait.as_millis() as u64, "API calls held back");
            }
            // Held back by a call that failed meanwhile, or refused before any request: the
            // API was not asked, nothing learnt.
            Err(ApiError::HeldBack { .. } | ApiError::BadId { .. }) => drop(ticket),
            _ => gate.answered(ticket),
        }
        if let Some(observer) = &self.inner.observer.0 {
            observer.throttled(gate.throttled());
        }
        result
    }

    /// The retry loop: transient failures are retried under the retry policy (in at most
    /// `max_attempts`, when given), and `recovery` decides what a lost answer means for the
    /// attempts after it. Under a gate a 429 ends the call at once: the gate holds every call
    /// back for it.
    async fn retrying_ungated<R: Recovery>(
        &self,
        call: &Call<'_>,
        recovery: &R,
        max_attempts: Option<u32>,
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
            let throttled = matches!(err.root(), ApiError::RateLimited { .. });
            let gated = self.inner.gate.is_some();
            if max_attempts.is_some_and(|max| attempts >= max) || (gated && throttled) {
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

    /// Waits before the next attempt, or gives up with `err`. A `Retry-After` beyond what is
    /// left of the time budget ends the call at once, saying so: the wait never passes the
    /// budget, whatever the server asks.
    async fn backoff(&self, attempts: u32, start: Instant, err: ApiError) -> Result<(), ApiError> {
        let elapsed = start.elapsed();
        let next = self
            .inner
            .retry
            .next(attempts, elapsed, err.retry_after(), fastrand::f64());
        let wait = match next {
            Next::Wait(wait) => wait,
            Next::RetryAfterBeyondBudget { left, .. } => {
                return Err(ApiError::RetryAfterBeyondBudget {
                    attempts,
                    elapsed,
                    left,
                    last: Box::new(err),
                });
            }
            Next::OutOfAttempts | Next::OutOfTime if attempts <= 1 => return Err(err),
            Next::OutOfAttempts | Next::OutOfTime => {
                return Err(ApiError::GaveUp {
                    attempts,
                    elapsed,
                    last: Box::new(err),
                });
            }
        };
        tracing::debug!(error = %err, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying API call");
        if let Some(observer) = &self.inner.observer.0 {
            observer.retrying(wait, &err);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Turns a non-2xx answer into an error. `message` is the server's, already redacted and
    /// quoted.
    fn classify(&self, call: &Call<'_>, answer: HttpAnswer, message: &str) -> ApiError {
        match answer.redirect_to {
            Some(to)
                if (300..400).contains(&answer.status) && to != origin_of(&self.inner.base) =>
            {
                ApiError::Redirected {
                    op: call.op.clone(),
                    detail: format!(
                        "the API redirected (HTTP {}) to another origin, {to}; not followed, so that the API token goes to {} only: if the API has moved, set [api] base_url (or --api-url, POPSEL_API_URL) to its new address",
                        answer.status,
                        origin_of(&self.inner.base)
                    ),
                }
            }
            _ => classify(call, answer.status, answer.retry_after, message),
        }
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
/// when there is one, else the start of the text; at most [`SNIPPET_BYTES`] of either.
pub(super) fn server_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["message", "Message", "error", "detail", "title"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return cut(s, SNIPPET_BYTES).to_owned();
            }
        }
    }
    let text = body.trim();
    if text.is_empty() {
        return "(no message)".to_owned();
    }
    cut(text, SNIPPET_BYTES).to_owned()
}

/// Text from the server as an error may quote it: control characters (escape sequences,
/// line breaks that would forge a log line) escaped, at most [`SNIPPET_BYTES`] bytes. Bytes
/// that were not UTF-8 are U+FFFD already (the body is decoded lossily).
fn quote(text: &str) -> String {
    cut(&printable(text), SNIPPET_BYTES).to_owned()
}

/// `text` with every control character escaped (`\u{1b}`, `\n`).
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

enum BodyError {
    TooLarge,
    Http(reqwest::Error),
}

/// The body of a successful answer, if it is at most `cap` bytes: a larger Content-Length is
/// refused before reading, and reading stops as soon as more than `cap` came (an endless
/// chunked body included).
async fn read_body(resp: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let announced = resp.content_length().unwrap_or(0);
    if announced > cap as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if chunk.len() > cap - body.len() {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most the first `max` bytes of an error answer's body; whatever of it could be read.
async fn read_start(resp: &mut reqwest::Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = max - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= max {
            break;
        }
    }
    body
}

/// Redirects are followed only within the origin of the request that led to them, at most
/// [`MAX_REDIRECTS`]: one to another origin is handed back unfollowed (and becomes
/// [`ApiError::Redirected`]), so the token never leaves the configured origin, not even
/// stripped of its header as reqwest would do.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first.is_some_and(|first| same_origin(&first, attempt.url())) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
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
