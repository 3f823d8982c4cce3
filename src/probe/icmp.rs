//! The probe engine: ICMP echo through surge-ping, one client (one socket) per address family.
//! It prefers an unprivileged ping socket and falls back to a raw socket (which needs
//! CAP_NET_RAW); when neither opens it says so and names both fixes, and the caller ranks by
//! distance instead.
//!
//! Every address is in flight at once, under a cap on addresses probed together and a
//! packets-per-second cap shared by all. Each address gets its own run of sequence numbers,
//! taken from one 16-bit counter per prober, so no (address, sequence) pair is ever in flight
//! twice, and a late reply to an earlier round can only be taken for a later one after the
//! counter has gone all the way round (65,536 requests later: minutes, not a reply's timeout).
//! On a Linux ping socket the kernel rewrites the echo identifier to the socket's port, so
//! replies are matched on (address, sequence) alone; on a raw socket a random identifier per
//! prober also separates our replies from those of other pingers on the host.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use serde::Serialize;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::{Probe, ProbeError, ProbeSettings, Probes};
use crate::progress::Progress;

mod sequential;

pub use sequential::Decision;

/// Bytes of echo data, as `ping` and `fping` send by default.
const PAYLOAD: [u8; 56] = [0; 56];

/// The most addresses probed at once (`probe.concurrency`, `popsel rank --concurrency`). Each
/// is a task holding a slot of the packet pacer, and at the default 2,000 packets per second
/// a round of 5 echoes already keeps fewer than 10,000 addresses busy; more buys nothing.
pub const MAX_CONCURRENCY: usize = 10_000;

/// The permits of the concurrency semaphore: `concurrency` within 1 and [`MAX_CONCURRENCY`],
/// whatever the caller passes (`Semaphore::new` panics above `usize::MAX >> 3`).
fn permits(concurrency: usize) -> usize {
    concurrency.clamp(1, MAX_CONCURRENCY)
}

/// Which kind of ICMP socket a family uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketKind {
    /// `SOCK_DGRAM` ICMP: no privilege, if `net.ipv4.ping_group_range` allows the group.
    Ping,
    /// `SOCK_RAW`: needs CAP_NET_RAW.
    Raw,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IcmpUnavailable {
    #[error(
        "ICMP is not available to this process ({detail}); to measure latency either give the binary CAP_NET_RAW (`sudo setcap cap_net_raw+ep $(command -v popsel)`) or allow unprivileged ping sockets for its group (`sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`)"
    )]
    NoSocket { detail: String },
    #[error(
        "the probes cannot be sent by device {device:?} ({detail}); name one of this host's devices (`ip link`) in [probe] interface or --interface"
    )]
    NoDevice { device: String, detail: String },
}

struct Family {
    client: Client,
    kind: SocketKind,
    /// The index of the device it sends by (`[probe] interface`), as it was when opened.
    device_index: Option<u32>,
}

/// Why a family's socket did not open, in the operating system's words; `device` when it
/// opened but could not be made to send by the device asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SocketError {
    text: String,
    device: bool,
}

