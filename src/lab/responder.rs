//! The ICMP responder: reads IPv4 echo requests from the lab's TUN device and writes the echo
//! replies back after the delay of the destination address (± jitter), leaving out the share
//! `loss`. Addresses it has no link for stay silent, as PoPs that drop ICMP do.
//!
//! Reading runs on the lab's tokio runtime. Replies are sent by a dedicated thread, the
//! *clock*, which sleeps on a condition variable until the earliest reply is due: tokio's timer
//! has a granularity of 1 ms (a reply would leave 0 to 1 ms late, uniformly), while a thread
//! sleeping to an exact deadline wakes within tens of microseconds, well inside the 0.5 ms the
//! benchmark compares popsel with fping to. The tests and benchmarks give this thread and the
//! reader a real-time priority (`chrt --fifo`, through [`Options::prepare_thread`]), so a busy
//! machine does not delay them either. [`Stats`] records how late replies actually left
//! (typically 10 to 30 µs on average).
//!
//! [`Options::prepare_thread`]: super::Options::prepare_thread
//!
//! Loss comes in two modes ([`LossMode`], chosen per world):
//! - *even* (the default): spread evenly rather than drawn at random. Each address keeps an
//!   accumulator that starts at 0.5 and gains `loss` per request, and a request is dropped
//!   whenever it reaches 1. Over any run of requests the dropped share is the configured one
//!   (40% loss: exactly 2 of every 5), so a short probe run sees the loss the world says and a
//!   test can rely on it.
//! - *random*: each request is dropped independently with probability `loss` (Bernoulli),
//!   drawn from an RNG of its own, seeded per lab start ([`Responder::random_loss`]). A short
//!   run then sees what a real lossy path shows: 5 requests to a 40%-lossy address all come
//!   back 7.8% of the time (0.6⁵). Benchmarks of how a prober copes with loss need this.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::world::{Link, LossMode};

/// A poisoned lock only means a panic elsewhere mid-update; counters and queue stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Internet checksum (RFC 1071) of `data`: one's complement of the one's complement sum
/// of its 16-bit big-endian words, an odd last byte padded with zero. A header or message
/// whose checksum field is right sums to 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request, as far as the responder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoRequest {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    /// IPv4 header length in bytes.
    pub header_len: usize,
    /// IPv4 total length (header and ICMP message).
    pub total_len: usize,
}

/// Parses `packet` (an IPv4 datagram, no packet-information prefix) as an ICMP echo request:
/// version 4, a header of 20 to 60 bytes with a good checksum, not a fragment, protocol 1,
/// ICMP type 8 code 0 with a good checksum. Anything else is `None`.
pub fn parse_echo_request(packet: &[u8]) -> Option<EchoRequest> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total_len < header_len + 8 || total_len > packet.len() {
        return None;
    }
    // More-fragments flag or a fragment offset: not a whole datagram.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return None;
    }
    if packet[9] != 1 || checksum(&packet[..header_len]) != 0 {
        return None;
    }
    let icmp = &packet[header_len..total_len];
    if icmp[0] != 8 || icmp[1] != 0 || checksum(icmp) != 0 {
        return None;
    }
    let addr =
        |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    Some(EchoRequest {
        source: addr(12),
        destination: addr(16),
        header_len,
        total_len,
    })
}

/// The echo reply to `packet`, a request `parse_echo_request` accepted: addresses swapped,
/// TTL 64, ICMP type 0, both checksums recomputed; identifier, sequence and data kept.
pub fn echo_reply(packet: &[u8], request: &EchoRequest) -> Vec<u8> {
    let mut reply = packet[..request.total_len].to_vec();
    reply[12..16].copy_from_slice(&request.destination.octets());
    reply[16..20].copy_from_slice(&request.source.octets());
    reply[8] = 64;
    reply[10..12].copy_from_slice(&[0, 0]);
    let ip_sum = checksum(&reply[..request.header_len]);
    reply[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let icmp = &mut reply[request.header_len..];
    icmp[0] = 0;
    icmp[2..4].copy_from_slice(&[0, 0]);
    let icmp_sum = checksum(icmp);
    icmp[2..4].copy_from_slice(&icmp_sum.to_be_bytes());
    reply
}

/// What one address saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressStats {
    /// Echo requests received.
    pub requests: u64,
    /// Replies scheduled (requests less those dropped as loss; 0 for a silent address).
    pub replies: u64,
}

/// Counters of a running responder.
#[derive(Debug, Default)]
pub struct Stats {
    pub per_address: Mutex<HashMap<Ipv4Addr, AddressStats>>,
    /// Packets from the TUN that were not IPv4 echo requests (IPv6 router solicitations...).
    pub ignored: AtomicU64,
    /// Replies written to the TUN.
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    /// How late replies left, summed (µs) and at most (µs).
    pub late_us_total: AtomicU64,
    pub late_us_max: AtomicU64,
    /// Replies that left more than 1 ms late.
    pub late_over_1ms: AtomicU64,
}

impl Stats {
    /// A copy of the per-address counters.
    pub fn snapshot(&self) -> HashMap<Ipv4Addr, AddressStats> {
        lock(&self.per_address).clone()
    }

