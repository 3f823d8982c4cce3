//! Secret files handed over as systemd credentials (systemd.exec(5), `LoadCredential=`).
//!
//! A service running as a transient user (`DynamicUser=yes`) cannot read a file only root may
//! read; systemd copies such files, as the unit asks, into a directory only the service can
//! read and names it in `$CREDENTIALS_DIRECTORY`. `token_file` and `psk_file` written
//! `credential:NAME` are the file NAME there. The prefix, rather than any bare name being looked
//! up there: a relative path keeps meaning a file next to the config whatever the environment,
//! and a credential the unit does not load is an error naming it, never a file read from
//! somewhere else.

use std::path::{Path, PathBuf};

/// How a secret file is written as a credential: `credential:NAME`.
pub const PREFIX: &str = "credential:";
/// Where systemd says the service's credentials are.
pub const DIRECTORY_VAR: &str = "CREDENTIALS_DIRECTORY";

/// The file a secret file key means: `credential:NAME` in `$CREDENTIALS_DIRECTORY` (read
/// through `env`), any other path as written, relative to `base` (the config's directory).
/// The error says what is wrong and what would fix it.
pub fn secret_path(
    written: &Path,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, String> {
    let Some(name) = written.to_str().and_then(|w| w.strip_prefix(PREFIX)) else {
        return Ok(super::resolve_path(base, written));
    };
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!(
            "{PREFIX}{name:?} is not a credential name: write {PREFIX}NAME, NAME as in the \
             unit's LoadCredential=NAME:FILE (a file name: no '/')"
        ));
    }
    let Some(directory) = env(DIRECTORY_VAR).filter(|d| !d.is_empty()) else {
        return Err(format!(
            "names the systemd credential {name:?}, but ${DIRECTORY_VAR} is not set: run \
             popsel from a unit that loads it (LoadCredential=), or set {DIRECTORY_VAR} to a \
             directory holding a file {name:?}"
        ));
    };
    let path = Path::new(&directory).join(name);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "the systemd credential {name:?} is not in ${DIRECTORY_VAR} ({directory}): the unit \
             loads no credential of that name (LoadCredential=)"
        )),
        // Anything else (unreadable, not a file) is said by whoever reads it.
        _ => Ok(path),
    }
}

#[cfg(test)]
#[path = "credential_tests.rs"]
mod tests;
