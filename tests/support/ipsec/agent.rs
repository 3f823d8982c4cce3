//! `popsel run` in the lab's branch namespace, driving the branch charon over VICI: its config
//! (the demo site's Chicago, which is the lab's site), the running agent, and what the tests and
//! the failover benchmark read back (its selection, the branch charon's SAs).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use popsel::edge::vici::{ChildState, IkeSa, Vici};
use serde_json::Value;

use popsel::sim::Sim;

use super::forward::Forward;
use super::responders::Follower;
use super::{IpsecLab, netns};
use crate::support;
use crate::support::site::{CHICAGO, CHICAGO_1, CHICAGO_2, FRANKFURT_1, SiteToml};

pub const PSK_1: &str = "vici-lab-psk-one-5d1c";
pub const PSK_2: &str = "vici-lab-psk-two-93fa";
pub const PSK_FRANKFURT: &str = "vici-lab-psk-fra-41b7";
/// Where the agent's metrics listen, inside the branch namespace (the lab's own: no clash).
pub const METRICS: &str = "127.0.0.1:9469";
pub const PRIMARY_CONN: &str = "popsel-chicago-primary";
pub const SECONDARY_CONN: &str = "popsel-chicago-secondary";

/// The demo site's Chicago (the lab's site), driving the branch charon, probing as the issue's
/// failover figures are stated (every 2 s, 3 requests 200 ms apart), bound to the branch's
/// device so that the probes stay out of the tunnel.
pub fn config(api_url: &str, socket: &Path) -> SiteToml {
    // Frankfurt too: a location not measured from here, whose tunnels are another router's.
    SiteToml::demo()
        .psk_env(FRANKFURT_1, "LAB_PSK_FRA")
        .psk_env(CHICAGO_1, "LAB_PSK_1")
        .psk_env(CHICAGO_2, "LAB_PSK_2")
        .with(&format!(
            r#"
[api]
base_url = {api_url:?}
timeout = "5s"

[state]
dir = "state"

[dns]
nameservers = ["127.0.0.1:9"]
timeout = "300ms"

[probe]
count = 3
interval = "200ms"
timeout = "1s"
interface = "eth0"

[edge]
vici_socket = {socket:?}

[agent]
catalog_interval = "1h"
probe_interval = "2s"
reconcile_interval = "2s"
status_interval = "1h"

[metrics]
listen = "{METRICS}"
"#
        ))
}

/// `popsel run` in the branch namespace; stopped when dropped (SIGTERM, as a service manager
/// stops it, then SIGKILL after 5 s). Its output goes to a file, read for failure messages and
/// checked for the PSKs.
pub struct Agent {
    child: Child,
    /// The directory of its config, state (`state/`) and log (`agent.log`).
    dir: PathBuf,
    /// The branch namespace, where its metrics listen.
    ns: String,
}

impl Agent {
    /// With [`config`]: driving the branch charon over VICI, through the emulator at `api_url`.
    pub fn start(lab: &IpsecLab, api_url: &str) -> Agent {
        let dir = lab.dir().join("agent");
        std::fs::create_dir_all(&dir).expect("agent dir");
        let path = dir.join("popsel.toml");
        let text = config(api_url, &lab.branch_charon().vici_socket()).render();
        std::fs::write(&path, text).expect("write the config");
        let mut cmd = lab.branch().command(env!("CARGO_BIN_EXE_popsel"));
        cmd.args(["run", "--config"])
            .arg(&path)
            .env("POPSEL_API_TOKEN", support::TOKEN)
            .env("LAB_PSK_1", PSK_1)
            .env("LAB_PSK_2", PSK_2)
            .env("LAB_PSK_FRA", PSK_FRANKFURT)
            .env_remove("POPSEL_API_URL")
            .stdin(Stdio::null());
        Agent::spawn(lab, cmd, &dir)
    }

