//! What the state-dir tests need: a site whose `plan`, `apply` and agent share one state dir,
//! a proxy in front of the emulator that leaves tunnels out of chosen listings (a flaky API:
//! an empty page, a partial one), the ways a state file gets damaged (a crash, a full disk,
//! a careless operator), and a command run that cannot hang a test.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::Response;

use super::proxy::{pass_on, serve};
use serde_json::Value;

use super::site::{self, AGENT_SECTIONS, CHICAGO_1, CHICAGO_2, FRANKFURT_1, SiteDir, SiteToml};

/// PSKs of the site's three tunnels, each from its own environment variable.
pub const PSKS: [(&str, &str, &str); 3] = [
    (
        CHICAGO_1,
        "POPSEL_STATE_TEST_PSK_1",
        "state-Chicago-one-51c9e0aa",
    ),
    (
        CHICAGO_2,
        "POPSEL_STATE_TEST_PSK_2",
        "state-Chicago-two-0b7d33e1",
    ),
    (
        FRANKFURT_1,
        "POPSEL_STATE_TEST_PSK_3",
        "state-Frankfurt-one-9a2f4c6d",
    ),
];

/// The demo site (three tunnels, PSKs from the environment) against `api_url`, state in
/// `state/`.
pub struct StateSite {
    pub files: SiteDir,
    config: SiteToml,
}

impl StateSite {
    pub fn new(api_url: &str) -> StateSite {
        let mut files = SiteDir::new();
        let mut config = site::config(api_url).with(AGENT_SECTIONS);
        for (tunnel, var, psk) in PSKS {
            files.set_env(var, psk);
            config = config.psk_env(tunnel, var);
        }
        files.write_config(&config);
        StateSite { files, config }
    }

    pub fn edit_config(&mut self, edit: impl FnOnce(SiteToml) -> SiteToml) {
        self.config = edit(self.config.clone());
        self.files.write_config(&self.config);
    }

    pub fn state_dir(&self) -> PathBuf {
        self.files.state_dir()
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    /// `popsel <command> --config … --no-probe [--no-dns for plan and apply] <args>`.
    pub fn command(&self, command: &str, args: &[&str]) -> Command {
        let mut flags = vec!["--no-probe"];
        if command != "run" {
            flags.push("--no-dns");
        }
        self.files.command(command, &[&flags, args].concat())
    }

    /// `popsel apply --yes`, within a minute.
    pub async fn apply(&self) -> Output {
        run_bounded(self.command("apply", &["--yes"])).await
    }

    /// `popsel plan --detailed-exitcode` (2: changes pending, 0: none), within a minute.
    pub async fn plan(&self) -> Output {
        run_bounded(self.command("plan", &["--detailed-exitcode"])).await
    }

    /// `popsel run --once`, within a minute.
    pub async fn run_once(&self) -> Output {
        run_bounded(self.command("run", &["--once"])).await
    }

    /// `tunnels.json` as JSON.
    pub fn managed(&self) -> Value {
        let text = std::fs::read_to_string(self.state_file("tunnels.json")).expect("tunnels.json");
        serde_json::from_str(&text).expect("tunnels.json is JSON")
    }

    /// The files of the state dir whose name starts with `prefix`, sorted.
    pub fn state_files(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.state_dir())
            .expect("read the state dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// The audit log's entries.
    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state_file("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect()
    }
}

/// Runs `cmd` off the async runtime's threads and kills it after 60 s: a state file that
/// makes popsel hang (a FIFO) fails the test instead of stalling it.
pub async fn run_bounded(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn popsel");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!(
                    "popsel still running after 60 s; killed\n--- stderr\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("collect the output")
    })
    .await
    .expect("join")
}

/// How a state file gets damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// A crash between create and write, or a full disk: zero bytes.
    Empty,
    /// Text that is not JSON.
    Garbage,
    /// The first half of what was there (a torn write on a filesystem without rename
    /// atomicity).
    Truncated,
    /// JSON of the wrong shape.
    WrongShape,
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// A directory where the file should be.
    Directory,
    /// A named pipe: reading it blocks until someone writes.
    Fifo,
    /// A file far larger than popsel ever writes (sparse: costs no disk).
    Huge,
}

