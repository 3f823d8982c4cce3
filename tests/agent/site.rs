//! The site under test: the demo site (both locations) with PSKs of its own, a reload's extra
//! tunnel, short agent intervals and metrics on a port the kernel picks.

use std::process::Command;

use crate::process::*;
use crate::support::site::{
    self, AGENT_SECTIONS, CHICAGO, CHICAGO_1, CHICAGO_2, FRANKFURT, FRANKFURT_1, SiteDir, SiteToml,
};
use crate::support::{self, toml_str};

pub const PSK_ENV_CHI_1: &str = "POPSEL_AGENT_TEST_PSK_CHI_1";
pub const PSK_CHI_1: &str = "agent-Chicago-one-9e41c07d";
/// The Chicago secondary's PSK is read from this file (mode 600) next to the config.
pub const PSK_FILE_CHI_2: &str = "chicago-2.psk";
pub const PSK_CHI_2: &str = "agent-Chicago-two-3b8d52fa";
pub const PSK_ENV_FRA_1: &str = "POPSEL_AGENT_TEST_PSK_FRA_1";
pub const PSK_FRA_1: &str = "agent-Frankfurt-one-77c0e1a4";
/// The PSK of the tunnel a reload adds.
pub const PSK_ENV_FRA_2: &str = "POPSEL_AGENT_TEST_PSK_FRA_2";
pub const PSK_FRA_2: &str = "agent-Frankfurt-two-d2f95b30";

/// What must never show anywhere: the API token and every PSK.
pub const SECRETS: [&str; 5] = [support::TOKEN, PSK_CHI_1, PSK_CHI_2, PSK_FRA_1, PSK_FRA_2];

/// The configured tunnels: (location, tunnel name).
pub const TUNNELS: [(&str, &str); 3] = [
    (CHICAGO, CHICAGO_1),
    (CHICAGO, CHICAGO_2),
    (FRANKFURT, FRANKFURT_1),
];
/// The tunnel a reloaded config adds.
pub const EXTRA_TUNNEL: (&str, &str) = (FRANKFURT, "Frankfurt IPSec2");

/// A connector created in the emulator before the agent starts, so that
/// `popsel_connector_status` has a series.
pub const CONNECTOR: &str = "branch-connector";

pub const STAGES: [&str; 5] = ["catalog", "probe", "select", "reconcile", "status"];

/// A site's config in a temporary directory: the demo site ("chicago": local, primary and
/// secondary; "frankfurt": not local, primary only, a reload may add a secondary), state in
/// `state/`.
pub struct Site {
    files: SiteDir,
    api_url: String,
}

impl Site {
    pub fn new(api_url: &str) -> Site {
        let mut files = SiteDir::new();
        files.write_psk_file(PSK_FILE_CHI_2, PSK_CHI_2);
        for (var, psk) in [
            (PSK_ENV_CHI_1, PSK_CHI_1),
            (PSK_ENV_FRA_1, PSK_FRA_1),
            (PSK_ENV_FRA_2, PSK_FRA_2),
        ] {
            files.set_env(var, psk);
        }
        let site = Site {
            files,
            api_url: api_url.to_owned(),
        };
        site.write_config(false);
        site
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.files.config_path()
    }

    pub fn state_dir(&self) -> std::path::PathBuf {
        self.files.state_dir()
    }

    /// The config, with [`EXTRA_TUNNEL`] when `extra_tunnel`.
    pub fn config(&self, extra_tunnel: bool) -> SiteToml {
        let config = site::config(&self.api_url)
            .psk_env(CHICAGO_1, PSK_ENV_CHI_1)
            .psk_file(CHICAGO_2, PSK_FILE_CHI_2)
            .psk_env(FRANKFURT_1, PSK_ENV_FRA_1)
            .with(AGENT_SECTIONS);
        if !extra_tunnel {
            return config;
        }
        config.add_tunnel(
            EXTRA_TUNNEL.0,
            &format!(
                "name = {}\nrole = \"secondary\"\nauthentication_id = \"203.0.113.11\"\n\
                 psk_env = \"{PSK_ENV_FRA_2}\"\n",
                toml_str(EXTRA_TUNNEL.1)
            ),
        )
    }

    pub fn write_config(&self, extra_tunnel: bool) {
        self.files.write_config(&self.config(extra_tunnel));
    }

    /// The config with more TOML merged in (`[edge]`, other intervals).
    pub fn write_config_with(&self, toml: &str) {
        self.files.write_config(&self.config(false).with(toml));
    }

    /// A file next to the config.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.files.path(name)
    }

    /// `popsel run --config … --no-probe <args>`, with the token and the PSKs in its
    /// environment.
    pub fn run_command(&self, args: &[&str]) -> Command {
        self.files.command("run", &[&["--no-probe"], args].concat())
    }

    /// `popsel run --config …` without `--no-probe`: the agent opens its ICMP sockets (and
    /// must be kept from pinging by its config, e.g. a `[probe] interface` this host lacks).
    pub fn run_command_probing(&self) -> Command {
        self.files.command("run", &[])
    }

    /// The agent as a child process, and the base URL of its metrics server.
    pub async fn start_agent(&self, args: &[&str]) -> (AgentProc, String) {
        let agent = AgentProc::spawn(self.run_command(args));
        let base = agent.metrics_base().await;
        (agent, base)
    }
}
