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
