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
