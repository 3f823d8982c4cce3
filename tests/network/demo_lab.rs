//! `popsel demo` measuring latency in a lab of its own (`src/cli/demo/network.rs`): as root it
//! builds the sample catalogue's world in a network namespace with no name, ranks the measured
//! location by latency, shows the plan before the apply and the next steps, keeps `/metrics` on
//! the host's loopback, and leaves no namespace behind however it ends. Without the
//! capabilities it ranks by distance and says what it would take. The privileged tests skip
//! elsewhere and fail under CI=true.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{bounded, lab, support};

/// A whole demo cycle takes 2 to 3 s here; this only bounds a hung one.
const DEMO_LIMIT: Duration = Duration::from_secs(90);

/// `popsel demo ARGS` to its end.
fn demo_once(wrapper: &[&str]) -> Output {
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(env!("CARGO_BIN_EXE_popsel"));
            cmd
        }
        None => Command::new(env!("CARGO_BIN_EXE_popsel")),
    };
    cmd.args(["demo", "--once"]).env_remove("POPSEL_LOG");
    bounded::run_within(cmd, DEMO_LIMIT).expect("popsel demo --once")
}

/// The places of `needles` in `text`, each found after the one before; fails naming the first
/// missing.
fn in_order(text: &str, needles: &[&str]) -> Vec<usize> {
    let mut from = 0;
    needles
        .iter()
        .map(|needle| {
            let at = text[from..]
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing (or out of order) in:\n{text}"));
            from += at + needle.len();
            from - needle.len()
        })
        .collect()
}

/// The names `ip netns list` shows.
fn named_namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn as_root_the_demo_ranks_by_latency_measured_in_a_namespace_of_its_own() {
    if !support::can_run_privileged(lab::available()) {
        return;
    }
    let out = demo_once(&[]);
    support::assert_exit(&out, 0);
    let text = support::stdout(&out);
    // The ranking of the measured location is by latency, with round trips.
    let [note, ranking, contrast] = in_order(
        &text,
        &[
            "Emulated network: in a network namespace of the demo's own",
            "Ranking for chicago (top 5):",
            "Latency and distance disagree: US/Chicago, Illinois/GCP (0 km) would rank 1st by distance",
        ],
    )[..] else {
        unreachable!()
    };
    assert!(note < ranking && ranking < contrast);
    let chicago = &text[ranking..contrast];
    assert!(chicago.contains("basis: latency"), "{chicago}");
    let first = chicago
        .lines()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("no first row:\n{chicago}"));
    // RANK CITY… — the first PoP by latency is Atlanta (948 km), not Chicago (0 km); its
    // median round trip is a number near the emulated 16.2 ms.
    assert!(first.contains("Atlanta, Georgia"), "{first}");
    let median: f64 = first
        .split_whitespace()
        .find_map(|w| w.parse::<f64>().ok().filter(|v| *v > 10.0 && *v < 100.0))
        .unwrap_or_else(|| panic!("no round trip in {first:?}"));
    assert!((14.0..40.0).contains(&median), "{first}");
    assert!(
        text.contains("frankfurt (local = false) by distance"),
        "{text}"
    );
    // The plan before the apply, the tunnels after it, then the next steps.
    in_order(
        &text,
        &[
            "Plan (as `popsel plan` prints it; nothing is written yet):",
            "Selection:",
            "+ create    \"Chicago IPSec1\"",
            "Plan: 3 to create, 0 to update, 0 to delete",
            "Applying it:",
            "Tunnels provisioned through the API:",
            "Disconnected",
            "The tunnels stay Disconnected: the emulator provisions them through the API, but no IPsec peer",
            "Next steps:",
            "popsel rank --site 41.88,-87.63 --catalog config/catalog.sample.json",
            "curl http://127.0.0.1:9469/metrics",
        ],
    );
    assert!(!text.contains("(not created)"), "{text}");
    // Its namespace has no name: none of the demo's in `ip netns list` (other tests' labs may
    // be there, named `popsel-<lab>-<their pid>-<n>`).
    let pid = text
        .split("state in /tmp/popsel-demo-")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no state dir in:\n{text}"));
    let names = named_namespaces();
    assert!(
        !names
            .lines()
            .any(|l| l.starts_with("popsel-") && l.contains(&format!("-{pid}"))),
        "{names}"
    );
}

