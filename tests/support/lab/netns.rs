//! A network namespace of the lab's own, `popsel-lab-<pid>-<n>`, created with `ip netns add`
//! (loopback up) and deleted with `ip netns del` when the guard is dropped, also when a test
//! panics. Namespaces left by a lab process that was killed (its pid no longer runs) are
//! deleted when the next lab starts.

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

const PREFIX: &str = "popsel-lab-";
const NETNS_DIR: &str = "/run/netns";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS`, an error naming the command when it fails.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("run `ip {}`: {e}", args.join(" ")))?;
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

/// The guard of one namespace.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates a fresh namespace with its loopback up.
    pub fn create() -> Result<NetNs, String> {
        sweep_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        path(&self.name)
    }

    /// `ip netns exec <ns> <program>`: a command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("lab: could not delete network namespace {}: {e}", self.name);
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

/// Deletes lab namespaces whose creating process is gone (killed before its guards ran).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

/// Whether process `pid` runs (a zombie, killed but not yet reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|state| !matches!(state.trim().chars().next(), Some('Z' | 'X')))
    })
}
