use super::*;

#[test]
fn https_anywhere_and_http_to_this_machine_only() {
    for ok in [
        "https://admin-api.axissecurity.com",
        "https://198.18.0.1:8443/prefix",
        "http://127.0.0.1:9",
        "http://127.1",
        "http://localhost",
        "http://LocalHost:80",
        "http://[::1]:1",
        "http://[::ffff:127.0.0.1]",
        " http://127.0.0.1:9 ",
    ] {
        assert!(check_base_url(ok, false).is_ok(), "{ok}");
    }
    for remote in [
        "http://api.example",
        "http://198.18.0.1",
        "http://0.0.0.0",
        "http://[::]:1",
        "http://localhost.example",
        "http://127.0.0.1.nip.io",
    ] {
        assert!(
            matches!(
                check_base_url(remote, false),
                Err(BaseUrlProblem::InsecureHttp { .. })
            ),
            "{remote}"
        );
        assert!(check_base_url(remote, true).is_ok(), "{remote}");
    }
}

#[test]
fn other_schemes_and_credentials_are_refused() {
    for (url, problem) in [
        ("ftp://h", BaseUrlProblem::Scheme),
        ("mailto:x@y", BaseUrlProblem::Scheme),
        ("https://u:p@h", BaseUrlProblem::Credentials),
        ("https://u@h", BaseUrlProblem::Credentials),
        ("http://:p@127.0.0.1", BaseUrlProblem::Credentials),
    ] {
        assert_eq!(check_base_url(url, true), Err(problem), "{url}");
    }
    assert!(matches!(
        check_base_url("no url", false),
        Err(BaseUrlProblem::Unparsable(_))
    ));
}

#[test]
fn credentials_are_never_shown() {
    for (url, shown) in [
        ("https://u:secret@h/x", "https://h/x"),
        ("https://secret@h", "https://h/"),
        ("http://u:se@cret@127.0.0.1:1", "http://127.0.0.1:1/"),
        ("htp://u:secret@h", "htp://h"),
        ("http://u:secret@", "http://(credentials)@"),
        ("u:secret@h", "(credentials)@h"),
        ("https://h/plain", "https://h/plain"),
    ] {
        assert_eq!(shown_url(url), shown, "{url}");
        assert!(!shown_url(url).contains("secret"));
    }
}

#[test]
fn origins_are_scheme_host_and_port() {
    let url = |s: &str| Url::parse(s).unwrap();
    assert!(same_origin(&url("https://h/a"), &url("https://h:443/b?c")));
    assert!(!same_origin(&url("https://h/a"), &url("http://h/a")));
    assert!(!same_origin(&url("http://h:1/"), &url("http://h:2/")));
    assert!(!same_origin(
        &url("http://127.0.0.1:1/"),
        &url("http://localhost:1/")
    ));
    assert_eq!(origin_of(&url("https://u:p@h:8443/x?y")), "https://h:8443");
    assert_eq!(origin_of(&url("file:///etc/passwd")), "a file: URL");
}
