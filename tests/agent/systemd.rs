//! `popsel run` as a `Type=notify-reload` service with `WatchdogSec=`: the test binds the
//! datagram socket systemd would (`NOTIFY_SOCKET`) and reads what the agent sends. READY=1 once
//! a catalogue and a probe round exist (not while the API fails, nor before the probe round);
//! RELOADING=1 with MONOTONIC_USEC, then READY=1, around every SIGHUP (an invalid config too:
//! systemd waits for that READY=1); STOPPING=1 on SIGTERM; WATCHDOG=1 every half `WATCHDOG_USEC`
//! while every stage completes its runs, and none while one is stuck.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use popsel::sim::Faults;
use sd_notify::NotifyState;

use crate::emulator::*;
use crate::http::*;
use crate::process::*;
use crate::site::*;
use crate::support::toml_str;

/// One datagram: its fields (`READY=1`, `MONOTONIC_USEC=…`), and when it came.
#[derive(Debug, Clone)]
struct Message {
    at: Instant,
    fields: Vec<String>,
}

impl Message {
    fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The notification socket, as systemd binds it, and every message received on it.
struct NotifySocket {
    dir: tempfile::TempDir,
    received: Arc<Mutex<Vec<Message>>>,
    stop: Arc<AtomicBool>,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = UnixDatagram::bind(dir.path().join("notify")).expect("bind the socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let fields = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned)
                    .collect();
                let message = Message {
                    at: Instant::now(),
                    fields,
                };
                into.lock().unwrap_or_else(|e| e.into_inner()).push(message);
            }
        });
        NotifySocket {
            dir,
            received,
            stop,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("notify")
    }

    fn messages(&self) -> Vec<Message> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, field: &str) -> usize {
        self.messages().iter().filter(|m| m.has(field)).count()
    }

    /// The index of the first message from `from` on holding `field`, waiting at most
    /// `timeout`.
    async fn wait_for(
        &self,
        agent: &AgentProc,
        field: &str,
        from: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if let Some(i) = messages.iter().skip(from).position(|m| m.has(field)) {
                return from + i;
            }
            assert!(
                Instant::now() < deadline,
                "no {field} within {timeout:?} (from message {from}); received {:?}\nstderr:\n{}",
                messages.iter().map(|m| &m.fields).collect::<Vec<_>>(),
                agent.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The monotonic clock systemd compares MONOTONIC_USEC with, in µs.
fn monotonic_usec() -> i128 {
    match NotifyState::monotonic_usec_now().expect("CLOCK_MONOTONIC") {
        NotifyState::MonotonicUsec(usec) => usec,
        other => panic!("not a monotonic time: {other:?}"),
    }
}

/// The agent of `site` under the test's notification socket, with a watchdog of `watchdog`.
async fn start_notifying(
    site: &Site,
    notify: &NotifySocket,
    watchdog: Duration,
) -> (AgentProc, String) {
    let mut cmd = site.run_command(&[]);
    cmd.env("NOTIFY_SOCKET", notify.path())
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID");
    let agent = AgentProc::spawn(cmd);
    let base = agent.metrics_base().await;
    (agent, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_after_the_first_catalogue_and_probe_round_then_reloading_and_stopping() {
    let sim = sim_with_connector().await;
    sim.set_faults(Faults {
        fail_rate: 1.0,
        ..Faults::default()
    })
    .expect("faults");
    // A name server that never answers: each probe round waits out its lookups (1.5 s), so a
    // READY=1 sent with the catalogue but before the probe round would be seen.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind the silent name server");
    let site = Site::new(&sim.url());
    site.write_config_with(&format!(
        "[dns]\nnameservers = [{}]\ntimeout = \"1500ms\"\n",
        toml_str(&silent.local_addr().expect("its address").to_string())
    ));
    let notify = NotifySocket::bind();
    let (mut agent, base) = start_notifying(&site, &notify, Duration::from_millis(400)).await;

    // The API fails: no catalogue, not ready; the stages still complete their (failed) runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        notify.count("READY=1"),
        0,
        "READY=1 without a catalogue: {:?}",
        notify.messages()
    );
    assert!(
        notify.count("WATCHDOG=1") >= 5,
        "WATCHDOG=1 every 200 ms while the stages complete their runs, got {:?}",
        notify.messages()
    );

    sim.set_faults(Faults::default()).expect("faults");
    let ready = notify
        .wait_for(&agent, "READY=1", 0, Duration::from_secs(60))
        .await;
    let s = scrape(&base).await.expect("scrape");
    for stage in ["catalog", "probe"] {
        let runs = s.value("popsel_stage_runs_total", &[("stage", stage)]);
        let failures = s.value("popsel_stage_failures_total", &[("stage", stage)]);
        assert!(
            runs.unwrap_or(0.0) - failures.unwrap_or(0.0) >= 1.0,
            "READY=1 before a successful {stage} run:\n{}",
            s.summary()
        );
    }
    assert_eq!(notify.count("READY=1"), 1, "{:?}", notify.messages());

    // SIGHUP: RELOADING=1 with the time it began, the reload, READY=1.
    let mut last = ready;
    for config in [None, Some("this is [not a config")] {
        if let Some(text) = config {
            std::fs::write(site.config_path(), text).expect("write the config");
        }
        let before = monotonic_usec();
        agent.signal("HUP");
        let reloading = notify
            .wait_for(&agent, "RELOADING=1", last + 1, Duration::from_secs(10))
            .await;
        let message = &notify.messages()[reloading];
        let usec: i128 = message
            .value("MONOTONIC_USEC")
            .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {message:?}"))
            .parse()
            .expect("MONOTONIC_USEC is a number");
        assert!(
            (before..=monotonic_usec()).contains(&usec),
            "MONOTONIC_USEC={usec} is not the time of the reload (from {before})"
        );
        let done = notify
            .wait_for(&agent, "READY=1", reloading + 1, Duration::from_secs(10))
            .await;
        assert!(notify.messages()[done].at >= message.at);
        last = done;
        let outcome = if config.is_none() {
            "config reloaded"
        } else {
            "not reloaded"
        };
        agent
            .wait_line(Stream::Stderr, outcome, Duration::from_secs(5))
            .await;
    }

    // Watchdog pings go on after the reloads.
    let pings = notify.count("WATCHDOG=1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(notify.count("WATCHDOG=1") >= pings + 2);

    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        agent.stderr_tail()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = notify.messages();
    let stopping = messages
        .iter()
        .position(|m| m.has("STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1: {messages:?}"));
    assert_eq!(messages.iter().filter(|m| m.has("STOPPING=1")).count(), 1);
    assert!(
        !messages[stopping + 1..]
            .iter()
            .any(|m| m.has("READY=1") || m.has("WATCHDOG=1")),
        "READY=1 or WATCHDOG=1 after STOPPING=1: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watchdog_ping_while_a_stage_is_stuck() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    // The selection stage hangs in its hook (as in `health`): overdue after 3 s.
    site.write_config_with(
        "[edge]\non_change = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\non_change_timeout = \"60s\"\n",
    );
    let notify = NotifySocket::bind();
    let (mut agent, base) = start_notifying(&site, &notify, Duration::from_millis(200)).await;
    notify
        .wait_for(&agent, "READY=1", 0, Duration::from_secs(20))
        .await;
    assert!(notify.count("WATCHDOG=1") >= 1);

    let deadline = Instant::now() + Duration::from_secs(20);
    while get_status(&format!("{base}/healthz")).await != Some(503) {
        assert!(
            Instant::now() < deadline,
            "/healthz never said a stage was stuck\n{}",
            agent.stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At most one ping was under way as /healthz turned; none after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pings = notify.count("WATCHDOG=1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        notify.count("WATCHDOG=1"),
        pings,
        "WATCHDOG=1 while a stage is stuck: {:?}",
        notify.messages()
    );
    agent
        .wait_line(Stream::Stderr, "watchdog", Duration::from_secs(1))
        .await;
    assert!(agent.running());
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_socket_that_is_gone_is_said_once_and_changes_nothing() {
    let sim = sim_with_connector().await;
    let site = Site::new(&sim.url());
    let notify = NotifySocket::bind();
    let gone = notify.path().with_file_name("gone");
    let mut cmd = site.run_command(&[]);
    cmd.env("NOTIFY_SOCKET", &gone)
        .env("WATCHDOG_USEC", "100000");
    let mut agent = AgentProc::spawn(cmd);
    let base = agent.metrics_base().await;
    agent.first_cycle(&base).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let complaints = agent
        .stderr()
        .lines()
        .filter(|l| l.contains("systemd notification"))
        .count();
    assert_eq!(complaints, 1, "{}", agent.stderr_tail());
    agent.signal("TERM");
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}
