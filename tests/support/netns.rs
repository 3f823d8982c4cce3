//! A network namespace of a test lab's own, `<prefix><pid>-<rest>`, created with
//! `ip netns add` (loopback up) and deleted with `ip netns del` when the guard is dropped, also
//! when a test panics. The pid in the name keeps labs of parallel test processes apart and lets
//! a later lab find what a killed one left: [`sweep_stale`] kills the processes still running in
//! such a namespace (which would keep it alive) and deletes it.
//!
//! Shared by the IPsec lab (`support::ipsec::netns`, prefix `popsel-ipsec-`) and the latency
//! lab's test side (`tests/support/lab.rs`, prefix `popsel-lab-`; `examples/lab.rs` includes
//! this file and `bounded.rs` with `#[path]`). `popsel demo`'s lab needs none of this: its
//! namespace has no name (`src/lab.rs`).

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use super::bounded::run_within;

const NETNS_DIR: &str = "/run/netns";
/// `ip` answers in milliseconds; this only bounds a hung one.
const IP_LIMIT: Duration = Duration::from_secs(10);

/// Runs `ip ARGS` (bounded); an error names the command and quotes what it said.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_within(cmd, IP_LIMIT)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The guard of one namespace; deletes it on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `<prefix><pid>-<rest>` with its loopback up.
    pub fn create(prefix: &str, rest: &str) -> Result<NetNs, String> {
        let name = format!("{prefix}{}-{rest}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        path(&self.name)
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `ip netns exec <ns> <program>`: a command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `argv` inside the namespace to its end (killed after `limit`), output captured.
    pub fn exec(&self, argv: &[&str], limit: Duration) -> Result<Output, String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| "exec: an empty command".to_owned())?;
        let mut cmd = self.command(program);
        cmd.args(args).stdin(Stdio::null());
        run_within(cmd, limit)
    }

    /// Moves the calling thread (only it) into this namespace: sockets it creates from then
    /// on live here. For threads of the lab's own, which end with the work they were made for.
    pub fn enter(&self) -> Result<(), String> {
        enter(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete network namespace {}: {e}", self.name);
        }
    }
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Moves the calling thread (only it) into namespace `name`: sockets and devices it creates
/// from then on live there.
pub fn enter(name: &str) -> Result<(), String> {
    let file = File::open(path(name)).map_err(|e| format!("open {}: {e}", path(name).display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns into {name}: {e}"))
}

/// Names of the namespaces starting with `prefix` that exist now.
pub fn existing(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Deletes the namespaces named `<prefix><pid>-...` whose creating process is gone (killed
/// before its guards ran), after killing what still runs in them: only processes a lab started
/// run there.
pub fn sweep_stale(prefix: &str) {
    for name in existing(prefix) {
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let mut list = Command::new("ip");
        list.args(["netns", "pids", &name]);
        let pids = run_within(list, IP_LIMIT)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for stale in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(stale),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = ip(&["netns", "del", &name]);
    }
}

/// Whether process `pid` runs (a zombie, killed but not yet reaped, does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| !matches!(state.trim().chars().next(), Some('Z' | 'X')))
    })
}