impl SocketError {
    fn socket(text: String) -> Self {
        Self {
            text,
            device: false,
        }
    }
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Family {
    fn open(icmp: ICMP, settings: &ProbeSettings) -> Result<Family, SocketError> {
        let config = Config::builder().kind(icmp).build();
        let client = Client::new(&config).map_err(|e| SocketError::socket(os_error(&e)))?;
        if settings.bypass_xfrm {
            bypass_xfrm(client.get_socket().get_native_sock(), icmp).map_err(|e| {
                SocketError::socket(format!(
                    "IPsec bypass policy ([probe] bypass_xfrm, which needs CAP_NET_ADMIN): {e}"
                ))
            })?;
        }
        let device_index = match settings.interface.as_deref() {
            Some(name) => Some(
                send_by(client.get_socket().get_native_sock(), icmp, name).map_err(|e| {
                    SocketError {
                        text: e.to_string(),
                        device: true,
                    }
                })?,
            ),
            None => None,
        };
        let kind = if client.get_socket().get_type() == socket2::Type::RAW {
            SocketKind::Raw
        } else {
            SocketKind::Ping
        };
        Ok(Family {
            client,
            kind,
            device_index,
        })
    }
}

/// Makes the socket `fd` send by `interface` (`IP_UNICAST_IF`, `IPV6_UNICAST_IF`): its route
/// lookups only take routes through that device, so a tunnel's routes (kernel-libipsec puts a
/// `0.0.0.0/0` via its TUN device in table 220) do not capture the probes. Not SO_BINDTODEVICE
/// (surge-ping's `interface`): that also drops what arrives by another device, and a PoP whose
/// tunnel covers this host's address sends its replies through the tunnel, so the carrying PoP
/// would look dead and the selection would flap (seen in the IPsec lab).
///
/// surge-ping owns the socket and hands out only its raw descriptor, and neither socket2 nor nix
/// has these options: hence the `unsafe` of the crate (here and in [`bypass_xfrm`]), FFI calls
/// on values that live through them.
///
/// Returns the device's index: the option holds the index, not the name, so a device deleted
/// and created again (a PPP or LTE link that came back) is another one to the socket.
#[allow(unsafe_code)]
fn send_by(fd: std::os::fd::RawFd, icmp: ICMP, interface: &str) -> Result<u32, std::io::Error> {
    let index = device_index(interface)?;
    let (level, option) = match icmp {
        ICMP::V4 => (libc::IPPROTO_IP, libc::IP_UNICAST_IF),
        ICMP::V6 => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_IF),
    };
    // Both options take the index in network byte order (ip_sockglue.c, ipv6_sockglue.c).
    let value: u32 = index.to_be();
    let len = libc::socklen_t::try_from(std::mem::size_of::<u32>()).unwrap_or(4);
    // SAFETY: `fd` is the open socket of the surge-ping client being set up, which the caller
    // holds; the kernel reads `len` bytes from `value`, which outlives the call.
    let rc = unsafe { libc::setsockopt(fd, level, option, std::ptr::from_ref(&value).cast(), len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(index)
}

/// The index of the device named `name` now.
#[allow(unsafe_code)]
fn device_index(name: &str) -> Result<u32, std::io::Error> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call, which only reads it.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Gives the socket `fd` IPsec bypass policies, both ways: a `struct xfrm_userpolicy_info`
/// (linux/xfrm.h) with action ALLOW and no template, set with `IP_XFRM_POLICY` /
/// `IPV6_XFRM_POLICY`, which the kernel prefers to every policy of its database for this
/// socket. This is how charon keeps its own IKE packets out of its tunnels
/// (`kernel_netlink_ipsec.c`, `bypass_socket`).
#[allow(unsafe_code)]
fn bypass_xfrm(fd: std::os::fd::RawFd, icmp: ICMP) -> Result<(), std::io::Error> {
    // struct xfrm_userpolicy_info: the selector (56 bytes; its family at 40), the lifetimes
    // (64 + 32), priority, index, then dir at 160 and action at 161; 168 bytes with padding.
    const SIZE: usize = 168;
    const FAMILY: usize = 40;
    const DIR: usize = 160;
    const XFRM_POLICY_IN: u8 = 0;
    const XFRM_POLICY_OUT: u8 = 1;
    let (level, option, family) = match icmp {
        ICMP::V4 => (libc::IPPROTO_IP, libc::IP_XFRM_POLICY, libc::AF_INET),
        ICMP::V6 => (libc::IPPROTO_IPV6, libc::IPV6_XFRM_POLICY, libc::AF_INET6),
    };
    let family = u16::try_from(family).unwrap_or_default().to_ne_bytes();
    for dir in [XFRM_POLICY_OUT, XFRM_POLICY_IN] {
        // Zero: an empty selector, infinite lifetimes, action ALLOW (0), no flags.
        let mut policy = [0u8; SIZE];
        policy[FAMILY..FAMILY + 2].copy_from_slice(&family);
        policy[DIR] = dir;
        let len = libc::socklen_t::try_from(SIZE).unwrap_or_default();
        // SAFETY: `fd` is the open socket of the surge-ping client being set up, which the
        // caller holds; the kernel reads `len` bytes from `policy`, which outlives the call.
        let rc = unsafe { libc::setsockopt(fd, level, option, policy.as_ptr().cast(), len) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The operating system's words for why a socket did not open. surge-ping wraps a refused
/// ping socket in advice of its own that ends with the original error; popsel gives its own
/// advice, so only the original error is kept.
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once("Original error: ") {
        Some((_, original)) => original.trim().to_owned(),
        None => text.lines().next().unwrap_or_default().to_owned(),
    }
}

/// The probe engine. Cheap to share; keep one for the life of the process so that sequence
/// numbers keep moving forward.
pub struct Prober {
    v4: Result<Family, SocketError>,
    v6: Result<Family, SocketError>,
    /// The device asked for when opened (`[probe] interface`).
    interface: Option<String>,
    identifier: PingIdentifier,
    next_sequence: AtomicU16,
}

impl Prober {
    /// Opens the sockets, sending by `settings.interface` and bypassing IPsec policies when
    /// asked (see [`ProbeSettings`]). Must run inside a tokio runtime (each socket gets a
    /// receive task).
    pub fn new(settings: &ProbeSettings) -> Result<Prober, IcmpUnavailable> {
        let interface = settings.interface.as_deref();
        let v4 = Family::open(ICMP::V4, settings);
        let v6 = Family::open(ICMP::V6, settings);
        if let (Err(e4), Err(e6)) = (&v4, &v6) {
            let detail = if e4 == e6 {
                e4.to_string()
            } else {
                format!("IPv4: {e4}; IPv6: {e6}")
            };
            return Err(match interface {
                Some(device) if e4.device || e6.device => IcmpUnavailable::NoDevice {
                    device: device.to_owned(),
                    detail,
                },
                _ => IcmpUnavailable::NoSocket { detail },
            });
        }
        Ok(Prober {
            v4,
            v6,
            interface: interface.map(str::to_owned),
            identifier: PingIdentifier(fastrand::u16(..)),
            next_sequence: AtomicU16::new(fastrand::u16(..)),
        })
    }

    /// Whether these sockets no longer send as `interface` asks: another device is asked for,
    /// or the device they send by is gone or was created again (it has another index now),
    /// so that they must be opened anew.
    pub fn device_changed(&self, interface: Option<&str>) -> bool {
        if interface != self.interface.as_deref() {
            return true;
        }
        let Some(name) = interface else {
            return false;
        };
        let now = device_index(name).ok();
        [&self.v4, &self.v6]
            .into_iter()
            .flatten()
            .any(|family| family.device_index != now)
    }

    /// The socket kind of IPv4 (else IPv6).
    pub fn socket_kind(&self) -> Option<SocketKind> {
        self.v4.as_ref().or(self.v6.as_ref()).ok().map(|f| f.kind)
    }

    fn family(&self, ip: IpAddr) -> Result<&Family, ProbeError> {
        let (family, name) = match ip {
            IpAddr::V4(_) => (&self.v4, "IPv4"),
            IpAddr::V6(_) => (&self.v6, "IPv6"),
        };
        family.as_ref().map_err(|e| ProbeError::NoSocket {
            family: name,
            detail: e.to_string(),
        })
    }

    /// Probes every distinct address of `targets`, counting requests, replies and addresses
    /// done into `progress` as they happen.
    pub async fn probe(
        &self,
        targets: &[IpAddr],
        settings: &ProbeSettings,
        progress: &Progress,
    ) -> Probes {
        let mut distinct: Vec<IpAddr> = Vec::with_capacity(targets.len());
        let mut seen = std::collections::HashSet::new();
        for &ip in targets {
            if seen.insert(ip) {
                distinct.push(ip);
            }
        }
        let total = distinct.len();
        progress.probing(total);
        let pacer = Arc::new(Pacer::new(settings.max_pps));
        let permits = Arc::new(Semaphore::new(permits(settings.concurrency)));
        let mut tasks = tokio::task::JoinSet::new();
        for (at, &ip) in distinct.iter().enumerate() {
            let family = match self.family(ip) {
                Ok(f) => f.client.clone(),
                Err(e) => {
                    tasks.spawn(async move {
                        (
                            at,
                            Probe {
                                error: Some(e),
                                ..Probe::default()
                            },
                        )
                    });
                    continue;
                }
            };
            // Reserve this address's sequence numbers now: the run is never shared.
            let first = self
                .next_sequence
                .fetch_add(settings.count, Ordering::Relaxed);
            let (pacer, permits, settings, ident, progress) = (
                pacer.clone(),
                permits.clone(),
                settings.clone(),
                self.identifier,
                progress.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let sender = Sender {
                    client: family,
                    ident,
                    pacer: &pacer,
                    progress: &progress,
                };
                (at, probe_address(&sender, ip, first, &settings).await)
            });
        }
        let mut found: Vec<Option<Probe>> = vec![None; total];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((at, probe)) = joined {
                if let Some(slot) = found.get_mut(at) {
                    *slot = Some(probe);
                }
                progress.address_done();
            }
        }
        // In the order of `targets`, not of completion: the rank core reads them in that order.
        distinct
            .into_iter()
            .zip(found)
            .filter_map(|(ip, probe)| Some((ip, probe?)))
            .collect()
    }
}

/// What one address's requests go through: its family's socket, the prober's identifier, the
/// shared packet pacer, and the counters of the run.
struct Sender<'a> {
    client: Client,
    ident: PingIdentifier,
    pacer: &'a Pacer,
    progress: &'a Progress,
}

/// Sends `count` echo requests to `ip`, `interval` apart (later if the pacer says so), each
/// waiting for its reply on its own so that a silent address costs one timeout, not `count`.
async fn probe_address(
    sender: &Sender<'_>,
    ip: IpAddr,
    first_sequence: u16,
    settings: &ProbeSettings,
) -> Probe {
    let start = Instant::now();
    let mut pings = tokio::task::JoinSet::new();
    // Whether `ip` has answered yet, for the count of addresses that answered.
    let answered = Arc::new(AtomicBool::new(false));
    for k in 0..settings.count {
        let due = settings.interval.saturating_mul(u32::from(k));
        tokio::time::sleep_until(start.checked_add(due).unwrap_or(start)).await;
        sender.pacer.wait().await;
        let mut pinger = sender.client.pinger(ip, sender.ident).await;
        pinger.timeout(settings.timeout);
        let seq = PingSequence(first_sequence.wrapping_add(k));
        let (progress, answered) = (sender.progress.clone(), answered.clone());
        progress.request_sent();
        pings.spawn(async move {
            let result = pinger.ping(seq, &PAYLOAD).await;
            if matches!(&result, Ok((packet, _)) if is_echo_reply(packet)) {
                progress.reply_received(!answered.swap(true, Ordering::Relaxed));
            }
            (k, result)
        });
    }
    let mut replies: Vec<(u16, Duration)> = Vec::with_capacity(settings.count.into());
    let mut error = None;
    while let Some(joined) = pings.join_next().await {
        match joined {
            Ok((k, Ok((packet, rtt)))) if is_echo_reply(&packet) => replies.push((k, rtt)),
            Ok((_, Ok(_))) => {
                // An ICMP error (unreachable, time exceeded) about our request: a loss.
            }
            Ok((_, Err(SurgeError::Timeout { .. }))) => {}
            Ok((_, Err(e))) => {
                error.get_or_insert_with(|| ProbeError::Send(e.to_string()));
            }
            Err(e) => {
                error.get_or_insert_with(|| ProbeError::Send(e.to_string()));
            }
        }
    }
    replies.sort_by_key(|(k, _)| *k);
    Probe {
        sent: u32::from(settings.count),
        received: replies.len() as u32,
        rtts: replies.into_iter().map(|(_, rtt)| rtt).collect(),
        error,
    }
}

fn is_echo_reply(packet: &IcmpPacket) -> bool {
    match packet {
        IcmpPacket::V4(p) => p.get_icmp_type().0 == 0,
        IcmpPacket::V6(p) => p.get_icmpv6_type().0 == 129,
    }
}

/// Hands out send slots at most `pps` a second, in the order asked.
struct Pacer {
    gap: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(pps: u32) -> Self {
        Self {
            gap: Duration::from_secs(1) / pps.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
#[path = "icmp_tests.rs"]
mod tests;
