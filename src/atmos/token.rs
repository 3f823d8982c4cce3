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
#[path = "token_tests.rs"]
mod tests;
