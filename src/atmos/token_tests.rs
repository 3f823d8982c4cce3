use secrecy::ExposeSecret;

use super::*;

#[test]
fn env_wins_over_file_and_file_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "from-file\n").unwrap();
    let t = load_token(Some("from-env".into()), Some(&path)).unwrap();
    assert_eq!(t.expose_secret(), "from-env");
    let t = load_token(None, Some(&path)).unwrap();
    assert_eq!(t.expose_secret(), "from-file");
    let t = load_token(Some("  ".into()), Some(&path)).unwrap();
    assert_eq!(t.expose_secret(), "from-file");
}

#[test]
fn missing_and_empty_tokens_are_named() {
    assert!(matches!(load_token(None, None), Err(TokenError::Missing)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "\n").unwrap();
    let e = load_token(None, Some(&path)).unwrap_err().to_string();
    assert!(e.contains("token file") && e.contains("empty"), "{e}");
    let e = load_token(None, Some(&dir.path().join("nope")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn token_never_prints() {
    let t = load_token(Some("s3cr3t-token".into()), None).unwrap();
    assert!(!format!("{t:?}").contains("s3cr3t"));
}
