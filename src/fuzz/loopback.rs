//! What the fuzz targets run against: HTTP servers on 127.0.0.1 (a fixed Atmos account, an API
//! that is down, and one that answers whatever the input says), the files a config may name,
//! and the rank → select path of a parsed catalogue.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::catalog::{Catalog, Pop};
use crate::config::Config;
use crate::probe::{Probe, Probes};
use crate::rank::rank;
use crate::reconcile::{ManagedTunnel, ManagedTunnels};
use crate::resolve::{Endpoint, endpoints};
use crate::select::{LocationSelection, select_location};

use super::{Call, client, runtime};

/// How a server answers a request (`METHOD PATH`): the whole HTTP response.
type Handler = dyn Fn(&str) -> Vec<u8> + Send + Sync;

/// Starts a server on 127.0.0.1 port 0; one thread per connection, one request per connection
/// (`Connection: close`), so that no answer can leak into the next.
fn serve(handler: Arc<Handler>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port can be bound");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || answer_one(stream, &*handler));
        }
    });
    addr
}

fn answer_one(mut stream: TcpStream, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.lines().next().unwrap_or_default();
    let target = line.rsplit_once(' ').map_or(line, |(t, _)| t);
    let _ = stream.write_all(&handler(target));
}

/// An HTTP response of `status` with `body`, and a `Retry-After` when given.
fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Vec<u8> {
    // 204 and 304 have no body: a client would take one as the start of the next answer.
    let body = if matches!(status, 204 | 304) {
        &[][..]
    } else {
        body
    };
    let mut out = format!(
        "HTTP/1.1 {status} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )
    .into_bytes();
    if let Some(value) = retry_after {
        out.extend_from_slice(format!("Retry-After: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The account the pipeline targets plan against: the sample catalogue, and the demo site's
/// two Chicago tunnels (`t-1`, `t-2`) beside one that popsel does not manage.
const TUNNELS: &str = r#"{"pageNumber":1,"pageSize":100,"totalPages":1,"totalRecords":3,"data":[
 {"id":"t-1","name":"Chicago IPSec1","authenticationID":"chicago-primary@branch.example","locationID":"d88fc23a-59a1-476a-a62e-a51ff3543fe7"},
 {"id":"t-2","name":"Chicago IPSec2","authenticationID":"chicago-secondary@branch.example","locationID":"d88fc23a-59a1-476a-a62e-a51ff3543fe7"},
 {"id":"t-9","name":"Someone else's","authenticationID":"other@branch.example","locationID":"d88fc23a-59a1-476a-a62e-a51ff3543fe7"}]}"#;

fn account(target: &str) -> Vec<u8> {
    let path = target.split_once(' ').map_or(target, |(_, p)| p);
    let path = path.split('?').next().unwrap_or_default();
    match (target.split(' ').next(), path) {
        (Some("GET"), "/api/v1/pops/ipsec") => response(
            200,
            None,
            include_bytes!("../../config/catalog.sample.json"),
        ),
        (Some("GET"), "/api/v1/tunnels") => response(200, None, TUNNELS.as_bytes()),
        _ => response(404, None, br#"{"message":"not found"}"#),
    }
}

/// A client of the account.
pub fn client_of_account() -> &'static crate::atmos::Client {
    static CLIENT: OnceLock<crate::atmos::Client> = OnceLock::new();
    CLIENT.get_or_init(|| client(&format!("http://{}", serve(Arc::new(account)))))
}

/// A client of an API that answers 503 to everything.
pub fn client_of_down_api() -> &'static crate::atmos::Client {
    static CLIENT: OnceLock<crate::atmos::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let down = |_: &str| response(503, None, br#"{"message":"maintenance"}"#);
        client(&format!("http://{}", serve(Arc::new(down))))
    })
}

/// The managed tunnels popsel would have after provisioning the account's two.
pub fn managed() -> ManagedTunnels {
    let mut managed = ManagedTunnels {
        version: 1,
        ..ManagedTunnels::default()
    };
    for (id, name) in [("t-1", "Chicago IPSec1"), ("t-2", "Chicago IPSec2")] {
        managed.tunnels.insert(
            id.into(),
            ManagedTunnel {
                id: id.into(),
                name: name.into(),
                location: "chicago".into(),
                psk_fingerprint: "00".repeat(32),
                psk_record_lost: None,
                missing_listings: 0,
            },
        );
    }
    managed
}

/// What [`super::client_answer`] makes its server say.
#[derive(Debug, Clone)]
pub struct Answer {
    pub call: Call,
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// See [`super::client_answer`] for the layout.
    pub fn from_bytes(data: &[u8]) -> Option<Answer> {
        let (&call, rest) = data.split_first()?;
        let (status, rest) = rest.split_first_chunk::<2>()?;
        let (header, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&[][..], rest),
        };
        // What a header value may hold: visible ASCII, space, tab and obs-text.
        let valid = |b: &u8| matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff);
        let retry_after = (!header.is_empty() && header.iter().all(valid))
            .then(|| String::from_utf8_lossy(header).into_owned())
            .filter(|v| v.bytes().all(|b| valid(&b)));
        Some(Answer {
            call: Call::ALL[usize::from(call) % Call::ALL.len()],
            status: 200 + u16::from_be_bytes(*status) % 400,
            retry_after,
            body: body.to_vec(),
        })
    }
}