    /// Mean and largest lateness of the replies sent so far.
    pub fn lateness(&self) -> (Duration, Duration) {
        let sent = self.sent.load(Ordering::Relaxed).max(1);
        (
            Duration::from_micros(self.late_us_total.load(Ordering::Relaxed) / sent),
            Duration::from_micros(self.late_us_max.load(Ordering::Relaxed)),
        )
    }
}

struct Due {
    at: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
    stop: bool,
}

/// Replies waiting for their time, and the thread that sends them.
#[derive(Default)]
pub struct Clock {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Clock {
    /// Queues `packet` to be sent at `at`.
    pub fn schedule(&self, at: Instant, packet: Vec<u8>) {
        let mut q = lock(&self.queue);
        q.seq += 1;
        let seq = q.seq;
        let earliest = q.heap.peek().is_none_or(|Reverse(d)| at < d.at);
        q.heap.push(Reverse(Due { at, seq, packet }));
        drop(q);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Ends [`Clock::run`]; replies not yet due are not sent.
    pub fn stop(&self) {
        lock(&self.queue).stop = true;
        self.wake.notify_one();
    }

    /// Sends every reply when it is due, through `send`, until stopped.
    pub fn run(&self, send: impl Fn(&[u8]) -> std::io::Result<usize>, stats: &Stats) {
        let mut q = lock(&self.queue);
        let mut ready: Vec<Due> = Vec::new();
        loop {
            if q.stop {
                return;
            }
            let now = Instant::now();
            while q.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
                let Some(Reverse(due)) = q.heap.pop() else {
                    break;
                };
                ready.push(due);
            }
            if !ready.is_empty() {
                drop(q);
                for due in ready.drain(..) {
                    let late = Instant::now().saturating_duration_since(due.at);
                    let mut result = send(&due.packet);
                    // The TUN's descriptor is non-blocking (shared with the async reader); a
                    // TUN write practically never blocks, but retry briefly if it does.
                    for _ in 0..100 {
                        match &result {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_micros(20));
                                result = send(&due.packet);
                            }
                            _ => break,
                        }
                    }
                    if result.is_ok() {
                        let us = late.as_micros() as u64;
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        stats.late_us_total.fetch_add(us, Ordering::Relaxed);
                        stats.late_us_max.fetch_max(us, Ordering::Relaxed);
                        if us > 1000 {
                            stats.late_over_1ms.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                q = lock(&self.queue);
                continue;
            }
            q = match q.heap.peek() {
                Some(Reverse(d)) => {
                    let wait = d.at.saturating_duration_since(now);
                    self.wake
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// Decides, per request, whether and when to answer.
pub struct Responder {
    links: HashMap<Ipv4Addr, Link>,
    loss_credit: HashMap<Ipv4Addr, f64>,
    /// Draws the jitter (seeded by the world, so even-loss runs repeat).
    rng: fastrand::Rng,
    /// Draws the losses in random mode; `None`: even loss. Apart from `rng` so that random
    /// loss leaves the jitter sequence as it is.
    loss_rng: Option<fastrand::Rng>,
    stats: Arc<Stats>,
}

impl Responder {
    /// A responder with even loss; `seed` seeds the jitter.
    pub fn new(links: HashMap<Ipv4Addr, Link>, seed: u64, stats: Arc<Stats>) -> Responder {
        Responder {
            links,
            loss_credit: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            loss_rng: None,
            stats,
        }
    }

    /// Draws loss at random (each request dropped with probability `loss`), from `seed`.
    pub fn random_loss(mut self, seed: u64) -> Responder {
        self.loss_rng = Some(fastrand::Rng::with_seed(seed));
        self
    }

    /// The loss mode in use.
    pub fn loss_mode(&self) -> LossMode {
        match self.loss_rng {
            Some(_) => LossMode::Random,
            None => LossMode::Even,
        }
    }

    /// Whether the next request to `destination`, over `link`, goes unanswered.
    fn drops(&mut self, destination: Ipv4Addr, link: &Link) -> bool {
        if let Some(rng) = &mut self.loss_rng {
            // `f64()` is in [0, 1): loss 0 never drops, loss 1 always does.
            return rng.f64() < link.loss;
        }
        let credit = self.loss_credit.entry(destination).or_insert(0.5);
        *credit += link.loss;
        if *credit >= 1.0 {
            *credit -= 1.0;
            return true;
        }
        false
    }

    /// The reply to `packet`, received at `arrival`, and when to send it; `None` for no reply
    /// (not an echo request, a silent address, or a request lost on purpose).
    pub fn answer(&mut self, packet: &[u8], arrival: Instant) -> Option<(Instant, Vec<u8>)> {
        let Some(request) = parse_echo_request(packet) else {
            self.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let link = self.links.get(&request.destination).copied();
        let answer = link.and_then(|link| {
            if self.drops(request.destination, &link) {
                return None;
            }
            let jitter = link.jitter.as_secs_f64() * (self.rng.f64() * 2.0 - 1.0);
            let delay = (link.delay.as_secs_f64() + jitter).max(0.0);
            Some((
                arrival + Duration::from_secs_f64(delay),
                echo_reply(packet, &request),
            ))
        });
        let mut stats = lock(&self.stats.per_address);
        let s = stats.entry(request.destination).or_default();
        s.requests += 1;
        s.replies += u64::from(answer.is_some());
        answer
    }
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
