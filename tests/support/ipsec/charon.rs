//! One strongSwan `charon` daemon in a network namespace of the lab, and `swanctl` against it.
//!
//! Several charons on one host (`/work/shared/strongswan-notes.md`, "These machines"): each runs
//! in its own network namespace, with its own `/run` (charon keeps its pid file there and
//! refuses to start beside another one's), its own `strongswan.conf` through `STRONGSWAN_CONF`
//! and its own VICI socket. So the daemon is started as
//!
//! ```text
//! ip netns exec NS unshare --mount --propagation private \
//!     sh -c 'mount -t tmpfs popsel-ipsec-run /run && exec /usr/lib/ipsec/charon'
//! ```
//!
//! `ip netns exec`, `unshare` and `sh` each replace themselves (`exec`), so the child's pid is
//! charon's, and the tmpfs lives in a mount namespace that only charon holds: it goes when charon
//! does, and being private it never shows on the host. Everything else of the daemon is in its
//! directory under the test's temporary directory: `strongswan.conf`, the VICI socket
//! `charon.vici` (a path, so `swanctl` reaches it from any namespace), `charon.log`, and what
//! the daemon printed (`charon.out`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::netns::NetNs;
use super::run_within;

/// Where Debian's `strongswan-charon` puts the daemon.
pub const CHARON: &str = "/usr/lib/ipsec/charon";
/// The libipsec plugin (Debian: `libcharon-extra-plugins`).
pub const KERNEL_LIBIPSEC_PLUGIN: &str = "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so";
/// The plugins that give libipsec AES-GCM and charon x25519 (Debian:
/// `libstrongswan-standard-plugins`): without them charon still picks AES-GCM for ESP and
/// libipsec then fails to install the SA ("unsupported AEAD algorithm AES_GCM_16").
pub const CRYPTO_PLUGINS: [&str; 2] = [
    "/usr/lib/ipsec/plugins/libstrongswan-gcm.so",
    "/usr/lib/ipsec/plugins/libstrongswan-openssl.so",
];
/// The mark charon's own sockets put on IKE and ESP-in-UDP packets; the rule to table 220
/// skips packets with it (see [`CharonSettings`]).
pub const IKE_FWMARK: u32 = 0x2a;
/// How long a charon may take to open its VICI socket.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long a charon has to stop after SIGTERM before it gets SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(3);
/// Bound of one `swanctl` run (a blocking `--initiate` has its own `--timeout` below this).
pub const SWANCTL_LIMIT: Duration = Duration::from_secs(20);

/// The knobs of a lab charon's `strongswan.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct CharonSettings {
    /// `charon.retransmit_timeout`, seconds before the first retransmission.
    pub retransmit_timeout: f64,
    /// `charon.retransmit_base`, the back-off factor.
    pub retransmit_base: f64,
    /// `charon.retransmit_tries`: an exchange is given up after this many retransmissions.
    pub retransmit_tries: u32,
}

impl Default for CharonSettings {
    /// An unanswered exchange is given up after 1 + 1.4 + 1.96 = 4.4 s (charon's default, 4 s
    /// base 1.8 with 5 tries, takes 165 s): tests of dead PoPs stay short.
    fn default() -> Self {
        Self {
            retransmit_timeout: 1.0,
            retransmit_base: 1.4,
            retransmit_tries: 2,
        }
    }
}

impl CharonSettings {
    /// Seconds after which an unanswered exchange (and so a DPD check) is given up.
    pub fn give_up_after(&self) -> f64 {
        (0..=self.retransmit_tries)
            .map(|n| self.retransmit_timeout * self.retransmit_base.powi(n as i32))
            .sum()
    }
}

