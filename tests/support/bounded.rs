//! Commands the test labs run to their end with a time limit, so that a hung `ip`, `swanctl` or
//! `popsel` fails a test instead of stalling it. Shared by the IPsec lab (`support::ipsec`) and
//! the latency lab's test side (`tests/support/lab.rs`; `examples/lab.rs` includes this file
//! with `#[path]`).

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to its end (stdin empty), output captured; kills it if it runs longer than
/// `limit`.
pub fn run_within(mut cmd: Command, limit: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("run {cmd:?}: {e}"))?;
    // Both pipes are read while the command runs, so that it never blocks on a full one.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{cmd:?} still ran after {limit:?}; killed"));
            }
            Err(e) => return Err(format!("wait for {cmd:?}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