/// The answer being served, and how many requests of this input it has answered: after 4 (a
/// create that lists after a lost answer, a list's next pages) the server says "no more".
static ANSWER: Mutex<Option<(Vec<u8>, u32)>> = Mutex::new(None);

fn answering(_: &str) -> Vec<u8> {
    let mut answer = ANSWER.lock().unwrap_or_else(|e| e.into_inner());
    match answer.as_mut() {
        Some((bytes, served)) if *served < 4 => {
            *served += 1;
            bytes.clone()
        }
        _ => response(200, None, br#"{"data":[]}"#),
    }
}

/// Makes `answer.call` against a server that answers `answer`.
pub fn call_answered(answer: &Answer) -> Result<(), crate::atmos::ApiError> {
    static CLIENT: OnceLock<crate::atmos::Client> = OnceLock::new();
    let client = CLIENT.get_or_init(|| client(&format!("http://{}", serve(Arc::new(answering)))));
    let bytes = response(answer.status, answer.retry_after.as_deref(), &answer.body);
    *ANSWER.lock().unwrap_or_else(|e| e.into_inner()) = Some((bytes, 0));
    runtime().block_on(answer.call.make(client))
}

/// The files a fuzzed config may name, in `base`: `psk` (mode 600) holding `psk`, `psk-open`
/// (world-readable) and `token`. False when they cannot be written.
pub fn write_config_files(base: &Path, psk: &[u8]) -> bool {
    let write = |name: &str, bytes: &[u8], mode: u32| {
        let path = base.join(name);
        std::fs::write(&path, bytes)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)))
            .is_ok()
    };
    write("psk", psk, 0o600)
        && write("psk-open", b"world-readable-psk", 0o644)
        && write("token", super::TOKEN.as_bytes(), 0o600)
}

/// Ranks `catalog` from each of `config`'s locations (with synthetic latency for a local one,
/// by distance otherwise) and selects twice, the second time against the first, as two agent
/// cycles would.
pub fn rank_and_select(config: &Config, catalog: &Catalog) {
    let pops = config.selection.filter.apply(&catalog.pops);
    let answers = HashMap::new();
    let surveyed: Vec<(Pop, Vec<Endpoint>)> = pops
        .into_iter()
        .map(|pop| {
            let e = endpoints(&pop, &answers);
            (pop, e)
        })
        .collect();
    let probes: Arc<Probes> = surveyed
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| (e.ip, synthetic_probe(e.ip))))
        .collect::<Probes>()
        .into();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for loc in &config.locations {
        let probes = loc.local.then(|| probes.clone());
        let ranking = rank(loc.site, surveyed.clone(), probes, catalog.skipped.clone());
        let settings = &config.selection;
        let none = LocationSelection::default();
        let (first, _) = select_location(&loc.name, &none, &ranking, settings, loc.local, now);
        let later = now + Duration::from_secs(30);
        let _ = select_location(&loc.name, &first, &ranking, settings, loc.local, later);
    }
}

/// A probe result that depends on the address only: some answer, some lose, some are silent.
fn synthetic_probe(ip: IpAddr) -> Probe {
    let seed: u32 = match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => v6.segments().iter().map(|&s| u32::from(s)).sum(),
    };
    let received = seed % 6;
    Probe {
        sent: 5,
        received: received.min(5),
        rtts: (0..received.min(5))
            .map(|i| Duration::from_micros(u64::from(1_000 + (seed % 97 + i * 13) * 1_000)))
            .collect(),
        error: None,
    }
}
