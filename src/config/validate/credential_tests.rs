use super::*;

/// An environment with `$CREDENTIALS_DIRECTORY` at `dir`, when given.
fn env_with(dir: Option<&Path>) -> impl Fn(&str) -> Option<String> {
    let dir = dir.map(|d| d.display().to_string());
    move |k: &str| (k == DIRECTORY_VAR).then(|| dir.clone()).flatten()
}

#[test]
fn a_credential_is_the_file_of_that_name_in_the_credentials_directory() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("popsel_api-token"), "t").unwrap();
    let path = secret_path(
        Path::new("credential:popsel_api-token"),
        Path::new("/etc/popsel"),
        &env_with(Some(creds.path())),
    )
    .unwrap();
    assert_eq!(path, creds.path().join("popsel_api-token"));
}

#[test]
fn paths_keep_their_meaning_whether_or_not_credentials_are_there() {
    let creds = tempfile::tempdir().unwrap();
    // A credential of the same name as a relative path: the path still means the file next
    // to the config.
    std::fs::write(creds.path().join("chicago.psk"), "x").unwrap();
    for env in [env_with(Some(creds.path())), env_with(None)] {
        let base = Path::new("/etc/popsel");
        for (written, means) in [
            ("chicago.psk", "/etc/popsel/chicago.psk"),
            ("psk/chicago.psk", "/etc/popsel/psk/chicago.psk"),
            ("/srv/chicago.psk", "/srv/chicago.psk"),
            ("credentials:x", "/etc/popsel/credentials:x"),
        ] {
            assert_eq!(
                secret_path(Path::new(written), base, &env).unwrap(),
                Path::new(means)
            );
        }
    }
}

#[test]
fn a_credential_without_its_directory_says_how_to_load_it() {
    let e = secret_path(
        Path::new("credential:popsel_api-token"),
        Path::new("."),
        &env_with(None),
    )
    .unwrap_err();
    for part in [
        "\"popsel_api-token\"",
        "$CREDENTIALS_DIRECTORY is not set",
        "LoadCredential=",
    ] {
        assert!(e.contains(part), "{e}");
    }
    // Set but empty, as `Environment=CREDENTIALS_DIRECTORY=` would: the same.
    let empty = |k: &str| (k == DIRECTORY_VAR).then(String::new);
    let e = secret_path(Path::new("credential:x"), Path::new("."), &empty).unwrap_err();
    assert!(e.contains("is not set"), "{e}");
}

#[test]
fn a_credential_the_unit_does_not_load_is_named_with_the_directory() {
    let creds = tempfile::tempdir().unwrap();
    let e = secret_path(
        Path::new("credential:popsel_chicago-1.psk"),
        Path::new("."),
        &env_with(Some(creds.path())),
    )
    .unwrap_err();
    for part in [
        "\"popsel_chicago-1.psk\"",
        &creds.path().display().to_string(),
        "LoadCredential=",
    ] {
        assert!(e.contains(part), "{e}");
    }
}

#[test]
fn a_name_that_would_leave_the_directory_is_refused() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("x"), "x").unwrap();
    let inner = creds.path().join("sub");
    std::fs::create_dir(&inner).unwrap();
    for bad in ["", ".", "..", "../x", "sub/../../x", "/etc/shadow", "a\0b"] {
        let e = secret_path(
            Path::new(&format!("credential:{bad}")),
            Path::new("."),
            &env_with(Some(&inner)),
        )
        .unwrap_err();
        assert!(e.contains("is not a credential name"), "{bad:?}: {e}");
    }
}
