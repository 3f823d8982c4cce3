use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::edge::fixtures::change;

#[tokio::test]
async fn on_change_gets_the_change_in_its_environment_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    // A hook that writes its environment to a file.
    let script = dir.path().join("hook.sh");
    std::fs::write(&script, format!("#!/bin/sh\nenv > {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    run_on_change(
        &[script.display().to_string()],
        &change(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains("POPSEL_LOCATION=chicago"));
    assert!(env.contains("POPSEL_ROLE=primary"));
    assert!(
        env.contains("POPSEL_SWANCTL_CONN=popsel-chicago-primary"),
        "{env}"
    );
    assert!(env.contains("POPSEL_OLD_FQDN=old.pops.test"));
    assert!(
        env.contains("POPSEL_NEW_FQDN=$(reboot).pops.test"),
        "passed as data, not run"
    );
    assert!(env.contains("POPSEL_NEW_IP=198.18.0.1"));
    // The one PoP label, as the metrics' `pop` label has it.
    assert!(env.contains("POPSEL_OLD_POP=US/Chicago/AWS"), "{env}");
    assert!(env.contains("POPSEL_NEW_POP=US/Dallas/AWS"), "{env}");
}

#[tokio::test]
async fn on_change_is_bounded_in_time_and_failures_are_reported() {
    let e = run_on_change(
        &["/bin/sleep".into(), "5".into()],
        &change(),
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("killed"), "{e}");
    let e = run_on_change(&["/bin/false".into()], &change(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exited with"), "{e}");
    let e = run_on_change(
        &["/nonexistent/hook".into()],
        &change(),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot start"), "{e}");
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper: dead all the same).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(status) => status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
    }
}

/// Waits up to 5 s for `pid` to die.
async fn wait_dead(pid: u32) -> bool {
    for _ in 0..100 {
        if dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A hook whose shell starts a grandchild (`sleep`) and waits for it; the grandchild's pid goes
/// to `pid_file`.
fn hook_with_a_grandchild(pid_file: &std::path::Path) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
    ]
}

async fn read_pid(pid_file: &std::path::Path) -> u32 {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(pid_file) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the hook never wrote its grandchild's pid");
}

#[tokio::test]
async fn on_change_timeout_kills_the_hooks_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let e = run_on_change(
        &hook_with_a_grandchild(&pid_file),
        &change(),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("killed"), "{e}");
    assert_gone(&pid_file, "outlived its timeout").await;
}

#[tokio::test]
async fn an_abandoned_on_change_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    let command = hook_with_a_grandchild(&pid_file);
    // The stage is abandoned (shutdown after its 5 s) while the hook runs: the future is dropped.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        run_on_change(&command, &change(), Duration::from_secs(60)),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the hook should still have been running"
    );
    assert_gone(&pid_file, "survived its abandoned hook").await;
}

/// Asserts that the grandchild whose pid is in `pid_file` is gone (killing it if not, so that
/// a failing test leaves nothing running).
async fn assert_gone(pid_file: &std::path::Path, what: &str) {
    let grandchild = read_pid(pid_file).await;
    let gone = wait_dead(grandchild).await;
    if !gone {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &grandchild.to_string()])
            .status();
    }
    assert!(gone, "the hook's grandchild {grandchild} {what}");
}
