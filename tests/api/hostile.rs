//! The typed client and the API commands against a hostile or broken API
//! (`support::hostile`): wild `Retry-After` values, huge, endless and trickling bodies, error
//! bodies that are long or not UTF-8, lists whose pages never end, redirects to another origin,
//! credentials in the API URL, plain http to a remote host, and ids that URL handling would
//! turn into another path. Nothing of it may panic, hang, grow without bound, leak the token or
//! reach a URL other than the one asked for.

use std::time::{Duration, Instant};

use popsel::atmos::{ApiError, Client, ClientConfig, Connector, RetryPolicy, Tunnel};
use serde_json::json;

use crate::support;
use crate::support::api::client_at;
use crate::support::hostile::{Body, Hostile, Reply, catalog_json, tunnel_json, tunnel_page};
use crate::support::{assert_contains, assert_exit, show};

// ---- helpers ----

fn quick(max_attempts: u32, budget: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        max_elapsed: budget,
    }
}

fn client(server: &Hostile) -> Client {
    client_at(
        &server.url,
        100,
        Duration::from_secs(5),
        RetryPolicy::none(),
    )
}

/// `popsel --api-url <url> <args>` with the test token.
async fn popsel_at(url: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = support::popsel();
    cmd.arg("--api-url")
        .arg(url)
        .args(args)
        .env("POPSEL_API_TOKEN", support::TOKEN)
        .stdin(std::process::Stdio::null());
    let out = support::run(cmd).await;
    let all = format!("{}{}", support::stdout(&out), support::stderr(&out));
    assert!(
        !all.contains(support::TOKEN),
        "token printed:\n{}",
        show(&out)
    );
    out
}

/// A failed command: exit 1, and its one line on stderr.
#[track_caller]
fn one_error_line(o: &std::process::Output) -> String {
    assert_exit(o, 1);
    let err = support::stderr(o);
    assert_eq!(err.lines().count(), 1, "{}", show(o));
    err
}

// ---- Retry-After ----

/// Values of every size, sign and format; none of them is a reason to fail or to wait on a
/// success.
const WILD_RETRY_AFTER: &[&str] = &[
    "1e20",
    "1e400",
    "inf",
    "-inf",
    "NaN",
    "-1",
    "-0.5",
    "99999999999999999999999",
    "18446744073709551616",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "soon",
    "",
    "1.5e3",
    "0x10",
    "+5",
    "é",
];

#[tokio::test]
async fn any_retry_after_on_a_success_is_harmless() {
    for value in WILD_RETRY_AFTER {
        let server =
            Hostile::always(Reply::bytes(200, catalog_json(0)).header("Retry-After", value)).await;
        let doc = client(&server)
            .ipsec_pops()
            .await
            .unwrap_or_else(|e| panic!("Retry-After {value:?}: {e}"));
        assert_eq!(doc.ip_sec_locations.len(), 1);
    }
}

#[tokio::test]
async fn popsel_pops_survives_a_retry_after_of_1e20_on_a_200() {
    let server =
        Hostile::always(Reply::bytes(200, catalog_json(0)).header("Retry-After", "1e20")).await;
    let out = popsel_at(&server.url, &["pops"]).await;
    assert_exit(&out, 0);
    assert_contains(&support::stdout(&out), "Chicago");
}

#[tokio::test]
async fn a_retry_after_past_the_budget_ends_the_call_at_once_saying_so() {
    for value in [
        "1e20",
        "1e400",
        "inf",
        "99999999999999999999999",
        "86400",
        "61",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let server = Hostile::always(
            Reply::json(429, &json!({"message": "slow down"})).header("Retry-After", value),
        )
        .await;
        let client = client_at(
            &server.url,
            100,
            Duration::from_secs(5),
            quick(5, Duration::from_secs(3)),
        );
        let start = Instant::now();
        let err = client.get::<Tunnel>("t1").await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{value:?}: waited"
        );
        assert_eq!(server.request_count(), 1, "{value:?}");
        assert!(
            matches!(err.root(), ApiError::RateLimited { .. }),
            "{value:?}: {err:?}"
        );
        let text = err.to_string();
        assert_contains(&text, "get tunnel t1: rate limited (HTTP 429)");
        assert_contains(&text, "beyond the retry budget");
    }
}

