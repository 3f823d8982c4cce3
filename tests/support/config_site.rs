//! A site's config for the tests of where popsel finds its config (`--config`,
//! `POPSEL_CONFIG`, /etc/popsel/popsel.toml) and of `popsel check`: the demo site's "chicago",
//! its primary's PSK from the environment, its secondary's from a file, and `popsel` commands
//! that name the config however the test says, in an environment cleared of `POPSEL_CONFIG`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::site::{self, CHICAGO, CHICAGO_1, CHICAGO_2, SiteDir, SiteToml};
use super::{TOKEN, popsel};

pub const PSK_ENV: &str = "POPSEL_CONFIG_TEST_PSK_1";
pub const PSK_1: &str = "config-Chicago-one-4d7e21";
pub const PSK_FILE: &str = "chicago-2.psk";
pub const PSK_2: &str = "config-Chicago-two-9b03f5";

/// Where the commands that need a config look last. A test that relies on its absence checks
/// it with [`assert_no_default_config`].
pub const DEFAULT_CONFIG: &str = "/etc/popsel/popsel.toml";

/// How a command is told where the config is.
#[derive(Debug, Clone)]
pub enum Named {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `POPSEL_CONFIG=PATH`.
    Env(PathBuf),
    /// Both: `--config` with the first, `POPSEL_CONFIG` with the second.
    Both(PathBuf, PathBuf),
    /// Neither.
    Nowhere,
}

pub struct ConfigSite {
    pub files: SiteDir,
}

impl ConfigSite {
    /// The site against `api_url`, its config written as `popsel.toml`.
    pub fn new(api_url: &str) -> ConfigSite {
        ConfigSite::with(api_url, |c| c)
    }

    /// As [`ConfigSite::new`], the config edited first.
    pub fn with(api_url: &str, edit: impl FnOnce(SiteToml) -> SiteToml) -> ConfigSite {
        let files = SiteDir::new();
        files.write_psk_file(PSK_FILE, PSK_2);
        let config = site::config(api_url)
            .only(CHICAGO)
            .psk_env(CHICAGO_1, PSK_ENV)
            .psk_file(CHICAGO_2, PSK_FILE);
        files.write_config(&edit(config));
        ConfigSite { files }
    }

    pub fn config_path(&self) -> PathBuf {
        self.files.config_path()
    }

    /// `popsel <args…>` with the config named as `named`, the token and the primary's PSK in
    /// its environment, stdin not a terminal, and no proxy (the emulator is on loopback).
    pub fn command(&self, named: &Named, args: &[&str]) -> Command {
        let mut cmd = bare(named, args);
        cmd.env("POPSEL_API_TOKEN", TOKEN).env(PSK_ENV, PSK_1);
        cmd
    }
}

/// `popsel <args…>` with the config named as `named` and nothing else in its environment that
/// popsel reads (no token, no PSK, no `POPSEL_CONFIG` but the one `named` gives).
pub fn bare(named: &Named, args: &[&str]) -> Command {
    let mut cmd = popsel();
    cmd.stdin(Stdio::null());
    let (flag, env): (Option<&Path>, Option<&Path>) = match named {
        Named::Flag(p) => (Some(p), None),
        Named::Env(p) => (None, Some(p)),
        Named::Both(f, e) => (Some(f), Some(e)),
        Named::Nowhere => (None, None),
    };
    cmd.args(args);
    if let Some(path) = flag {
        cmd.arg("--config").arg(path);
    }
    if let Some(path) = env {
        cmd.env("POPSEL_CONFIG", path);
    }
    cmd
}

/// Fails, saying why, when this machine has a config at the default path: a test that checks
/// what happens without one cannot run here.
#[track_caller]
pub fn assert_no_default_config() {
    assert!(
        !Path::new(DEFAULT_CONFIG).exists(),
        "{DEFAULT_CONFIG} exists on this machine: this test checks what popsel does when no \
         config is found anywhere, and would read it. Run the tests where it does not exist \
         (a container, or move it aside)."
    );
}
