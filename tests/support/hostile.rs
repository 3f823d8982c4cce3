//! A hostile HTTP/1.1 server on loopback: every answer is what the test chooses, including the
//! ones no honest server gives: any status and headers (a `Retry-After` of 1e20, a redirect to
//! another origin), a body that is huge, endless (chunked forever) or trickles in a byte at a
//! time, or no answer at all. It records each request with its headers, so a test can tell
//! whether the token was sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `pageNumber` query parameter (1 when absent).
    pub fn page_number(&self) -> u64 {
        self.target
            .split("pageNumber=")
            .nth(1)
            .and_then(|n| n.split('&').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// How the body is sent.
#[derive(Debug, Clone)]
pub enum Body {
    /// These bytes with a Content-Length.
    Bytes(Vec<u8>),
    /// A Content-Length of `len` (whatever the truth), then `len` bytes of `fill`, or as many
    /// as the client takes.
    Large { len: u64, fill: u8 },
    /// Chunked, `chunk` repeated until the client goes away.
    Endless { chunk: Vec<u8> },
    /// `bytes` announced with their Content-Length, sent one byte every `every`.
    Trickle { bytes: Vec<u8>, every: Duration },
}

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Body,
    },
    /// Read the request, then say nothing and keep the connection open.
    Silence,
    /// Read the request, then close the connection without a word.
    Hangup,
}

impl Reply {
    pub fn new(status: u16, body: Body) -> Self {
        Reply::Answer {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, Body::Bytes(value.to_string().into_bytes()))
            .header("Content-Type", "application/json")
    }

    /// An answer with these exact body bytes (not necessarily UTF-8).
    pub fn bytes(status: u16, bytes: impl Into<Vec<u8>>) -> Self {
        Self::new(status, Body::Bytes(bytes.into()))
    }

    /// A redirect to `location`, with an empty body.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::bytes(status, Vec::new()).header("Location", location)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// The requests a hostile server has received, oldest first.
pub type Log = Arc<Mutex<Vec<Request>>>;

/// What a hostile server answers request number `n` (from 0).
type Answer = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A running hostile server; it stops with the test's runtime.
pub struct Hostile {
    pub url: String,
    pub log: Log,
}

impl Hostile {
    /// A server on 127.0.0.1 port 0 that answers request number `n` (from 0) with
    /// `answer(request, n)`, one request per connection.
    pub async fn start(answer: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile server");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let log = Log::default();
        let answer = Arc::new(answer);
        let server_log = log.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (answer, log) = (answer.clone(), server_log.clone());
                tokio::spawn(serve(sock, answer, log));
            }
        });
        Hostile { url, log }
    }

    /// A server giving every request the same reply.
    pub async fn always(reply: Reply) -> Self {
        Self::start(move |_, _| reply.clone()).await
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// `METHOD target` of every request, in order.
    pub fn targets(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }
}

async fn serve(mut sock: TcpStream, answer: Arc<Answer>, log: Log) {
    let Some(request) = read_request(&mut sock).await else {
        return;
    };
    let reply = {
        let mut log = log.lock().unwrap();
        let reply = answer(&request, log.len());
        log.push(request);
        reply
    };
    match reply {
        Reply::Silence => {
            // Hold the connection open, saying nothing, until the client gives up.
            let mut sink = [0u8; 1024];
            while let Ok(n) = sock.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
        Reply::Hangup => {}
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let _ = write_answer(&mut sock, status, &headers, body).await;
            let _ = sock.shutdown().await;
        }
    }
}

async fn write_answer(
    sock: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: Body,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Hostile\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &body {
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Large { len, .. } => head.push_str(&format!("Content-Length: {len}\r\n")),
        Body::Endless { .. } => head.push_str("Transfer-Encoding: chunked\r\n"),
        Body::Trickle { bytes, .. } => {
            head.push_str(&format!("Content-Length: {}\r\n", bytes.len()))
        }
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).await?;
    match body {
        Body::Bytes(b) => sock.write_all(&b).await,
        Body::Large { len, fill } => {
            let block = vec![fill; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                sock.write_all(&block[..n]).await?;
                left -= n as u64;
            }
            Ok(())
        }
        Body::Endless { chunk } => {
            let frame = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            loop {
                sock.write_all(&frame).await?;
            }
        }
        Body::Trickle { bytes, every } => {
            for b in bytes {
                sock.write_all(&[b]).await?;
                sock.flush().await?;
                tokio::time::sleep(every).await;
            }
            Ok(())
        }
    }
}

/// Reads one request: the head up to the blank line, then Content-Length bytes of body.
async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let mut lines = head.split("\r\n");
            let mut words = lines.next().unwrap_or_default().split_whitespace();
            let (method, target) = (words.next()?.to_owned(), words.next()?.to_owned());
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let body_len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= i + 4 + body_len {
                return Some(Request {
                    method,
                    target,
                    headers,
                    body: buf[i + 4..i + 4 + body_len].to_vec(),
                });
            }
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A catalogue document with one valid PoP, padded with `padding` spaces to make it large.
pub fn catalog_json(padding: usize) -> Vec<u8> {
    let doc = serde_json::json!({ "ipSecLocations": [{
        "country": "US", "locations": [{
            "city": "Chicago, Illinois", "latitude": "41.88", "longitude": "-87.63",
            "provider": "GCP",
            "fqdn": [{ "name": "ipsec-us-chi-gcp-1.pops.popsel.test", "ip": ["198.18.3.1"] }]
        }]
    }]});
    let mut bytes = doc.to_string().into_bytes();
    bytes.extend(std::iter::repeat_n(b' ', padding));
    bytes
}

/// A tunnel object as the API sends it.
pub fn tunnel_json(id: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "name": format!("tunnel {id}"),
        "authenticationID": format!("{id}@branch.example"),
        "locationID": "d88fc23a-59a1-476a-a62e-a51ff3543fe7",
    })
}

/// A page of a tunnel list.
pub fn tunnel_page(
    page: u64,
    page_size: u64,
    total_pages: u64,
    total_records: u64,
    ids: &[String],
) -> Reply {
    Reply::json(
        200,
        &serde_json::json!({
            "pageNumber": page, "pageSize": page_size, "totalPages": total_pages,
            "totalRecords": total_records,
            "data": ids.iter().map(|id| tunnel_json(id)).collect::<Vec<_>>(),
        }),
    )
}
