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
        "http://api.example/prefix",
        SecretString::from("t".to_owned()),
    ))
    .unwrap();
    let call = Call::on_object::<Tunnel>("get status of", Method::GET, "a/b", Some("status"));
    assert_eq!(
        client.url(&call).unwrap().as_str(),
        "http://api.example/prefix/api/v1/tunnels/a%2Fb/status"
    );
    let pops = Call::new(
        String::new(),
        String::new(),
        Method::GET,
        Target::collection(IPSEC_POPS),
    );
    assert_eq!(
        client.url(&pops).unwrap().as_str(),
        "http://api.example/prefix/api/v1/pops/ipsec"
    );
    for id in ["", ".", "..", "%2e", "%2E%2e"] {
        let call = Call::on_object::<Connector>("update", Method::POST, id, None);
        assert!(
            matches!(client.url(&call), Err(ApiError::BadId { .. })),
            "{id:?}"
        );
    }
}

#[test]
fn server_message_quotes_at_most_200_bytes() {
    let long = "é".repeat(300);
    let m = server_message(&long);
    assert!(m.len() <= 200 && !m.is_empty());
    assert_eq!(server_message("  "), "(no message)");
}
