use super::*;

#[test]
fn authentication_ids() {
    for ok in [
        "site1@example.com",
        "a.b+c@corp.example",
        "203.0.113.7",
        "2001:db8::1",
    ] {
        assert!(is_valid_authentication_id(ok), "{ok}");
    }
    for bad in [
        "bob@",
        "@example.com",
        "bob",
        "bob@localhost",
        "a@@b.c",
        "a b@c.d",
        "1.2.3",
        "",
        "x@-a.b",
    ] {
        assert!(!is_valid_authentication_id(bad), "{bad}");
    }
}

#[test]
fn psk_length_counts_characters() {
    assert!(is_valid_psk("12345678"));
    assert!(!is_valid_psk("1234567"));
    assert!(is_valid_psk("ééééééééé"));
}
