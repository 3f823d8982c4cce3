//! The site under test: its config, PSKs and state directory.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::process::*;
use crate::support::{self, toml_str};

pub const CHICAGO_LOCATION_ID: &str = "d88fc23a-59a1-476a-a62e-a51ff3543fe7";
pub const FRANKFURT_LOCATION_ID: &str = "5b0c7a4e-1f5e-4d4a-9d0e-0f7f2a7c1e11";

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
    ("chicago", "Chicago IPSec1"),
    ("chicago", "Chicago IPSec2"),
    ("frankfurt", "Frankfurt IPSec1"),
];
/// The tunnel a reloaded config adds.
pub const EXTRA_TUNNEL: (&str, &str) = ("frankfurt", "Frankfurt IPSec2");

/// A connector created in the emulator before the agent starts, so that
/// `popsel_connector_status` has a series.
pub const CONNECTOR: &str = "branch-connector";

pub const STAGES: [&str; 5] = ["catalog", "probe", "select", "reconcile", "status"];

/// A site's config in a temporary directory: "chicago" (local, primary and secondary) and
/// "frankfurt" (not local, primary only; a reload may add a secondary), short agent
/// intervals, metrics on a port the kernel picks, state in `state/`.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub api_url: String,
}

impl Site {
    pub fn new(api_url: &str) -> Site {
        let site = Site {
            dir: tempfile::tempdir().expect("tempdir"),
            api_url: api_url.to_owned(),
        };
        let psk_file = site.path(PSK_FILE_CHI_2);
        std::fs::write(&psk_file, format!("{PSK_CHI_2}\n")).expect("write the PSK file");
        std::fs::set_permissions(&psk_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the PSK file");
        site.write_config(false);
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("popsel.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn config_text(&self, extra_tunnel: bool) -> String {
        let mut text = format!(
            r#"[api]
base_url = {url}
timeout = "5s"

[dns]
# A closed port: the catalogue's names never reach a real resolver.
nameservers = ["127.0.0.1:9"]
timeout = "300ms"

[state]
dir = "state"

[[locations]]
name = "chicago"
location_id = "{CHICAGO_LOCATION_ID}"
latitude = 41.88
longitude = -87.63
local = true

[[locations.tunnels]]
name = "Chicago IPSec1"
role = "primary"
authentication_id = "chicago-primary@branch.example"
psk_env = "{PSK_ENV_CHI_1}"

[[locations.tunnels]]
name = "Chicago IPSec2"
role = "secondary"
authentication_id = "chicago-secondary@branch.example"
psk_file = "{PSK_FILE_CHI_2}"

[[locations]]
name = "frankfurt"
location_id = "{FRANKFURT_LOCATION_ID}"
latitude = 50.11
longitude = 8.68
local = false

[[locations.tunnels]]
name = "Frankfurt IPSec1"
role = "primary"
authentication_id = "203.0.113.10"
psk_env = "{PSK_ENV_FRA_1}"
"#,
            url = toml_str(&self.api_url),
        );
        if extra_tunnel {
            text.push_str(&format!(
                r#"
[[locations.tunnels]]
name = "{}"
role = "secondary"
authentication_id = "203.0.113.11"
psk_env = "{PSK_ENV_FRA_2}"
"#,
                EXTRA_TUNNEL.1
            ));
        }
        text.push_str(
            r#"
[agent]
catalog_interval = "2s"
probe_interval = "1s"
reconcile_interval = "1s"
status_interval = "1s"

[metrics]
listen = "127.0.0.1:0"
"#,
        );
        text
    }

    pub fn write_config(&self, extra_tunnel: bool) {
        std::fs::write(self.config_path(), self.config_text(extra_tunnel)).expect("write config");
    }

    /// `popsel run --config … --no-probe <args>`, with the token and the PSKs in its
    /// environment.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = support::popsel();
        cmd.arg("run")
            .arg("--config")
            .arg(self.config_path())
            .arg("--no-probe")
            .args(args)
            .env("POPSEL_API_TOKEN", support::TOKEN)
            .env(PSK_ENV_CHI_1, PSK_CHI_1)
            .env(PSK_ENV_FRA_1, PSK_FRA_1)
            .env(PSK_ENV_FRA_2, PSK_FRA_2)
            .stdin(Stdio::null());
        for var in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// The agent as a child process, and the base URL of its metrics server.
    pub async fn start_agent(&self, args: &[&str]) -> (AgentProc, String) {
        let agent = AgentProc::spawn(self.run_command(args));
        let base = agent.metrics_base().await;
        (agent, base)
    }
}
