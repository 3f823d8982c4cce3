//! The resolve stage against a real DNS server on 127.0.0.1: an authoritative hickory-server
//! for `pops.test.` on UDP and TCP, queried over the wire by popsel's resolver, and a server
//! that never answers. Covers the lookup answers, the merge with the catalogue's addresses, and
//! `popsel rank` end to end with `--nameserver`.

use crate::{dns, support};

use dns::DnsServer;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use popsel::catalog::Catalog;
use popsel::resolve::dns::{DnsResolver, DnsSettings};
use popsel::resolve::{self, Answer, Endpoint, Source};
use tokio::task::JoinSet;

/// The test zone.
const ORIGIN: &str = "pops.test.";

/// Every name of the test zone with its addresses (A and AAAA). Anything else under
/// `pops.test.` is NXDOMAIN.
const ZONE: &[(&str, &[&str])] = &[
    // Both address families, for the plain lookup test.
    ("dual.pops.test.", &["198.18.0.1", "198.18.0.3", "::1"]),
    // 198.18.0.2 is also in the catalogue (both), 198.18.0.9 is not (dns only); the
    // catalogue's 198.18.0.1 for this name is not served (catalogue only).
    ("fra.pops.test.", &["198.18.0.2", "198.18.0.9"]),
    ("par.pops.test.", &["127.0.0.3"]),
];

/// Loose bound for anything that must not hang.
const HANG_GUARD: Duration = Duration::from_secs(5);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A real authoritative DNS server for [`ZONE`] on 127.0.0.1 (UDP and TCP). Serves until
/// dropped.
async fn start_dns() -> DnsServer {
    let zone = ZONE
        .iter()
        .map(|(owner, addrs)| (owner.to_string(), addrs.iter().map(|a| ip(a)).collect()))
        .collect();
    dns::start(ORIGIN, &zone)
        .await
        .expect("start the DNS server")
}

/// A "name server" on 127.0.0.1 that reads every UDP query and accepts every TCP connection
/// but never answers. Stops when dropped.
struct SilentServer {
    addr: SocketAddr,
    _tasks: JoinSet<()>,
}

async fn start_silent() -> SilentServer {
    let (udp, tcp, addr) = dns::bind_udp_and_tcp().await.expect("bind");
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut buf = [0u8; 4096];
        while udp.recv_from(&mut buf).await.is_ok() {}
    });
    tasks.spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = tcp.accept().await {
            held.push(stream);
        }
    });
    SilentServer {
        addr,
        _tasks: tasks,
    }
}

fn resolver(nameserver: SocketAddr, timeout: Duration) -> DnsResolver {
    DnsResolver::new(DnsSettings {
        nameservers: vec![nameserver],
        timeout,
        concurrency: 4,
    })
    .expect("resolver with an explicit name server")
}

async fn lookup(dns: &DnsResolver, name: &str) -> Answer {
    tokio::time::timeout(HANG_GUARD, dns.lookup(name))
        .await
        .unwrap_or_else(|_| panic!("lookup of {name} still running after {HANG_GUARD:?}"))
}

fn sorted(mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    ips.sort();
    ips
}

#[tokio::test]
async fn lookup_returns_the_zones_a_and_aaaa_records() {
    let server = start_dns().await;
    let dns = resolver(server.addr, Duration::from_secs(2));

    match lookup(&dns, "dual.pops.test").await {
        Answer::Addresses(ips) => assert_eq!(
            sorted(ips),
            sorted(vec![ip("198.18.0.1"), ip("198.18.0.3"), ip("::1")]),
            "both families, each address once"
        ),
        other => panic!("expected the zone's addresses, got {other:?}"),
    }
}

#[tokio::test]
async fn lookup_of_a_name_not_in_the_zone_is_nxdomain() {
    let server = start_dns().await;
    let dns = resolver(server.addr, Duration::from_secs(2));

    assert_eq!(lookup(&dns, "nowhere.pops.test").await, Answer::NxDomain);
}

#[tokio::test]
async fn a_server_that_never_answers_gives_failed_within_the_timeout() {
    let server = start_silent().await;
    let timeout = Duration::from_millis(300);
    let dns = resolver(server.addr, timeout);

    let started = Instant::now();
    let answer = lookup(&dns, "dual.pops.test").await;
    let took = started.elapsed();

    assert!(
        matches!(answer, Answer::Failed(_)),
        "expected Failed, got {answer:?}"
    );
    assert!(
        took < HANG_GUARD,
        "a {timeout:?} timeout took {took:?} to give up"
    );
}

/// One PoP with a name DNS extends and a name DNS does not know.
const CATALOGUE: &str = r#"{
  "ipSecLocations": [
    {
      "country": "DE",
      "locations": [
        {
          "city": "Frankfurt",
          "latitude": "50.11",
          "longitude": "8.68",
          "provider": "AWS",
          "fqdn": [
            { "name": "fra.pops.test", "ip": ["198.18.0.1", "198.18.0.2"] },
            { "name": "gone.pops.test", "ip": ["198.18.1.1"] }
          ]
        }
      ]
    },
    {
      "country": "FR",
      "locations": [
        {
          "city": "Paris",
          "latitude": "48.86",
          "longitude": "2.35",
          "provider": "GCP",
          "fqdn": [
            { "name": "par.pops.test", "ip": ["127.0.0.3"] }
          ]
        }
      ]
    }
  ]
}"#;

