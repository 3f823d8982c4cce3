//! One writer: the agent and `popsel apply` take an exclusive lock on the state dir, and the
//! one that finds it taken says which process holds it. `popsel plan` only reads and runs
//! beside them. A lock left by a dead process blocks nothing; a reload keeps the lock.

use std::time::Duration;

use crate::process::*;
use crate::support::state_faults::StateSite;
use crate::support::{self, assert_contains, assert_exit, show};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_dir_has_one_writer_named_when_taken_and_freed_when_it_dies() {
    let sim = support::start_sim(support::no_faults()).await;
    let site = StateSite::new(&sim.url());
    let mut agent = AgentProc::spawn(site.command("run", &[]));
    agent.metrics_base().await;

    let refused = |out: &std::process::Output, pid: u32| {
        assert_exit(out, 1);
        let stderr = support::stderr(out);
        assert_contains(&stderr, &site.state_dir().display().to_string());
        assert_contains(&stderr, &format!("PID {pid}"));
    };
    let out = site.apply().await;
    refused(&out, agent.pid());
    // A second agent on the same state dir does not start either.
    let out = support::state_faults::run_bounded(site.command("run", &["--once"])).await;
    refused(&out, agent.pid());

    // plan reads beside it.
    let out = site.plan().await;
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", show(&out));

    // A reload opens the state dir again: the agent keeps its lock, without blocking itself.
    agent.signal("HUP");
    agent
        .wait_line(Stream::Stderr, "config reloaded", Duration::from_secs(5))
        .await;
    assert!(
        !agent.stderr().contains("not reloaded"),
        "{}",
        agent.stderr_tail()
    );
    refused(&site.apply().await, agent.pid());
    assert!(agent.running());

    // Killed outright: the kernel drops the lock, and the PID left in the file blocks nothing.
    agent.signal("KILL");
    agent
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("killed");
    assert!(site.state_file("popsel.lock").is_file());
    let out = site.apply().await;
    assert_exit(&out, 0);
    assert!(!support::stderr(&out).contains("in use"), "{}", show(&out));
}

/// Whether another process could take the lock of `dir` now (`flock -n`).
fn lock_free(dir: &std::path::Path) -> bool {
    std::process::Command::new("flock")
        .arg("-n")
        .arg(dir.join("popsel.lock"))
        .arg("true")
        .status()
        .expect("run flock")
        .success()
}

/// A reload to another state dir takes that one's lock (refused, the old config kept, while
/// another process holds it) and lets the old one go once no stage uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_another_state_dir_moves_the_lock() {
    let sim = support::start_sim(support::no_faults()).await;
    let mut site = StateSite::new(&sim.url());
    let (old, new) = (site.state_dir(), site.files.path("state2"));
    let agent = AgentProc::spawn(site.command("run", &[]));
    agent.metrics_base().await;
    assert!(!lock_free(&old));

    // Someone else has the new dir: the reload is refused, naming them; the old lock stays.
    std::fs::create_dir(&new).unwrap();
    std::fs::set_permissions(&new, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(new.join("popsel.lock"), "4242\n").unwrap();
    let mut holder = std::process::Command::new("sh")
        .args(["-c", "exec 9<>\"$0\" && flock 9 && exec sleep 30"])
        .arg(new.join("popsel.lock"))
        .spawn()
        .unwrap();
    crate::http::until(Duration::from_secs(5), "the other process locks", || {
        !lock_free(&new)
    })
    .await;
    site.edit_config(|c| c.with("[state]\ndir = \"state2\"\n"));
    agent.signal("HUP");
    let line = agent
        .wait_line(Stream::Stderr, "not reloaded", Duration::from_secs(5))
        .await;
    assert_contains(&line, "PID 4242");
    assert!(!lock_free(&old));
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Free: the reload goes through; the agent holds the new dir and lets the old one go.
    agent.signal("HUP");
    // (Probing the new dir's lock before the reload took it could make the reload fail.)
    agent
        .wait_line(Stream::Stderr, "config reloaded", Duration::from_secs(5))
        .await;
    crate::http::until(
        Duration::from_secs(10),
        "the lock moved to the new dir",
        || !lock_free(&new) && lock_free(&old),
    )
    .await;
    assert_contains(
        &std::fs::read_to_string(new.join("popsel.lock")).unwrap(),
        &agent.pid().to_string(),
    );
}
