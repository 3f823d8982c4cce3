use super::*;

fn call() -> Call<'static> {
    Call::new(
        "get tunnel t1".into(),
        "tunnel t1".into(),
        Method::GET,
        vec!["api", "v1", "tunnels", "t1"],
    )
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
    assert_eq!(
        endpoint_template(&["api", "v1", "tunnels", "6ee0", "status"]),
        "/api/v1/tunnels/{id}/status"
    );
    assert_eq!(
        endpoint_template(&["api", "v1", "tunnels"]),
        "/api/v1/tunnels"
    );
    assert_eq!(
        endpoint_template(&["api", "v1", "pops", "ipsec"]),
        "/api/v1/pops/ipsec"
    );
}

#[test]
fn server_message_quotes_at_most_200_bytes() {
    let long = "é".repeat(300);
    let m = server_message(&long);
    assert!(m.len() <= 200 && !m.is_empty());
    assert_eq!(server_message("  "), "(no message)");
}
