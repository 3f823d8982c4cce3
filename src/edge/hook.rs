//! `on_change`: the operator's program, run when a selection changes. No shell is involved,
//! so nothing in a PoP name or FQDN from the API can be interpreted; the environment is clean
//! but for the change (popsel's own holds the API token and the PSK variables); the run is
//! bounded in time.

use std::time::Duration;

use crate::select::Change;

/// The environment `on_change` gets for a change.
pub fn change_env(change: &Change) -> Vec<(String, String)> {
    let mut env = vec![
        ("POPSEL_LOCATION".to_owned(), change.location.clone()),
        ("POPSEL_ROLE".to_owned(), change.role.to_string()),
        ("POPSEL_REASON".to_owned(), change.reason.clone()),
        // The swanctl connection of the role, as `swanctl` renders its name.
        (
            "POPSEL_SWANCTL_CONN".to_owned(),
            super::swanctl::connection_name(&change.location, change.role),
        ),
    ];
    for (prefix, choice) in [("OLD", &change.old), ("NEW", &change.new)] {
        let (pop, fqdn, ip) = match choice {
            Some(c) => (c.pop.to_string(), c.fqdn.clone(), c.ip.to_string()),
            None => Default::default(),
        };
        env.push((format!("POPSEL_{prefix}_POP"), pop));
        env.push((format!("POPSEL_{prefix}_FQDN"), fqdn));
        env.push((format!("POPSEL_{prefix}_IP"), ip));
    }
    env
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("on_change {program}: cannot start it: {detail}")]
    Start { program: String, detail: String },
    #[error("on_change {program}: still running after {:.0}s; killed", .timeout.as_secs_f64())]
    Timeout { program: String, timeout: Duration },
    #[error("on_change {program}: exited with {status}")]
    Failed { program: String, status: String },
}

/// Runs `command` (program and arguments) for `change`, killing it after `timeout`.
///
/// The hook runs in a process group of its own, and a timeout kills the whole group: a hook is
/// often a shell script whose real work (`swanctl --load-all`, `ipsec reload`) is a grandchild,
/// which killing the shell alone would leave running. The group is also killed when the run is
/// abandoned (its future dropped: the agent shutting down). A hook that exits on its own keeps
/// whatever it left behind on purpose.
pub async fn run_on_change(
    command: &[String],
    change: &Change,
    timeout: Duration,
) -> Result<(), HookError> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    // A clean environment: popsel's own holds the API token and the PSK variables.
    let mut hook = tokio::process::Command::new(program);
    hook.args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .envs(std::env::var_os("LANG").map(|v| ("LANG", v)))
        .envs(change_env(change))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    #[cfg(unix)]
    hook.process_group(0);
    let child = hook.spawn().map_err(|e| HookError::Start {
        program: program.clone(),
        detail: e.to_string(),
    })?;
    let mut run = Running::new(child);
    match tokio::time::timeout(timeout, run.child.wait()).await {
        Err(_) => {
            run.kill_group();
            let _ = run.child.wait().await;
            Err(HookError::Timeout {
                program: program.clone(),
                timeout,
            })
        }
        Ok(result) => {
            run.exited();
            match result {
                Err(e) => Err(HookError::Failed {
                    program: program.clone(),
                    status: e.to_string(),
                }),
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(HookError::Failed {
                    program: program.clone(),
                    status: status.to_string(),
                }),
            }
        }
    }
}

/// A running hook and its process group (the hook's pid: it leads a group of its own). Until
/// the hook has exited, dropping this kills the whole group.
struct Running {
    child: tokio::process::Child,
    /// The group to kill on drop; none once the hook has exited on its own (the id may then
    /// be reused by another group) or after the group was killed.
    group: Option<u32>,
}

impl Running {
    fn new(child: tokio::process::Child) -> Self {
        let group = child.id();
        Self { child, group }
    }

    /// SIGKILL to every process of the group. Sent while the leader is not yet reaped, so that
    /// the group id still names this group and nothing else.
    fn kill_group(&mut self) {
        if let Some(group) = self.group.take() {
            kill_group(group);
        }
    }

    fn exited(&mut self) {
        self.group = None;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_group();
    }
}

#[cfg(unix)]
fn kill_group(group: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    // 0 would be popsel's own group; a hook's pid is never 0 or 1.
    let Some(id) = i32::try_from(group).ok().filter(|id| *id > 1) else {
        return;
    };
    // ESRCH: every process of the group is gone already.
    let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
}

#[cfg(not(unix))]
fn kill_group(_group: u32) {}

#[cfg(test)]
#[path = "hook_tests.rs"]
mod tests;