impl Damage {
    pub const ALL: [Damage; 8] = [
        Damage::Empty,
        Damage::Garbage,
        Damage::Truncated,
        Damage::WrongShape,
        Damage::NotUtf8,
        Damage::Directory,
        Damage::Fifo,
        Damage::Huge,
    ];

    /// Replaces the file at `path` (which may not exist) with this damage.
    pub fn apply(self, path: &Path) {
        let old = std::fs::read(path).unwrap_or_default();
        remove(path);
        match self {
            Damage::Empty => std::fs::write(path, b"").expect("write"),
            Damage::Garbage => std::fs::write(path, b"}}} not json at all {{{").expect("write"),
            Damage::Truncated => {
                let half = &old[..old.len() / 2];
                std::fs::write(path, if half.is_empty() { b"{\"ver" } else { half }).expect("write")
            }
            Damage::WrongShape => std::fs::write(
                path,
                br#"{"version": "one", "tunnels": 7, "locations": [1]}"#,
            )
            .expect("write"),
            Damage::NotUtf8 => std::fs::write(path, [0xff, 0xfe, 0x00, 0x80, 0xc3]).expect("write"),
            Damage::Directory => {
                std::fs::create_dir(path).expect("mkdir");
                std::fs::write(path.join("inside"), b"x").expect("write");
            }
            Damage::Fifo => {
                let status = Command::new("mkfifo")
                    .arg(path)
                    .status()
                    .expect("run mkfifo");
                assert!(status.success(), "mkfifo {}", path.display());
            }
            Damage::Huge => std::fs::File::create(path)
                .and_then(|f| f.set_len(200 << 20))
                .expect("a sparse file"),
        }
    }
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).expect("remove dir"),
        Ok(_) => std::fs::remove_file(path).expect("remove file"),
        Err(_) => {}
    }
}

/// What the proxy does to one listing of tunnels.
#[derive(Debug, Clone)]
pub enum ListingFault {
    /// An empty page, as a flaky API sends.
    Empty,
    /// The page without the tunnel of this name.
    Without(String),
}

/// A real HTTP server on 127.0.0.1 port 0 that forwards every request to `upstream` and, for
/// the next listings of tunnels (`GET /api/v1/tunnels`) it is given faults for, answers the
/// page with tunnels left out.
pub struct ListingProxy {
    pub url: String,
    faults: Arc<Mutex<VecDeque<ListingFault>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Upstream {
    url: String,
    client: reqwest::Client,
    faults: Arc<Mutex<VecDeque<ListingFault>>>,
}

impl ListingProxy {
    pub async fn start(upstream: &str) -> ListingProxy {
        let faults = Arc::new(Mutex::new(VecDeque::new()));
        let state = Upstream {
            url: upstream.trim_end_matches('/').to_owned(),
            client: super::http(),
            faults: faults.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let (url, task) = serve(app).await;
        ListingProxy { url, faults, task }
    }

    /// The next listings of tunnels get these faults, one each, in order.
    pub fn fault_next_listings(&self, faults: &[ListingFault]) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(faults.iter().cloned());
    }

    /// Listings still to be faulted.
    pub fn pending(&self) -> usize {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for ListingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(up): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let is_listing =
        parts.method == axum::http::Method::GET && parts.uri.path() == "/api/v1/tunnels";
    let mut answer = match pass_on(&up.client, &up.url, &parts, body).await {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    if is_listing && answer.status.is_success() {
        let fault = up
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if let Some(fault) = fault {
            answer.body = apply_fault(&answer.body, &fault).into();
        }
    }
    answer.into_response()
}

fn apply_fault(page: &[u8], fault: &ListingFault) -> Vec<u8> {
    let Ok(mut page) = serde_json::from_slice::<Value>(page) else {
        return page.to_vec();
    };
    if let Some(Value::Array(data)) = page.get_mut("data") {
        match fault {
            ListingFault::Empty => data.clear(),
            ListingFault::Without(name) => data.retain(|t| t["name"].as_str() != Some(name)),
        }
    }
    serde_json::to_vec(&page).expect("JSON")
}
