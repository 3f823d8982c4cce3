//! Where the API token comes from: `POPSEL_API_TOKEN`, else a token file.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

pub const TOKEN_ENV: &str = "POPSEL_API_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no API token: set {TOKEN_ENV} or give a token file (--token-file or [api] token_file)"
    )]
    Missing,
    #[error("token file {path}: {detail}")]
    File { path: PathBuf, detail: String },
}

/// The token from `env_value` (the value of `POPSEL_API_TOKEN`, passed in so that tests need not
/// touch the process environment) or else from `file`. Surrounding white space is dropped: token
/// files usually end with a newline.
pub fn load_token(
    env_value: Option<String>,
    file: Option<&Path>,
) -> Result<SecretString, TokenError> {
    if let Some(v) = env_value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        return Ok(SecretString::from(v));
    }
    let Some(path) = file else {
        return Err(TokenError::Missing);
    };
    let file_error = |detail: String| TokenError::File {
        path: path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(file_error(
            "the file is empty; put the API token in it".into(),
        ));
    }
    warn_if_world_readable(path);
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(path = %path.display(), "the token file is world-readable; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_: &Path) {}

#[cfg(test)]
mod tests {
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
}
