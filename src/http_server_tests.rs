use std::sync::Arc;

use axum::body::Bytes;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::*;

/// Small limits, so that the tests see them at work in well under a second.
const SMALL: Limits = Limits {
    max_connections: 4,
    header_read_timeout: Duration::from_millis(300),
    max_header_bytes: 8192,
    max_body_bytes: 1024,
};

/// `/` answers "hello"; `/echo` answers the length of the body it read; `/slow` waits for
/// `release` before answering.
fn app(release: Arc<Notify>) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(move || async move {
                release.notified().await;
                "slow"
            }),
        )
}

struct Server {
    addr: SocketAddr,
    release: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app(release.clone()), limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        release,
        stop: Some(stop),
        task,
    }
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// A connection that sent the start of a request head and nothing more.
async fn half_open(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: te").await.unwrap();
    s
}

/// Reads one response with a Content-Length body; its status line and body.
async fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head.lines().next().unwrap_or("").to_owned();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, body);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the server closed `s` (EOF or reset) within `within`; whatever it sent before
/// (a 408, say) is skipped.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_closes_the_connection() {
    let server = start(SMALL).await;
    let mut slow = half_open(server.addr).await;
    let started = std::time::Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(3)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before its header-read timeout: {:?}",
        started.elapsed()
    );
    // A connection that sends nothing at all is closed the same way.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = start(SMALL).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(get_request("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.1, "hello");
    // Kept alive for a prompt next request…
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(get_request("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.1, "hello");
    // …and closed once idle for the timeout.
    assert!(closed_within(&mut s, Duration::from_secs(3)).await);
}

#[tokio::test]
async fn at_the_cap_the_oldest_idle_connection_makes_room_and_a_request_is_served() {
    // A long header-read timeout: only the cap closes connections here.
    let server = start(Limits {
        header_read_timeout: Duration::from_secs(30),
        ..SMALL
    })
    .await;
    // The oldest connection has a request under way: it is not the one closed.
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(get_request("/slow").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(half_open(server.addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The cap (4) is reached: a fifth connection is served at once…
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(get_request("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.1, "hello");
    assert!(started.elapsed() < Duration::from_millis(250));
    // …the oldest idle one was closed for it, the others and the busy one were not.
    assert!(closed_within(&mut idle[0], Duration::from_millis(100)).await);
    assert!(!closed_within(&mut idle[1], Duration::from_millis(50)).await);
    server.release.notify_one();
    let (status, body) = read_response(&mut busy).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "slow");
}

#[tokio::test]
async fn a_flood_of_connections_stays_at_the_cap_and_a_request_still_gets_through() {
    let limits = Limits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(30),
        ..SMALL
    };
    let server = start(limits).await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(half_open(server.addr).await);
    }
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(get_request("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut s).await.1, "hello");
    // Every connection but the last few of the flood was closed to make room.
    let mut still_open = 0;
    for c in &mut flood {
        if !closed_within(c, Duration::from_millis(5)).await {
            still_open += 1;
        }
    }
    assert!(still_open < 16, "{still_open} flood connections still open");
}

#[tokio::test]
async fn oversized_requests_are_refused() {
    let server = start(SMALL).await;
    // A declared body over the limit: 413 before any of it is read.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut s).await.0.contains("413"));
    // A chunked body that grows over the limit: 413 when the read reaches it.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let chunk = "x".repeat(1000);
    let body = format!("3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n");
    s.write_all(
        format!("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert!(read_response(&mut s).await.0.contains("413"));
    // A body within the limit is read whole.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.1, "5");
    // A head over the limit: 431, and closed.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let big = "a".repeat(20_000);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut s).await.0.contains("431"));
}

#[tokio::test]
async fn shutdown_finishes_the_request_under_way_and_returns() {
    let mut server = start(SMALL).await;
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    busy.write_all(get_request("/slow").as_bytes())
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(get_request("/").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut idle).await.1, "hello");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = server.stop.take().unwrap().send(());
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
    server.release.notify_one();
    assert_eq!(read_response(&mut busy).await.1, "slow");
    tokio::time::timeout(Duration::from_secs(2), &mut server.task)
        .await
        .expect("serve returns once the request is done")
        .unwrap();
}