    /// Starts `cmd`, a `popsel run` in the branch namespace (`ip netns exec` execs popsel, so
    /// the child is the agent) whose config sits in `dir` with its state in `dir/state`; its
    /// output goes to `dir/agent.log`.
    pub fn spawn(lab: &IpsecLab, mut cmd: Command, dir: &Path) -> Agent {
        let log = std::fs::File::create(dir.join("agent.log")).expect("agent log");
        cmd.stdout(log.try_clone().expect("log")).stderr(log);
        let child = cmd.spawn().expect("start popsel run in the branch");
        Agent {
            child,
            dir: dir.to_owned(),
            ns: lab.branch().netns().to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// How it ended, if it has.
    pub fn ended(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// `GET /metrics` from its `[metrics] listen` address `at`, asked from inside the branch
    /// namespace, or why not.
    pub fn metrics(&self, at: SocketAddrV4) -> Result<String, String> {
        let ns = self.ns.clone();
        std::thread::spawn(move || -> Result<String, String> {
            netns::enter(&ns)?;
            let mut s = TcpStream::connect_timeout(&at.into(), Duration::from_secs(1))
                .map_err(|e| format!("connect to {at}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .map_err(|e| e.to_string())?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut text = String::new();
            s.read_to_string(&mut text).map_err(|e| e.to_string())?;
            Ok(text)
        })
        .join()
        .map_err(|_| "the metrics thread panicked".to_owned())?
    }

    /// The selection popsel last persisted: (primary IP, secondary IP).
    pub fn selection(&self) -> Option<(IpAddr, Option<IpAddr>)> {
        let text = std::fs::read_to_string(self.dir.join("state/selection.json")).ok()?;
        let doc: Value = serde_json::from_str(&text).ok()?;
        let role = |r: &str| -> Option<IpAddr> {
            doc["locations"][CHICAGO][r]["choice"]["ip"]
                .as_str()?
                .parse()
                .ok()
        };
        Some((role("primary")?, role("secondary")))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ended().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- popsel run's log\n{}", self.log());
        }
    }
}

/// The lab PoP holding `ip`.
pub fn pop_of(lab: &IpsecLab, ip: IpAddr) -> usize {
    lab.pops()
        .iter()
        .position(|p| p.addresses().iter().any(|a| IpAddr::V4(*a) == ip))
        .unwrap_or_else(|| panic!("{ip} is no lab PoP's"))
}

/// The branch charon's SAs, through popsel's own VICI client.
pub async fn branch_sas(lab: &IpsecLab) -> Vec<IkeSa> {
    let mut vici = Vici::connect(&lab.branch_charon().vici_socket(), Duration::from_secs(5))
        .await
        .expect("connect to the branch charon");
    vici.list_sas(None).await.expect("list-sas")
}

/// Whether `conn` has an IKE_SA established to `ip`, and whether a CHILD_SA is installed in it.
pub fn sa_at(sas: &[IkeSa], conn: &str, ip: IpAddr) -> (bool, bool) {
    let ike = sas
        .iter()
        .find(|sa| sa.name == conn && sa.is_established() && sa.remote_host == Some(ip));
    (
        ike.is_some(),
        ike.is_some_and(|sa| sa.installed_child(conn).is_some()),
    )
}

/// Waits until popsel has a primary and a secondary, the primary's PoP answers through the
/// tunnel, and the secondary's IKE_SA stands without a CHILD_SA. Returns (primary, secondary).
pub async fn settled(lab: &IpsecLab, agent: &Agent, within: Duration) -> (IpAddr, IpAddr) {
    let start = Instant::now();
    loop {
        if let Some((primary, Some(secondary))) = agent.selection() {
            let sas = branch_sas(lab).await;
            let carriers: Vec<&IkeSa> = sas
                .iter()
                .filter(|sa| sa.children.iter().any(|c| c.state == ChildState::Installed))
                .collect();
            let standby = [PRIMARY_CONN, SECONDARY_CONN]
                .into_iter()
                .any(|c| sa_at(&sas, c, secondary) == (true, false));
            if carriers.len() == 1
                && carriers[0].remote_host == Some(primary)
                && standby
                && lab.who_answers() == Some(pop_of(lab, primary))
            {
                return (primary, secondary);
            }
        }
        assert!(
            start.elapsed() < within,
            "not settled within {within:?}: selection {:?}\n{}\n--- log\n{}",
            agent.selection(),
            lab.state_for(0),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A lab whose PoPs follow the emulator, the emulator relayed into the branch, and `popsel
/// run` there driving the branch charon. The fields drop in order: the agent first, the lab
/// (its namespaces) last.
pub struct AgentLab {
    pub agent: Agent,
    _relay: Forward,
    _follower: Follower,
    pub sim: Sim,
    pub lab: IpsecLab,
}

impl AgentLab {
    pub async fn start(lab: IpsecLab) -> Result<AgentLab, String> {
        let sim = lab.start_sim().await;
        let follower = lab.follow(&sim);
        let relay = lab.sim_in_branch(&sim)?;
        let agent = Agent::start(&lab, &relay.url());
        Ok(AgentLab {
            agent,
            _relay: relay,
            _follower: follower,
            sim,
            lab,
        })
    }
}
