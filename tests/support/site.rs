//! A site under test: a config built from the demo site (`config/demo-site.toml`), its PSK
//! files and its state in a temporary directory, and `popsel` commands run on it.
//!
//! The fixture's constants and [`SiteToml`] are the unit tests' (`src/fixtures.rs`), included
//! here: the variations of the site are written once for both kinds of test.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[path = "../../src/fixtures.rs"]
mod fixtures;
pub use fixtures::*;

use super::{TOKEN, popsel, toml_str};

/// What an agent's config adds to the demo site: a short API timeout, a closed port as the
/// name server (the catalogue's names never reach a real resolver), short intervals, metrics
/// on a port the kernel picks, and every connector of the emulator watched.
pub const AGENT_SECTIONS: &str = r#"
[api]
timeout = "5s"

[dns]
nameservers = ["127.0.0.1:9"]
timeout = "300ms"

[agent]
catalog_interval = "2s"
probe_interval = "1s"
reconcile_interval = "1s"
status_interval = "1s"

[metrics]
listen = "127.0.0.1:0"

[connectors]
watch = ["*"]
"#;

/// The demo site talking to `api_url`, its state in `state/` next to the config.
pub fn config(api_url: &str) -> SiteToml {
    SiteToml::demo().with(&format!(
        "[api]\nbase_url = {}\n\n[state]\ndir = \"state\"\n",
        toml_str(api_url)
    ))
}

/// A site's directory, and the environment its `popsel` commands get: the test token and
/// whatever [`SiteDir::set_env`] adds (PSKs).
pub struct SiteDir {
    pub dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl SiteDir {
    pub fn new() -> SiteDir {
        SiteDir {
            dir: tempfile::tempdir().expect("tempdir"),
            env: BTreeMap::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("popsel.toml")
    }

    /// Where [`config`] puts the state.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn write_config(&self, config: &SiteToml) {
        std::fs::write(self.config_path(), config.render()).expect("write config");
    }

    /// Writes a PSK file next to the config, mode 600 as popsel requires.
    pub fn write_psk_file(&self, name: &str, psk: &str) {
        let path = self.path(name);
        std::fs::write(&path, format!("{psk}\n")).expect("write the PSK file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the PSK file");
    }

    /// An environment variable for every command from now on.
    pub fn set_env(&mut self, var: &str, value: &str) {
        self.env.insert(var.to_owned(), value.to_owned());
    }

    /// `popsel <subcommand> --config … <args>`, with the token and the site's environment,
    /// stdin not a terminal, and no proxy: the emulator is on loopback.
    pub fn command(&self, subcommand: &str, args: &[&str]) -> Command {
        let mut cmd = popsel();
        cmd.arg(subcommand)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("POPSEL_API_TOKEN", TOKEN)
            .envs(&self.env)
            .stdin(Stdio::null());
        cmd
    }
}