/// `popsel demo` serving its metrics: the child, and its stdout lines as they come.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Serving {
    fn start() -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_popsel"))
            .args(["demo", "--metrics-listen", "127.0.0.1:0"])
            .env_remove("POPSEL_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("popsel demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Serving { child, lines }
    }

    /// The rest of the first line (from now) that starts with `prefix`.
    fn line_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + DEMO_LIMIT;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!("the demo printed no line starting with {prefix:?}");
    }

    /// The address of `/metrics`, once the demo says it serves it.
    fn metrics_addr(&self) -> String {
        let rest = self.line_after("Metrics on http://");
        rest.split('/').next().expect("an address").to_owned()
    }

    /// The network namespaces its threads are in other than its main thread's: the lab's.
    fn lab_namespaces(&self) -> Vec<String> {
        let pid = self.child.id();
        let main = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("its namespace");
        let mut other: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("its threads")
            .flatten()
            .filter_map(|task| std::fs::read_link(task.path().join("ns/net")).ok())
            .filter(|ns| *ns != main)
            .map(|ns| ns.to_string_lossy().into_owned())
            .collect();
        other.sort();
        other.dedup();
        other
    }

    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` from this test's namespace (the host's).
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the demo's /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body
}

/// Whether a process, a descriptor or a mount anywhere still holds `ns` (`net:[inode]`): if
/// none does, the kernel has removed it.
fn held_anywhere(ns: &str) -> Vec<String> {
    let mut holders = Vec::new();
    for proc in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let path = proc.path();
        for sub in ["task", "fd"] {
            let Ok(entries) = std::fs::read_dir(path.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let link = match sub {
                    "task" => entry.path().join("ns/net"),
                    _ => entry.path(),
                };
                if std::fs::read_link(&link).is_ok_and(|l| l.to_string_lossy() == ns) {
                    holders.push(link.display().to_string());
                }
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    holders.extend(mounts.lines().filter(|l| l.contains(ns)).map(str::to_owned));
    holders
}

/// The demo serving its metrics, ended by `signal`: the lab's namespace exists while it runs
/// (its metrics on the host's loopback nonetheless) and is gone after. How the demo ended.
fn demo_ended_by(signal: &str) -> Option<std::process::ExitStatus> {
    let mut demo = Serving::start();
    let addr = demo.metrics_addr();
    let namespaces = demo.lab_namespaces();
    assert_eq!(namespaces.len(), 1, "the lab's thread: {namespaces:?}");
    // What the check below looks for can be seen: the demo holds it now.
    assert!(!held_anywhere(&namespaces[0]).is_empty());
    let metrics = scrape(&addr);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("popsel_pop_up{") && l.ends_with(" 1")),
        "no PoP answered, as /metrics says:\n{metrics}"
    );
    let status = Command::new("kill")
        .args([signal, &demo.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let ended = demo.wait(Duration::from_secs(10));
    assert_gone(&namespaces[0]);
    ended
}

/// Fails unless namespace `ns` is soon held by nothing (the kernel removes it once its last
/// holder is gone).
fn assert_gone(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !held_anywhere(ns).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        held_anywhere(ns),
        Vec::<String>::new(),
        "the lab's namespace is still held"
    );
}

#[test]
fn sigterm_ends_the_demo_and_its_namespace() {
    if !support::can_run_privileged(lab::available()) {
        return;
    }
    let status = demo_ended_by("-TERM").expect("the demo exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn a_killed_demo_leaves_no_namespace_either() {
    if !support::can_run_privileged(lab::available()) {
        return;
    }
    assert!(
        demo_ended_by("-KILL").is_some(),
        "SIGKILL did not end the demo"
    );
}

#[test]
fn ctrl_c_in_the_middle_of_the_cycle_cleans_up_all_the_same() {
    if !support::can_run_privileged(lab::available()) {
        return;
    }
    let mut demo = Serving::start();
    let state = demo.line_after("Atmos API emulator on ");
    let state = state
        .split("; state in ")
        .nth(1)
        .expect("the state dir")
        .to_owned();
    // Printed once the lab runs, before the cycle; its probes take a second at least (the
    // silent PoP's timeout).
    demo.line_after("Emulated network:");
    let namespaces = demo.lab_namespaces();
    assert_eq!(namespaces.len(), 1, "the lab's thread: {namespaces:?}");
    let status = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = demo
        .wait(Duration::from_secs(10))
        .expect("the demo exits after SIGINT");
    assert_eq!(
        status.code(),
        Some(130),
        "cut short in the cycle: {status:?}"
    );
    assert!(
        !std::path::Path::new(&state).exists(),
        "the demo left {state}"
    );
    assert_gone(&namespaces[0]);
}

#[test]
fn without_the_capabilities_the_demo_ranks_by_distance_and_says_what_it_would_take() {
    // As root, the capabilities are dropped (the bounding set, so that exec cannot give them
    // back); any other user lacks them already.
    let wrapper: &[&str] = match support::is_root() {
        Ok(()) => &[
            "setpriv",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
        ],
        Err(_) => &[],
    };
    let out = demo_once(wrapper);
    support::assert_exit(&out, 0);
    let text = support::stdout(&out);
    in_order(
        &text,
        &[
            "Ranking by distance: run as root or with CAP_SYS_ADMIN,CAP_NET_ADMIN,CAP_NET_RAW to measure latency in an emulated network",
            "(this process lacks CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW;",
            "Ranking for chicago (top 5):",
            "basis: distance",
            "Plan (as `popsel plan` prints it",
            "Tunnels provisioned through the API:",
            "Next steps:",
        ],
    );
    // By distance, the nearest PoP comes first.
    let first = text
        .lines()
        .skip_while(|l| !l.starts_with("Ranking for chicago"))
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("no first row:\n{text}"));
    assert!(first.contains("Chicago, Illinois"), "{first}");
    assert!(!text.contains("Emulated network"), "{text}");
    assert!(!text.contains("Latency and distance disagree"), "{text}");
}