fn summary(endpoints: &[Endpoint]) -> Vec<(String, IpAddr, Source)> {
    endpoints
        .iter()
        .map(|e| (e.fqdn.to_string(), e.ip, e.source))
        .collect()
}

fn row(fqdn: &str, addr: &str, source: Source) -> (String, IpAddr, Source) {
    (fqdn.to_owned(), ip(addr), source)
}

#[tokio::test]
async fn lookup_all_and_endpoints_merge_dns_answers_with_the_catalogue() {
    let server = start_dns().await;
    let dns = resolver(server.addr, Duration::from_secs(2));
    let catalog = Catalog::from_json(CATALOGUE).expect("catalogue");
    assert!(catalog.skipped.is_empty(), "{:?}", catalog.skipped);
    assert_eq!(catalog.pops.len(), 2);

    let progress = popsel::progress::Progress::default();
    let answers: HashMap<String, Answer> = tokio::time::timeout(
        HANG_GUARD,
        dns.lookup_all(resolve::names(&catalog.pops), &progress),
    )
    .await
    .expect("lookup_all within the hang guard");
    // Every distinct name counted, as a progress line shows it.
    assert_eq!(progress.snapshot().names, (3, 3));

    assert_eq!(
        answers.len(),
        3,
        "one answer per distinct name: {answers:?}"
    );
    match &answers["fra.pops.test"] {
        Answer::Addresses(ips) => assert_eq!(
            sorted(ips.clone()),
            sorted(vec![ip("198.18.0.2"), ip("198.18.0.9")])
        ),
        other => panic!("fra.pops.test: expected addresses, got {other:?}"),
    }
    assert_eq!(answers["gone.pops.test"], Answer::NxDomain);
    assert_eq!(
        answers["par.pops.test"],
        Answer::Addresses(vec![ip("127.0.0.3")])
    );

    let frankfurt = &catalog.pops[0];
    assert_eq!(&*frankfurt.city, "Frankfurt");
    assert_eq!(
        summary(&resolve::endpoints(frankfurt, &answers)),
        [
            row("fra.pops.test", "198.18.0.1", Source::Catalog),
            row("fra.pops.test", "198.18.0.2", Source::Both),
            row("fra.pops.test", "198.18.0.9", Source::Dns),
            row("gone.pops.test", "198.18.1.1", Source::Catalog),
        ]
    );
    let paris = &catalog.pops[1];
    assert_eq!(
        summary(&resolve::endpoints(paris, &answers)),
        [row("par.pops.test", "127.0.0.3", Source::Both)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rank_with_a_nameserver_shows_dns_only_and_both_endpoints() {
    let server = start_dns().await;
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), CATALOGUE).expect("write catalogue");

    let mut cmd = support::popsel();
    cmd.arg("rank")
        .args(["--site", "50,8"])
        .arg("--catalog")
        .arg(file.path())
        .args(["--nameserver", &server.addr.to_string()])
        .args(["--no-probe", "--output", "json"]);
    let out = tokio::time::timeout(Duration::from_secs(30), support::run(cmd))
        .await
        .expect("popsel rank finished");
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        out.status.success(),
        "popsel rank failed: {:?}\nstderr: {stderr}",
        out.status
    );

    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\nstderr: {stderr}"));
    assert_eq!(doc["probed"], false, "{stdout}");
    let pops = doc["pops"].as_array().expect("pops array");
    let endpoints: HashMap<(String, String), String> = pops
        .iter()
        .flat_map(|p| p["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                (
                    e["fqdn"].as_str().unwrap_or_default().to_owned(),
                    e["ip"].as_str().unwrap_or_default().to_owned(),
                ),
                e["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let source = |fqdn: &str, ip: &str| {
        endpoints
            .get(&(fqdn.to_owned(), ip.to_owned()))
            .map(String::as_str)
    };

    assert_eq!(
        source("fra.pops.test", "198.18.0.9"),
        Some("dns"),
        "{stdout}"
    );
    assert_eq!(
        source("fra.pops.test", "198.18.0.2"),
        Some("both"),
        "{stdout}"
    );
    assert_eq!(
        source("fra.pops.test", "198.18.0.1"),
        Some("catalog"),
        "{stdout}"
    );
    assert_eq!(
        source("gone.pops.test", "198.18.1.1"),
        Some("catalog"),
        "{stdout}"
    );
    assert_eq!(
        source("par.pops.test", "127.0.0.3"),
        Some("both"),
        "{stdout}"
    );
    assert_eq!(endpoints.len(), 5, "no other endpoint: {stdout}");
}
