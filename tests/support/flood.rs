//! A connection flood, as a hostile network or a careless operator would send it, against a
//! `popsel` process run with the descriptor limit systemd gives it.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// What systemd gives a service that sets no `LimitNOFILE=`: its `DefaultLimitNOFILE`, 1024
/// (soft; the hard limit is higher, but popsel does not raise its own).
pub const SYSTEMD_DEFAULT_NOFILE: u64 = 1024;

/// The open-file limit the systemd unit gives popsel: its `LimitNOFILE=`, or systemd's default
/// when it sets none.
pub fn unit_nofile_limit() -> u64 {
    let unit = std::fs::read_to_string("deploy/systemd/popsel.service").expect("read the unit");
    unit.lines()
        .find_map(|l| l.trim().strip_prefix("LimitNOFILE="))
        .map_or(SYSTEMD_DEFAULT_NOFILE, |v| {
            // `N` or `SOFT:HARD`; the soft limit is the one that binds.
            let soft = v.split(':').next().unwrap_or(v);
            soft.trim()
                .parse()
                .unwrap_or_else(|_| panic!("LimitNOFILE={v} is not a number"))
        })
}

/// `cmd` run with an open-file limit (soft and hard) of `limit`, through `sh`'s `ulimit`, which
/// then execs it: the process keeps `cmd`'s pid, arguments and environment.
pub fn with_nofile_limit(cmd: &Command, limit: u64) -> Command {
    let mut wrapped = Command::new("/bin/sh");
    wrapped
        .arg("-c")
        .arg("ulimit -n \"$0\" && exec \"$@\"")
        .arg(limit.to_string())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The soft open-file limit of process `pid`, from /proc.
pub fn nofile_limit_of(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .expect("the soft open-file limit")
}

/// How many descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Lets this test process open `needed` more descriptors: raises its soft limit toward its
/// hard one (never above it; nothing needs root). Err when the hard limit is too low, for
/// [`super::can_run_privileged`]: skipped where the machine does not allow it, failed in CI.
pub fn allow_open_files(needed: u64) -> Result<(), String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    let want = needed + 256;
    if hard < want {
        return Err(format!(
            "this test opens {needed} connections; the hard open-file limit is {hard}"
        ));
    }
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `count` connections to `addr` that each send the start of a request head and nothing more
/// (the slow-loris way), held for as long as the returned vector lives. Connections the
/// server closes stay in it, closed.
pub async fn half_open_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    let started = Instant::now();
    for i in 0..count {
        let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connection {i} to {addr}: no answer within 5 s"))
            .unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"));
        // The server may have closed it already to make room: the write may fail.
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: flood\r\n")
            .await;
        held.push(s);
    }
    eprintln!(
        "{count} half-open connections to {addr} in {:?}",
        started.elapsed()
    );
    held
}

/// How many TCP connections process `pid` holds on its local `port` (the listening socket not
/// counted), from its descriptors and the kernel's socket tables.
pub fn connections_on_port(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let port_hex = format!(":{port:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state (0A: listening), inode
            fields.len() > 9
                && fields[1].ends_with(&port_hex)
                && fields[3] != "0A"
                && inodes.contains(fields[9])
        })
        .count()
}
