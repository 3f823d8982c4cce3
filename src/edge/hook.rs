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
pub async fn run_on_change(
    command: &[String],
    change: &Change,
    timeout: Duration,
) -> Result<(), HookError> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    // A clean environment: popsel's own holds the API token and the PSK variables.
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .envs(std::env::var_os("LANG").map(|v| ("LANG", v)))
        .envs(change_env(change))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HookError::Start {
            program: program.clone(),
            detail: e.to_string(),
        })?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Err(_) => {
            let _ = child.kill().await;
            Err(HookError::Timeout {
                program: program.clone(),
                timeout,
            })
        }
        Ok(Err(e)) => Err(HookError::Failed {
            program: program.clone(),
            status: e.to_string(),
        }),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(HookError::Failed {
            program: program.clone(),
            status: status.to_string(),
        }),
    }
}

#[cfg(test)]
#[path = "hook_tests.rs"]
mod tests;
