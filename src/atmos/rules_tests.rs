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

#[test]
fn object_ids_are_an_allow_list() {
    for ok in [
        "6ee0bd21-4f50-454a-9f75-82f6933d54b0",
        "t1",
        "42",
        "a..b",
        ".hidden",
        "abc_DEF-1.2~x",
        &"x".repeat(MAX_OBJECT_ID_CHARS),
    ] {
        assert!(is_valid_object_id(ok), "{ok:?}");
    }
    for bad in [
        "",
        ".",
        "..",
        "...",
        ".\t",
        "\t",
        " a",
        "a ",
        "a b",
        "a\nb",
        "a\u{0}",
        "a\u{7f}",
        "%2e",
        "%2E%2e",
        "%",
        "a%20b",
        "a/b",
        "a\\b",
        "a?b",
        "a#b",
        "a;b",
        "a:b",
        "a@b",
        "a+b",
        "ａ",
        "\u{ff0e}",
        "a\u{200b}",
        "é",
        &"x".repeat(MAX_OBJECT_ID_CHARS + 1),
    ] {
        assert!(!is_valid_object_id(bad), "{bad:?}");
    }
}
