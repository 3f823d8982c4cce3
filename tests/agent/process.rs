//! The agent as a child process, with its output collected.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use popsel::sim::Sim;

use crate::emulator::*;
use crate::exposition::*;
use crate::http::*;
use crate::site::*;

/// A running `popsel` whose stdout and stderr are collected as they come. Dropping it kills
/// the process if it is still running.
pub struct AgentProc {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

pub fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        }
    });
}

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl AgentProc {
    pub fn spawn(mut cmd: Command) -> AgentProc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn popsel");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), stdout.clone());
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        AgentProc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The end of stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr();
        let chars: Vec<char> = text.chars().collect();
        let start = chars.len().saturating_sub(6000);
        chars[start..].iter().collect()
    }

    /// Sends a signal with `kill -<name> <pid>`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a line containing `needle` on `stream` and returns it.
    pub async fn wait_line(&self, stream: Stream, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match stream {
                Stream::Stdout => self.stdout(),
                Stream::Stderr => self.stderr(),
            };
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line containing {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL of the metrics server, from the "metrics on http://ADDR/metrics" log line.
    pub async fn metrics_base(&self) -> String {
        let line = self
            .wait_line(
                Stream::Stderr,
                "metrics on http://",
                Duration::from_secs(15),
            )
            .await;
        base_url_in(&line, "metrics on http://")
    }

    /// Scrapes `/metrics` until `ready` holds, at most `timeout`; panics with the last scrape
    /// and the agent's stderr otherwise.
    pub async fn scrape_until(
        &self,
        base: &str,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(scrape) = scrape(base).await {
                if ready(&scrape) {
                    return scrape;
                }
                last = Some(scrape);
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not within {timeout:?}\nlast /metrics (without per-PoP and histogram lines):\n{}\nagent stderr:\n{}",
                    last.map_or("(no answer)".to_owned(), |s| s.summary()),
                    self.stderr_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for one full cycle: every stage ran, the tunnels exist and were polled, both
    /// locations have both roles selected, the catalogue and the connector are in.
    pub async fn first_cycle(&self, base: &str) -> Scrape {
        self.scrape_until(
            base,
            Duration::from_secs(15),
            "a full first cycle",
            first_cycle_done,
        )
        .await
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `http://ADDR` from a line holding `<prefix>ADDR/metrics`.
pub fn base_url_in(line: &str, prefix: &str) -> String {
    let at = line.find(prefix).expect("prefix in line") + prefix.len();
    let rest = &line[at..];
    let end = rest.find("/metrics").expect("/metrics after the address");
    format!("http://{}", &rest[..end])
}

pub fn first_cycle_done(s: &Scrape) -> bool {
    STAGES
        .iter()
        .all(|st| s.value("popsel_stage_runs_total", &[("stage", st)]) >= Some(1.0))
        && s.series("popsel_selected_pop_info", &[]).len() == 4
        && s.value("popsel_catalog_pops", &[]) == Some(52.0)
        && TUNNELS.iter().all(|(loc, t)| {
            s.value(
                "popsel_tunnel_status",
                &[("location", loc), ("tunnel", t), ("state", "Disconnected")],
            ) == Some(1.0)
        })
        && !s.series("popsel_connector_status", &[]).is_empty()
}

/// A reload that added [`EXTRA_TUNNEL`] took effect: the emulator holds every configured
/// tunnel and the extra one, whose status the agent has polled (a new tunnel is Disconnected).
pub fn extra_tunnel_done(sim: &Sim, s: &Scrape) -> bool {
    let mut all = TUNNELS.to_vec();
    all.push(EXTRA_TUNNEL);
    tunnel_names(sim) == sorted(&all)
        && s.value(
            "popsel_tunnel_status",
            &[
                ("location", EXTRA_TUNNEL.0),
                ("tunnel", EXTRA_TUNNEL.1),
                ("state", "Disconnected"),
            ],
        ) == Some(1.0)
}
