//! The one HTTP/1.1 server of popsel, for the agent's `/metrics` and for `popsel sim`, bounded
//! so that a flood of connections cannot take the process down with it.
//!
//! Without bounds, about a thousand half-open connections used up the default 1,024 file
//! descriptors, after which the agent's API calls, state writes and hook failed too. Here:
//!
//! - A request's head must arrive within [`Limits::header_read_timeout`]. hyper restarts that
//!   timer whenever a keep-alive connection goes idle, so the same bound is the idle timeout:
//!   a connection that sends nothing for that long is closed, whether it never sent a request
//!   or sent its last one long ago.
//! - At most [`Limits::max_connections`] connections are open at once, well below the
//!   descriptor limit. A connection beyond that is not refused or left waiting in the
//!   listen queue (where it would wait behind the flood): it is served, and to make room the
//!   oldest connection with no request under way is closed (the oldest of all when every one
//!   is busy). A flood of half-open or idle connections thus only ever closes its own; a
//!   scrape, which sends its request at once, gets through.
//! - A request's head is at most [`Limits::max_header_bytes`] (431 beyond), its body at most
//!   [`Limits::max_body_bytes`] (413 beyond, as soon as `Content-Length` says so, or when
//!   the body read reaches the limit).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

/// What one client may hold of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; beyond, the oldest idle one is closed.
    pub max_connections: usize,
    /// Time for a request's head to arrive, from the connection's start or from the end of
    /// the previous response: the header-read and the idle (keep-alive) timeout in one.
    pub header_read_timeout: Duration,
    /// Bytes of a request's head (request line and headers); hyper needs at least 8 KiB.
    pub max_header_bytes: usize,
    /// Bytes of a request's body.
    pub max_body_bytes: usize,
}

/// hyper's smallest read buffer, which bounds a request's head.
const MIN_HEADER_BYTES: usize = 8192;

impl Limits {
    /// `/metrics`, `/healthz`, `/readyz`: GETs from a scraper or two and a health checker.
    /// 64 connections (a sixteenth of the 1,024 descriptors the systemd unit gives); a
    /// scraper's keep-alive connection idles between scrapes and may be closed, which costs
    /// it one new connection per scrape. No request has a body.
    pub const METRICS: Limits = Limits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
        max_body_bytes: 16 * 1024,
    };

    /// `popsel sim`: a few clients with connection pools (tests run up to ~60 requests at
    /// once). Idle connections are kept 30 s, so that a client's pooled connection is rarely
    /// closed just as it is reused; bodies up to 2 MiB (a large catalogue for `PUT
    /// /_sim/catalog`, as axum allowed by default before).
    pub const SIM: Limits = Limits {
        max_connections: 256,
        header_read_timeout: Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        max_body_bytes: 2 * 1024 * 1024,
    };
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets the requests under way finish (idle connections close at once) and
/// returns. Accept errors (a peer gone, descriptors short) are logged and waited out, never
/// the end of the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .keep_alive(true);
    let addr = listener.local_addr().ok();
    let open = Connections::new(limits.max_connections, addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let (slot, evicted) = open.admit();
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            max_body_bytes: limits.max_body_bytes,
            slot,
            evicted,
            stop: stop_rx.clone(),
        };
        tasks.spawn(connection.serve(stream));
        // Let a connection closed to make room go before the next accept, so that a burst
        // of connections does not pile up descriptors of connections already closed.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// A failed accept: the peer's doing (gone before it was accepted) is nothing; anything else,
/// descriptors short above all, is logged and waited out rather than retried in a busy loop.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("cannot accept an HTTP connection ({error}); trying again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The open connections, oldest first, each with its count of requests under way and the
/// sender whose drop closes it.
struct Open {
    next_id: u64,
    connections: BTreeMap<u64, (Arc<AtomicUsize>, oneshot::Sender<()>)>,
    /// When the cap was last reported, so that a flood is logged once a minute, not per
    /// connection.
    reported: Option<Instant>,
}

#[derive(Clone)]
struct Connections {
    open: Arc<Mutex<Open>>,
    max: usize,
    addr: Option<SocketAddr>,
}

/// A poisoned lock only means a panic elsewhere mid-update; the map is still usable.
fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connections {
    fn new(max: usize, addr: Option<SocketAddr>) -> Self {
        Self {
            open: Arc::new(Mutex::new(Open {
                next_id: 0,
                connections: BTreeMap::new(),
                reported: None,
            })),
            max: max.max(1),
            addr,
        }
    }

    /// A place for a new connection, closing one to make room when all are taken; the
    /// receiver resolves when this one is closed in turn.
    fn admit(&self) -> (Slot, oneshot::Receiver<()>) {
        let mut open = lock(&self.open);
        while open.connections.len() >= self.max {
            let victim = open
                .connections
                .iter()
                .find(|(_, (in_flight, _))| in_flight.load(Ordering::Relaxed) == 0)
                .or_else(|| open.connections.iter().next())
                .map(|(id, _)| *id);
            // Dropping its sender closes it.
            victim.and_then(|id| open.connections.remove(&id));
            let now = Instant::now();
            if open
                .reported
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60))
            {
                open.reported = Some(now);
                tracing::warn!(
                    "HTTP server on {}: {} connections open, its limit; closing the oldest idle ones to serve new ones",
                    self.addr.map_or_else(|| "?".to_owned(), |a| a.to_string()),
                    self.max
                );
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (close, closed) = oneshot::channel();
        open.connections.insert(id, (in_flight.clone(), close));
        let slot = Slot {
            id,
            open: self.open.clone(),
            in_flight,
        };
        (slot, closed)
    }
}

/// A connection's place among the open ones, given back when the connection ends.
struct Slot {
    id: u64,
    open: Arc<Mutex<Open>>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.open).connections.remove(&self.id);
    }
}

/// Counts a request under way on its connection, for as long as it is alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Connection {
    http: http1::Builder,
    router: Router,
    max_body_bytes: usize,
    slot: Slot,
    evicted: oneshot::Receiver<()>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    /// Serves the connection until it ends, is closed to make room, or the server stops (then
    /// the request under way, if any, is finished first).
    async fn serve(self, stream: TcpStream) {
        let Connection {
            http,
            router,
            max_body_bytes,
            slot,
            mut evicted,
            mut stop,
        } = self;
        let _ = stream.set_nodelay(true);
        let in_flight = slot.in_flight.clone();
        let service = hyper::service::service_fn(move |request| {
            handle(
                router.clone(),
                request,
                max_body_bytes,
                InFlight::enter(in_flight.clone()),
            )
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = &mut evicted => return,
            _ = stop.wait_for(|stop| *stop) => connection.as_mut().graceful_shutdown(),
        }
        tokio::select! {
            _ = connection => {}
            _ = evicted => {}
        }
        drop(slot);
    }
}

/// One request: refused at once when its declared body is over the limit, else routed with
/// its body capped at the limit (axum's extractors answer 413 when a read reaches it).
async fn handle(
    mut router: Router,
    request: Request<Incoming>,
    max_body_bytes: usize,
    _in_flight: InFlight,
) -> Result<Response, Infallible> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return Ok((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max_body_bytes} bytes\n"),
        )
            .into_response());
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, max_body_bytes)));
    std::future::poll_fn(|cx| <Router as Service<Request<Body>>>::poll_ready(&mut router, cx))
        .await?;
    router.call(request).await
}

#[cfg(test)]
#[path = "http_server_tests.rs"]
mod tests;