#[tokio::test]
async fn a_retry_after_that_is_no_duration_falls_back_to_backoff() {
    for value in ["-1", "NaN", "-inf", "soon", "0x10"] {
        let server = Hostile::always(Reply::bytes(429, "").header("Retry-After", value)).await;
        let client = client_at(
            &server.url,
            100,
            Duration::from_secs(5),
            quick(3, Duration::from_secs(10)),
        );
        let err = client.get::<Tunnel>("t1").await.unwrap_err();
        assert!(
            matches!(err, ApiError::GaveUp { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(server.request_count(), 3, "{value:?}");
    }
}

#[tokio::test]
async fn popsel_pops_ends_at_once_on_a_429_asking_for_1e20_seconds() {
    let server = Hostile::always(Reply::bytes(429, "").header("Retry-After", "1e20")).await;
    let start = Instant::now();
    let out = popsel_at(&server.url, &["pops"]).await;
    let line = one_error_line(&out);
    assert!(start.elapsed() < Duration::from_secs(10), "{line}");
    assert_contains(&line, "beyond the retry budget");
    assert_eq!(server.request_count(), 1);
}

// ---- bodies: size and time ----

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    let endless = Body::Endless {
        chunk: vec![b'x'; 64 * 1024],
    };
    let server = Hostile::always(Reply::new(200, endless.clone())).await;
    let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err:?}");
    assert_contains(&err.to_string(), "max_response_bytes");
    let err = client(&server).ipsec_pops().await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err:?}");
    assert_contains(&err.to_string(), "max_catalog_bytes");
    // Also when the endless body is an error's.
    let server = Hostile::always(Reply::new(500, endless)).await;
    let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 500, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_huge_content_length_is_refused_before_the_body_is_read() {
    let server = Hostile::always(Reply::new(
        200,
        Body::Large {
            len: 1 << 40,
            fill: b' ',
        },
    ))
    .await;
    let start = Instant::now();
    let err = client(&server).ipsec_pops().await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_catalogue_may_be_larger_than_other_answers() {
    let five_mib = 5 << 20;
    let server = Hostile::always(Reply::bytes(200, catalog_json(five_mib))).await;
    let doc = client(&server)
        .ipsec_pops()
        .await
        .expect("a 5 MiB catalogue");
    assert_eq!(doc.ip_sec_locations.len(), 1);
    let mut tunnel = tunnel_json("t1").to_string().into_bytes();
    tunnel.extend(std::iter::repeat_n(b' ', five_mib));
    let server = Hostile::always(Reply::bytes(200, tunnel)).await;
    let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err:?}");
}

/// The agent reads the catalogue straight from the answer's text: what is not a catalogue, or
/// not text, is the answer's error as a document that does not decode is, and the cap holds.
#[tokio::test]
async fn the_catalogue_read_from_the_text_keeps_the_errors_and_the_cap() {
    let read = |text: &str| popsel::catalog::Catalog::from_json(text);
    let server = Hostile::always(Reply::bytes(200, catalog_json(0))).await;
    let catalog = client(&server)
        .read_ipsec_pops(read)
        .await
        .expect("a catalogue");
    assert_eq!(catalog.pops.len() + catalog.skipped.len(), 1, "{catalog:?}");
    for (body, says) in [
        (&br#"{"ipSecLocations": 7}"#[..], "invalid type"),
        (&br#"{"ipSecLocations": ["#[..], "EOF"),
        (
            &b"{\"ipSecLocations\": [\"\xff\"]}"[..],
            "not UTF-8 text (byte 21)",
        ),
    ] {
        let server = Hostile::always(Reply::bytes(200, body.to_vec())).await;
        let err = client(&server).read_ipsec_pops(read).await.unwrap_err();
        assert!(matches!(err, ApiError::InvalidBody { .. }), "{err:?}");
        assert_contains(&err.to_string(), "IPsec PoP list");
        assert_contains(&err.to_string(), says);
    }
    let server = Hostile::always(Reply::new(
        200,
        Body::Endless {
            chunk: vec![b' '; 64 * 1024],
        },
    ))
    .await;
    let err = client(&server).read_ipsec_pops(read).await.unwrap_err();
    assert_eq!(err.kind(), "too_large", "{err:?}");
}

#[tokio::test]
async fn popsel_pops_stops_reading_an_endless_body() {
    let server = Hostile::always(Reply::new(
        200,
        Body::Endless {
            chunk: vec![b' '; 64 * 1024],
        },
    ))
    .await;
    let out = popsel_at(&server.url, &["pops"]).await;
    let line = one_error_line(&out);
    assert_contains(&line, "larger than");
}

#[tokio::test]
async fn a_trickling_body_ends_within_the_timeout() {
    let server = Hostile::always(Reply::new(
        200,
        Body::Trickle {
            bytes: catalog_json(0),
            every: Duration::from_millis(50),
        },
    ))
    .await;
    let client = client_at(
        &server.url,
        100,
        Duration::from_secs(1),
        RetryPolicy::none(),
    );
    let start = Instant::now();
    let err = client.ipsec_pops().await.unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_budget() {
    let server = Hostile::always(Reply::Silence).await;
    let client = client_at(
        &server.url,
        100,
        Duration::from_millis(300),
        quick(3, Duration::from_secs(10)),
    );
    let start = Instant::now();
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert!(matches!(err.root(), ApiError::Timeout { .. }), "{err:?}");
    assert_eq!(server.request_count(), 3);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_hangs_up_is_retried_within_the_budget() {
    let server = Hostile::always(Reply::Hangup).await;
    let client = client_at(
        &server.url,
        100,
        Duration::from_secs(5),
        quick(3, Duration::from_secs(10)),
    );
    let err = client.get::<Tunnel>("t1").await.unwrap_err();
    assert!(
        matches!(err, ApiError::GaveUp { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_transport(), "{err:?}");
    assert_eq!(server.request_count(), 3);
}

#[tokio::test]
async fn error_bodies_are_quoted_short_and_safe() {
    let long_message = "A".repeat(1 << 20);
    let hostile_bytes: Vec<u8> = [
        b"bad \xff\xfe bytes \x1b[31mred\x1b[0m\r\nInjected: header\x07".as_slice(),
        "é".repeat(300).as_bytes(),
    ]
    .concat();
    let replies = [
        Reply::json(400, &json!({ "message": long_message })),
        Reply::bytes(400, long_message.clone()),
        Reply::bytes(500, hostile_bytes.clone()),
        Reply::json(
            409,
            &json!({ "message": String::from_utf8_lossy(&hostile_bytes) }),
        ),
        Reply::bytes(200, hostile_bytes.clone()),
        // serde quotes a string of the wrong type whole.
        Reply::json(200, &json!(format!("{long_message}\u{1b}[2J"))),
    ];
    for reply in replies {
        let server = Hostile::always(reply).await;
        let Err(err) = client(&server).get::<Tunnel>("t1").await else {
            panic!("an error expected");
        };
        let text = err.to_string();
        assert!(text.len() < 700, "{} bytes: {}", text.len(), &text[..700]);
        assert!(
            !text.chars().any(|c| c.is_control()),
            "control character in {text:?}"
        );
    }
}

// ---- paging ----

#[tokio::test]
async fn a_list_whose_pages_never_end_stops_with_an_error() {
    let ids = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let server = Hostile::start(move |req, _| {
        tunnel_page(req.page_number(), 3, 1_000_000_000, 3_000_000_000, &ids)
    })
    .await;
    let client = client_at(&server.url, 3, Duration::from_secs(5), RetryPolicy::none());
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert_eq!(server.request_count(), 2, "{:?}", server.targets());
    assert_eq!(err.kind(), "bad_paging", "{err:?}");
    assert_contains(&err.to_string(), "page 2");
    assert_contains(&err.to_string(), "nothing new");
}

#[tokio::test]
async fn a_page_count_beyond_what_total_records_allow_stops_with_an_error() {
    // 5 records at 3 a page make 2 pages, whatever totalPages says.
    let server = Hostile::start(|req, _| {
        let n = req.page_number();
        let ids: Vec<String> = (0..3).map(|i| format!("p{n}-{i}")).collect();
        tunnel_page(n, 3, 1_000_000, 5, &ids)
    })
    .await;
    let client = client_at(&server.url, 3, Duration::from_secs(5), RetryPolicy::none());
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert_eq!(err.kind(), "bad_paging", "{err:?}");
    assert_contains(&err.to_string(), "5 records");
    assert_eq!(server.request_count(), 2, "{:?}", server.targets());
}

#[tokio::test]
async fn an_empty_page_before_the_last_stops_with_an_error() {
    let server = Hostile::start(|req, _| {
        let n = req.page_number();
        let ids: Vec<String> = if n == 1 {
            vec!["a".into(), "b".into(), "c".into()]
        } else {
            Vec::new()
        };
        tunnel_page(n, 3, 3, 9, &ids)
    })
    .await;
    let client = client_at(&server.url, 3, Duration::from_secs(5), RetryPolicy::none());
    let err = client.list::<Tunnel>().await.unwrap_err();
    assert_eq!(err.kind(), "bad_paging", "{err:?}");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn popsel_tunnels_list_stops_on_pages_that_never_end() {
    let ids = ["a".to_owned()];
    let server = Hostile::start(move |req, _| {
        tunnel_page(req.page_number(), 100, u64::from(u32::MAX), 1 << 40, &ids)
    })
    .await;
    let out = popsel_at(&server.url, &["tunnels", "list"]).await;
    let line = one_error_line(&out);
    assert_contains(&line, "list tunnels");
    assert!(server.request_count() <= 2, "{}", server.request_count());
}

// ---- redirects: the token goes to the configured origin only ----

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere = Hostile::always(Reply::json(200, &tunnel_json("t1"))).await;
    let port = elsewhere.url.rsplit(':').next().unwrap().to_owned();
    for status in [301, 302, 303, 307, 308] {
        for target in [
            format!("{}/api/v1/tunnels/t1", elsewhere.url),
            format!("http://localhost:{port}/api/v1/tunnels/t1"),
            format!("//localhost:{port}/api/v1/tunnels/t1"),
        ] {
            let server = Hostile::always(Reply::redirect(status, &target)).await;
            let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
            let text = err.to_string();
            assert_eq!(err.kind(), "redirected", "{status} {target}: {err:?}");
            let origin = if target.starts_with(&elsewhere.url) {
                elsewhere.url.clone()
            } else {
                format!("http://localhost:{port}")
            };
            assert_contains(&text, &origin);
            assert_contains(&text, "base_url");
            assert_eq!(server.request_count(), 1);
        }
    }
    assert_eq!(elsewhere.request_count(), 0, "{:?}", elsewhere.targets());
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed() {
    for target in [
        "file:///etc/passwd",
        "data:text/plain,x",
        "ftp://127.0.0.1/x",
        "https://127.0.0.1/x",
    ] {
        let server = Hostile::always(Reply::redirect(302, target)).await;
        let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
        assert_eq!(err.kind(), "redirected", "{target}: {err:?}");
        assert_eq!(server.request_count(), 1);
    }
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_with_the_token() {
    let server = Hostile::start(|req, _| {
        if req.target == "/api/v1/tunnels/t1" {
            Reply::redirect(307, "/api/v1/tunnels/t2")
        } else {
            Reply::json(200, &tunnel_json("t2"))
        }
    })
    .await;
    let t = client(&server).get::<Tunnel>("t1").await.expect("followed");
    assert_eq!(t.id, "t2");
    let bearer = format!("Bearer {}", support::TOKEN);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some(bearer.as_str()))
    );
}

#[tokio::test]
async fn a_redirect_loop_ends() {
    let server = Hostile::always(Reply::redirect(302, "/api/v1/tunnels/t1")).await;
    let err = client(&server).get::<Tunnel>("t1").await.unwrap_err();
    assert!(server.request_count() <= 11, "{}", server.request_count());
    assert!(!err.is_transient(), "{err:?}");
}

// ---- the API URL ----

const URL_SECRET: &str = "hunter2-url-secret";

#[tokio::test]
async fn credentials_in_the_api_url_are_never_printed() {
    let urls = [
        format!("http://user:{URL_SECRET}@127.0.0.1:1"),
        format!("http://{URL_SECRET}@127.0.0.1:1"),
        format!("http://user:{URL_SECRET}@[::1]:1/prefix"),
        format!("https://user:{URL_SECRET}@admin-api.example"),
        format!("http://user:{URL_SECRET}@"),
        format!("htp://user:{URL_SECRET}@host"),
        format!("http://u:p@ss:{URL_SECRET}@127.0.0.1:1"),
        format!("http://u:{URL_SECRET}@127.0.0.1:1\\x"),
        format!("http://u:{URL_SECRET}@127.0.0.1:1/a@b"),
        format!(" http://u:{URL_SECRET}@127.0.0.1:1 "),
    ];
    for url in &urls {
        let config = ClientConfig::new(url.clone(), support::token());
        assert!(!format!("{config:?}").contains(URL_SECRET), "{config:?}");
        match Client::new(config) {
            Ok(c) => {
                assert!(!format!("{c:?}").contains(URL_SECRET), "{c:?}");
                let err = c.get::<Tunnel>("t1").await.unwrap_err();
                assert!(!format!("{err} {err:?}").contains(URL_SECRET), "{err:?}");
            }
            Err(e) => {
                assert!(!format!("{e} {e:?}").contains(URL_SECRET), "{e}");
            }
        }
        let out = popsel_at(url, &["pops"]).await;
        assert!(!show(&out).contains(URL_SECRET), "{}", show(&out));
        assert_exit(&out, 1);
    }
}

#[tokio::test]
async fn credentials_in_the_api_url_are_refused_with_what_to_do() {
    let err = Client::new(ClientConfig::new(
        format!("https://user:{URL_SECRET}@admin-api.example"),
        support::token(),
    ))
    .unwrap_err()
    .to_string();
    assert_contains(&err, "user name or password");
    assert_contains(&err, "POPSEL_API_TOKEN");
}

#[test]
fn plain_http_is_refused_for_a_host_other_than_this_machine() {
    let remote = [
        "http://198.18.0.1:9",
        "http://api.example",
        "http://10.0.0.1/prefix",
        "http://[2001:db8::1]:8080",
        "http://127.0.0.1.nip.io",
        "http://localhost.evil.example",
        "http://0.0.0.0:9",
    ];
    for url in remote {
        let err = Client::new(ClientConfig::new(url, support::token()))
            .unwrap_err()
            .to_string();
        assert_contains(&err, "allow_insecure_http");
        assert_contains(&err, "https://");
        let mut config = ClientConfig::new(url, support::token());
        config.allow_insecure_http = true;
        Client::new(config).unwrap_or_else(|e| panic!("{url} with allow_insecure_http: {e}"));
        let https = url.replacen("http://", "https://", 1);
        Client::new(ClientConfig::new(&https, support::token()))
            .unwrap_or_else(|e| panic!("{https}: {e}"));
    }
    let loopback = [
        "http://127.0.0.1:9",
        "http://127.8.9.10",
        "http://localhost:9/prefix",
        "HTTP://LOCALHOST:9",
        "http://[::1]:9",
        "http://[::ffff:127.0.0.1]:9",
    ];
    for url in loopback {
        Client::new(ClientConfig::new(url, support::token()))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn popsel_refuses_plain_http_to_a_remote_host() {
    let out = popsel_at("http://198.18.0.1:9", &["pops"]).await;
    let line = one_error_line(&out);
    assert_contains(&line, "allow_insecure_http");
}

// ---- ids ----

/// Ids that URL handling could turn into another path, or that are no Atmos id at all.
const BAD_IDS: &[&str] = &[
    "",
    ".",
    "..",
    ".\t",
    "\t..",
    "..\n",
    " ",
    "a b",
    " a",
    "a\u{0}",
    "a\u{7f}",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%2e.",
    "%252e",
    "%",
    "a%20b",
    "a/b",
    "../connectors",
    "a\\b",
    "..\\",
    "a?b",
    "?",
    "a#b",
    "#",
    "a;b",
    "ａ",
    "\u{2024}",
    "\u{ff0e}\u{ff0e}",
    "a\u{200b}",
];

#[tokio::test]
async fn ids_that_url_handling_could_change_are_refused_before_any_request() {
    let server = Hostile::always(Reply::json(200, &tunnel_json("x"))).await;
    let client = client(&server);
    for &id in BAD_IDS {
        let results = [
            client.get::<Tunnel>(id).await.map(drop),
            client.delete::<Tunnel>(id).await,
            client.status::<Tunnel>(id).await.map(drop),
            client.update_tunnel(id, &Default::default()).await,
            client.get::<Connector>(id).await.map(drop),
            client.delete::<Connector>(id).await,
            client.update_connector(id, &Default::default()).await,
            client.regenerate_connector(id).await.map(drop),
        ];
        for r in results {
            let err = r.expect_err(id);
            assert!(matches!(err, ApiError::BadId { .. }), "{id:?}: {err:?}");
            let text = err.to_string();
            assert!(
                !text.chars().any(|c| c.is_control()),
                "{id:?}: control character in {text:?}"
            );
        }
        assert_eq!(server.request_count(), 0, "{id:?}: {:?}", server.targets());
    }
}

#[tokio::test]
async fn ids_the_api_may_use_are_sent_as_they_are() {
    let server = Hostile::always(Reply::json(200, &tunnel_json("x"))).await;
    let client = client(&server);
    let ids = [
        "6ee0bd21-4f50-454a-9f75-82f6933d54b0",
        "t1",
        "42",
        "abc_DEF-1.2~x",
        "01HF8ZK3Q2N7V5W0X9Y8Z7A6B5",
        "a..b",
    ];
    for id in ids {
        client.get::<Tunnel>(id).await.expect(id);
    }
    let targets: Vec<String> = ids
        .iter()
        .map(|id| format!("GET /api/v1/tunnels/{id}"))
        .collect();
    assert_eq!(server.targets(), targets);
}

#[tokio::test]
async fn popsel_tunnels_delete_refuses_a_tab_id_without_a_request() {
    let server = Hostile::always(Reply::bytes(204, "")).await;
    for id in [".\t", "..\t", "\t", "a/b", "%2e%2e"] {
        let out = popsel_at(&server.url, &["tunnels", "delete", id]).await;
        let line = one_error_line(&out);
        assert_contains(&line, "is not an object id");
    }
    assert_eq!(server.request_count(), 0, "{:?}", server.targets());
}

// ---- probe concurrency ----

#[tokio::test]
async fn popsel_rank_bounds_its_concurrency() {
    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.sample.json");
    let rank = |concurrency: &str| {
        let mut cmd = support::popsel();
        cmd.args(["rank", "--site", "41.88,-87.63", "--no-dns", "--no-probe"])
            .args([
                "--catalog",
                catalog,
                "--top",
                "1",
                "--concurrency",
                concurrency,
            ]);
        support::run(cmd)
    };
    for too_many in ["10001", "2305843009213693952", "18446744073709551615", "0"] {
        let out = rank(too_many).await;
        assert_exit(&out, 2);
        assert_contains(&support::stderr(&out), "--concurrency");
        assert_contains(&support::stderr(&out), "1..=10000");
    }
    assert_exit(&rank("10000").await, 0);
}
