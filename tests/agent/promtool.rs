//! The exposition through `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::emulator::*;
use crate::site::*;
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_accepts_the_exposition() {
    let available = match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("promtool --version failed: {:?}", o.status)),
        Err(e) => Err(format!("promtool is not on PATH: {e}")),
    };
    if !support::can_run_privileged(available) {
        return;
    }
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let (agent, base) = site.start_agent(&[]).await;
    let s = agent.first_cycle(&base).await;

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
