//! A raw HTTP/1.1 server on loopback for what the emulator will not do on purpose: malformed
//! bodies, 204 with or without a body, a reply that depends on the requests before it.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the raw server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub body: String,
}

/// The requests a raw server has answered, oldest first.
pub type Log = Arc<Mutex<Vec<Seen>>>;

/// A server on 127.0.0.1 port 0 answering each request with the raw bytes
/// `answer(request, earlier requests)` returns, one request per connection. Returns its base
/// URL and the log of requests.
pub async fn raw_server(
    answer: impl Fn(&Seen, &[Seen]) -> String + Send + Sync + 'static,
) -> (String, Log) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Log::default();
    let answer = Arc::new(answer);
    let server_log = log.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (answer, log) = (answer.clone(), server_log.clone());
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut sock).await else {
                    return;
                };
                let reply = {
                    let mut log = log.lock().unwrap();
                    let reply = answer(&seen, &log);
                    log.push(seen);
                    reply
                };
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, log)
}

/// Reads one request: the head up to the blank line, then Content-Length bytes of body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let body_len: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= i + 4 + body_len {
                let mut words = head.split_whitespace();
                return Some(Seen {
                    method: words.next().unwrap_or_default().to_owned(),
                    target: words.next().unwrap_or_default().to_owned(),
                    body: String::from_utf8_lossy(&buf[i + 4..]).into_owned(),
                });
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A raw response with a body and `Connection: close`.
pub fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