/// The `strongswan.conf` of a lab charon whose files are in `dir`. Why each setting:
/// - an explicit `load` list (`load_modular = no`, the default): the daemon does not depend on
///   the machine's `/etc/strongswan.d`, and loads no plugin that wants a path of the host
///   (stroke's socket, ...). `openssl` and `gcm` give libipsec AES-GCM, charon's first ESP
///   proposal; `kernel-libipsec` does ESP in user space over a TUN device, as the kernel has no
///   ESP transform (notes, "These machines"); `kernel-netlink` still handles addresses, routes
///   and rules.
/// - `install_routes = yes`: libipsec routes a CHILD SA's traffic to its TUN device through
///   table 220.
/// - `kernel-libipsec.allow_peer_ts = yes` with the `fwmark` pair: a PoP responder's remote
///   selector is the branch's own address (`remote_ts = dynamic`), which libipsec refuses by
///   default ("conflicts with IKE traffic"): the route for it would also catch the IKE and
///   ESP-in-UDP packets to the branch. Marking charon's own packets (`socket-default.fwmark`)
///   and keeping marked packets out of table 220 (`kernel-netlink.fwmark = !mark`) makes that
///   safe, on both ends. A side effect, on the branch: no exclude route for the PoP's address
///   is needed or installed, so, as with kernel-netlink on a real router, traffic to the PoP's
///   address that matches the selectors (a probe) enters the tunnel too.
/// - short retransmissions ([`CharonSettings`]).
/// - a file log at level 2 for IKE, config and kernel events, flushed per line: what a failing
///   test prints.
pub fn strongswan_conf(dir: &Path, settings: &CharonSettings) -> String {
    let d = dir.display();
    format!(
        "# Written by popsel's IPsec lab (tests/support/ipsec/charon.rs).
charon {{
  load = random nonce openssl aes sha1 sha2 hmac kdf gmp gcm pem pkcs1 x509 kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  retransmit_timeout = {timeout}
  retransmit_base = {base}
  retransmit_tries = {tries}
  plugins {{
    vici {{
      socket = unix://{d}/charon.vici
    }}
    kernel-libipsec {{
      allow_peer_ts = yes
    }}
    kernel-netlink {{
      fwmark = !{IKE_FWMARK:#x}
    }}
    socket-default {{
      fwmark = {IKE_FWMARK:#x}
    }}
  }}
  filelog {{
    lab {{
      path = {d}/charon.log
      time_format = %T
      append = no
      flush_line = yes
      default = 1
      ike = 2
      cfg = 2
      knl = 2
    }}
  }}
}}
swanctl {{
  load = random openssl pem pkcs1 x509
  socket = unix://{d}/charon.vici
}}
",
        timeout = settings.retransmit_timeout,
        base = settings.retransmit_base,
        tries = settings.retransmit_tries,
    )
}

/// `swanctl` against one charon: its `strongswan.conf` (whose `swanctl.socket` is the
/// charon's VICI socket) and where its `swanctl.conf` files go. Cheap to clone, so that work
/// can move to a blocking thread.
#[derive(Debug, Clone)]
pub struct Swanctl {
    conf: PathBuf,
    dir: PathBuf,
}

impl Swanctl {
    /// Runs `swanctl ARGS`, output captured, bounded by [`SWANCTL_LIMIT`].
    pub fn run(&self, args: &[&str]) -> Result<Output, String> {
        let mut cmd = Command::new("swanctl");
        cmd.args(args)
            .env("STRONGSWAN_CONF", &self.conf)
            .stdin(Stdio::null());
        run_within(cmd, SWANCTL_LIMIT)
    }

    /// Runs `swanctl ARGS` and returns its stdout; an error with both outputs if it fails.
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.run(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "`swanctl {}` failed ({}):\n{stdout}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Writes `conf` (connections and secrets, swanctl.conf syntax; mode 600, as it holds
    /// PSKs) to `<dir>/swanctl/swanctl.conf` and loads it with `--load-all`, which also unloads
    /// the connections and secrets that it no longer lists. Returns swanctl's report.
    pub fn load(&self, conf: &str) -> Result<String, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.dir.join("swanctl");
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let path = dir.join("swanctl.conf");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(conf.as_bytes())
        };
        write().map_err(|e| format!("write {}: {e}", path.display()))?;
        let file = path.to_string_lossy().into_owned();
        self.ok(&["--load-all", "--noprompt", "--file", &file])
    }

    /// `swanctl --list-sas`: the text, for assertions and failure messages.
    pub fn list_sas(&self) -> String {
        match self.ok(&["--list-sas"]) {
            Ok(text) => text,
            Err(e) => e,
        }
    }

    /// Whether an IKE SA of connection `ike` is ESTABLISHED with a CHILD SA INSTALLED, as
    /// `swanctl --list-sas --ike <ike>` shows it.
    pub fn is_up(&self, ike: &str) -> bool {
        self.ok(&["--list-sas", "--ike", ike])
            .is_ok_and(|text| text.contains(", ESTABLISHED,") && text.contains(", INSTALLED,"))
    }

    /// Terminates the IKE SAs of connection `ike` (with their children) without waiting for
    /// the peer; fine when there is none.
    pub fn terminate_ike(&self, ike: &str) {
        let _ = self.run(&["--terminate", "--ike", ike, "--force", "--timeout", "2"]);
    }
}

/// A running charon; stopped (SIGTERM, then SIGKILL) and reaped on drop.
pub struct Charon {
    name: String,
    dir: PathBuf,
    swanctl: Swanctl,
    child: Option<Child>,
}

impl Charon {
    /// Starts a charon in `ns` with its files in `dir` (created), and waits until its VICI
    /// socket answers. `name` is for messages.
    pub fn start(
        name: &str,
        ns: &NetNs,
        dir: &Path,
        settings: &CharonSettings,
    ) -> Result<Charon, String> {
        let mut charon = Charon::spawn(name, ns, dir, settings)?;
        charon.wait_ready()?;
        Ok(charon)
    }

    /// Starts a charon without waiting for it: [`Charon::wait_ready`] does, so that several
    /// can start at once.
    pub fn spawn(
        name: &str,
        ns: &NetNs,
        dir: &Path,
        settings: &CharonSettings,
    ) -> Result<Charon, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let conf = dir.join("strongswan.conf");
        std::fs::write(&conf, strongswan_conf(dir, settings))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let out_path = dir.join("charon.out");
        let out =
            File::create(&out_path).map_err(|e| format!("create {}: {e}", out_path.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", out_path.display()))?;
        let mut cmd = ns.command("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!("mount -t tmpfs popsel-ipsec-run /run && exec {CHARON}"),
        ])
        .env("STRONGSWAN_CONF", &conf)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| format!("start charon {name} ({cmd:?}): {e}"))?;
        Ok(Charon {
            name: name.to_owned(),
            dir: dir.to_owned(),
            swanctl: Swanctl {
                conf,
                dir: dir.to_owned(),
            },
            child: Some(child),
        })
    }

    /// Waits until the VICI socket answers (`swanctl --stats`), or fails with the daemon's
    /// output and log when it ended or took longer than [`START_LIMIT`].
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let ended = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = ended {
                return Err(format!(
                    "charon {} ended at start ({status}):\n{}",
                    self.name,
                    self.diagnostics()
                ));
            }
            if self.vici_socket().exists() && self.swanctl.ok(&["--stats"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "charon {} did not open {} within {START_LIMIT:?}:\n{}",
                    self.name,
                    self.vici_socket().display(),
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The daemon's pid (that of the process started: every step of the start `exec`s).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The VICI socket, for `[edge] vici_socket` or a VICI client.
    pub fn vici_socket(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }

    pub fn strongswan_conf(&self) -> PathBuf {
        self.dir.join("strongswan.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("charon.log")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `swanctl` against this charon.
    pub fn swanctl_handle(&self) -> Swanctl {
        self.swanctl.clone()
    }

    /// Runs `swanctl ARGS` against this charon (`--list-sas`, `--initiate --child X`, ...).
    pub fn swanctl(&self, args: &[&str]) -> Result<Output, String> {
        self.swanctl.run(args)
    }

    /// Writes and loads a `swanctl.conf` (see [`Swanctl::load`]).
    pub fn load(&self, conf: &str) -> Result<String, String> {
        self.swanctl.load(conf)
    }

    pub fn list_sas(&self) -> String {
        self.swanctl.list_sas()
    }

    /// Whether connection `ike` has an established IKE SA with an installed CHILD SA.
    pub fn is_up(&self, ike: &str) -> bool {
        self.swanctl.is_up(ike)
    }

    /// Waits until connection `ike` is up ([`Charon::is_up`]); returns how long it took, or an
    /// error with the SAs after `within`.
    pub fn wait_until_up(&self, ike: &str, within: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.is_up(ike) {
                return Ok(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "{ike} is not up on {} after {within:?}:\n{}",
            self.name,
            self.list_sas()
        ))
    }

    /// What the daemon printed and the end of its log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let out = std::fs::read_to_string(self.dir.join("charon.out")).unwrap_or_default();
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- charon {} output\n{out}--- charon {} log (last 60 lines)\n{}\n",
            self.name,
            self.name,
            tail.join("\n")
        )
    }

    /// Asks the daemon to stop (SIGTERM) without waiting: several stop at once this way.
    pub fn signal_stop(&self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after [`STOP_LIMIT`]; reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "ipsec lab: charon {} ignored SIGTERM; killing it",
            self.name
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        self.stop();
    }
}
