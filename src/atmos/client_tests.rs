use super::*;
use crate::atmos::resource::IPSEC_POPS;
use crate::atmos::{Connector, Tunnel};

fn call() -> Call<'static> {
    Call::on_object::<Tunnel>("get", Method::GET, "t1", None)
}

fn classify_body(c: &Call<'_>, status: u16, ra: Option<Duration>, body: &str) -> ApiError {
    classify(c, status, ra, &server_message(body))
}

#[test]
fn classifies_documented_codes_in_operator_words() {
    let c = call();
    let e = classify_body(&c, 400, None, r#"{"message":"PSK too short"}"#);
    assert_eq!(
        e.to_string(),
        "get tunnel t1: bad request (HTTP 400): PSK too short"
    );
    let e = classify_body(&c, 401, None, "");
    assert!(e.to_string().contains("token rejected or lacks the scope"));
    assert!(e.is_unauthorized());
    let e = classify_body(&c, 404, None, "");
    assert_eq!(
        e.to_string(),
        "get tunnel t1: tunnel t1 not found (HTTP 404)"
    );
    let e = classify_body(&c, 409, None, r#"{"error":"name in use"}"#);
    assert!(e.is_conflict() && e.to_string().contains("on tunnel t1: name in use"));
    let e = classify_body(&c, 429, Some(Duration::from_secs(2)), "");
    assert!(e.is_transient() && !e.is_ambiguous());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    let e = classify_body(&c, 503, None, "upstream down");
    assert!(e.is_transient() && e.is_ambiguous());
    assert!(e.to_string().contains("HTTP 503): upstream down"));
    let e = classify_body(&c, 418, None, "");
    assert!(!e.is_transient());
}

#[test]
fn endpoint_labels_hide_ids() {
    let label = |call: Call<'_>| call.target.template();
    let pops = Call::new(
        "get the IPsec PoP list".into(),
        "IPsec PoP list".into(),
        Method::GET,
        Target::collection(IPSEC_POPS),
    );
    assert_eq!(label(pops), "/api/v1/pops/ipsec");
    for (collection, object) in [("tunnels", "tunnel"), ("connectors", "connector")] {
        let target = |id, sub| match id {
            Some(id) => Target::object(collection, id, sub),
            None => Target::collection(collection),
        };
        let call = |target| Call::new(object.into(), object.into(), Method::GET, target);
        assert_eq!(
            label(call(target(None, None))),
            format!("/api/v1/{collection}")
        );
        assert_eq!(
            label(call(target(Some("6ee0"), None))),
            format!("/api/v1/{collection}/{{id}}")
        );
        assert_eq!(
            label(call(target(Some("6ee0"), Some("status")))),
            format!("/api/v1/{collection}/{{id}}/status")
        );
    }
    assert_eq!(
        label(Call::on_object::<Tunnel>(
            "get status of",
            Method::GET,
            "6ee0",
            Some("status")
        )),
        "/api/v1/tunnels/{id}/status"
    );
    assert_eq!(
        label(Call::on_object::<Connector>(
            "regenerate the installation command of",
            Method::POST,
            "c1",
            Some("regenerate"),
        )),
        "/api/v1/connectors/{id}/regenerate"
    );
}

#[test]
fn urls_keep_the_base_path_and_make_the_id_one_segment() {
    let client = Client::new(ClientConfig::new(
        "https://api.example/prefix",
        SecretString::from("t".to_owned()),
    ))
    .unwrap();
    let call = Call::on_object::<Tunnel>("get status of", Method::GET, "a-1.b_c~d", Some("status"));
    assert_eq!(
        client.url(&call).unwrap().as_str(),
        "https://api.example/prefix/api/v1/tunnels/a-1.b_c~d/status"
    );
    let pops = Call::new(
        String::new(),
        String::new(),
        Method::GET,
        Target::collection(IPSEC_POPS),
    );
    assert_eq!(
        client.url(&pops).unwrap().as_str(),
        "https://api.example/prefix/api/v1/pops/ipsec"
    );
    for id in [
        "", ".", "..", "%2e", "%2E%2e", ".\t", "a/b", "a?b", "a#b", "a b", "%", "..\\", "\u{0}",
    ] {
        let call = Call::on_object::<Connector>("update", Method::POST, id, None);
        assert!(
            matches!(client.url(&call), Err(ApiError::BadId { .. })),
            "{id:?}"
        );
    }
}

#[test]
fn an_id_that_is_no_id_is_quoted_in_errors() {
    let call = Call::on_object::<Tunnel>("delete", Method::DELETE, ".\t\u{1b}[2J", None);
    assert_eq!(call.op, r#"delete tunnel ".\t\u{1b}[2J""#);
    let call = Call::on_object::<Tunnel>("delete", Method::DELETE, "t1", None);
    assert_eq!(call.op, "delete tunnel t1");
}

#[test]
fn quoted_server_text_is_short_and_printable() {
    let text = format!("a\u{1b}[31mb\r\nc\u{7}{}", "é".repeat(300));
    let q = quote(&text);
    assert!(q.len() <= SNIPPET_BYTES, "{}", q.len());
    assert!(q.starts_with(r"a\u{1b}[31mb\r\nc\u{7}é"), "{q}");
    assert!(!q.chars().any(char::is_control));
    let json = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
    assert_eq!(server_message(&json).len(), SNIPPET_BYTES);
}

#[test]
fn a_client_config_never_shows_credentials_or_the_token() {
    let config = ClientConfig::new(
        "https://user:url-secret@api.example",
        SecretString::from("token-secret".to_owned()),
    );
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("url-secret") && !shown.contains("token-secret"),
        "{shown}"
    );
    let err = Client::new(config).unwrap_err().to_string();
    assert!(!err.contains("url-secret"), "{err}");
    assert!(err.contains("https://api.example/"), "{err}");
}

#[test]
fn server_message_quotes_at_most_200_bytes() {
    let long = "é".repeat(300);
    let m = server_message(&long);
    assert!(m.len() <= 200 && !m.is_empty());
    assert_eq!(server_message("  "), "(no message)");
}
