//! The ICMP responder: reads IPv4 echo requests from the lab's TUN device and writes the echo
//! replies back after the delay of the destination address (± jitter), leaving out the share
//! `loss`. Addresses it has no link for stay silent, as PoPs that drop ICMP do.
//!
//! Reading runs on the lab's tokio runtime. Replies are sent by a dedicated thread, the
//! *clock*, which sleeps on a condition variable until the earliest reply is due: tokio's timer
//! has a granularity of 1 ms (a reply would leave 0 to 1 ms late, uniformly), while a thread
//! sleeping to an exact deadline wakes within tens of microseconds, well inside the 0.5 ms the
//! benchmark compares popsel with fping to. The lab gives this thread and the reader a
//! real-time priority (`chrt --fifo`), so a busy machine does not delay them either. [`Stats`]
//! records how late replies actually left (typically 10 to 30 µs on average).
//!
//! Loss is spread evenly rather than drawn at random: each address keeps an accumulator that
//! starts at 0.5 and gains `loss` per request, and a request is dropped whenever it reaches 1.
//! Over any run of requests the dropped share is the configured one (40% loss: exactly 2 of
//! every 5), so a short probe run sees the loss the world says and a test can rely on it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::world::Link;

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
        self.per_address.lock().expect("stats lock").clone()
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
        let mut q = self.queue.lock().expect("clock lock");
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
        self.queue.lock().expect("clock lock").stop = true;
        self.wake.notify_one();
    }

    /// Sends every reply when it is due, through `send`, until stopped.
    pub fn run(&self, send: impl Fn(&[u8]) -> std::io::Result<usize>, stats: &Stats) {
        let mut q = self.queue.lock().expect("clock lock");
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
                q = self.queue.lock().expect("clock lock");
                continue;
            }
            q = match q.heap.peek() {
                Some(Reverse(d)) => {
                    let wait = d.at.saturating_duration_since(now);
                    self.wake.wait_timeout(q, wait).expect("clock lock").0
                }
                None => self.wake.wait(q).expect("clock lock"),
            };
        }
    }
}

/// Decides, per request, whether and when to answer.
pub struct Responder {
    links: HashMap<Ipv4Addr, Link>,
    loss_credit: HashMap<Ipv4Addr, f64>,
    rng: fastrand::Rng,
    stats: Arc<Stats>,
}

impl Responder {
    pub fn new(links: HashMap<Ipv4Addr, Link>, seed: u64, stats: Arc<Stats>) -> Responder {
        Responder {
            links,
            loss_credit: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            stats,
        }
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
            let credit = self.loss_credit.entry(request.destination).or_insert(0.5);
            *credit += link.loss;
            if *credit >= 1.0 {
                *credit -= 1.0;
                return None;
            }
            let jitter = link.jitter.as_secs_f64() * (self.rng.f64() * 2.0 - 1.0);
            let delay = (link.delay.as_secs_f64() + jitter).max(0.0);
            Some((
                arrival + Duration::from_secs_f64(delay),
                echo_reply(packet, &request),
            ))
        });
        let mut stats = self.stats.per_address.lock().expect("stats lock");
        let s = stats.entry(request.destination).or_default();
        s.requests += 1;
        s.replies += u64::from(answer.is_some());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request as Linux sends it: 20-byte header, 8-byte ICMP header, 56 bytes of data.
    fn request(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
        let mut p = vec![0u8; 84];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&84u16.to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6] = 0x40; // don't fragment
        p[8] = 64;
        p[9] = 1;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p[20] = 8;
        p[24..26].copy_from_slice(&id.to_be_bytes());
        p[26..28].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in p[28..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let sum = checksum(&p[20..]);
        p[22..24].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn checksum_matches_rfc_1071() {
        // The example of RFC 1071 section 3: sum 0xddf2, checksum its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // A well-known IPv4 header (checksum 0xb861) sums to zero.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0);
        // An odd length pads with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn parses_an_echo_request_and_rejects_the_rest() {
        let p = request([198, 19, 255, 254], [198, 18, 0, 7], 0xbeef, 3);
        let r = parse_echo_request(&p).expect("an echo request");
        assert_eq!(r.source, Ipv4Addr::new(198, 19, 255, 254));
        assert_eq!(r.destination, Ipv4Addr::new(198, 18, 0, 7));
        assert_eq!((r.header_len, r.total_len), (20, 84));

        let mut bad_ip_sum = p.clone();
        bad_ip_sum[10] ^= 1;
        assert_eq!(parse_echo_request(&bad_ip_sum), None);
        let mut bad_icmp_sum = p.clone();
        bad_icmp_sum[40] ^= 1;
        assert_eq!(parse_echo_request(&bad_icmp_sum), None);
        let mut reply = p.clone();
        reply[20] = 0;
        reply[22..24].copy_from_slice(&[0, 0]);
        let sum = checksum(&reply[20..]);
        reply[22..24].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_echo_request(&reply), None, "a reply is not a request");
        let mut v6 = p.clone();
        v6[0] = 0x60;
        assert_eq!(parse_echo_request(&v6), None);
        assert_eq!(parse_echo_request(&p[..30]), None, "truncated");
        assert_eq!(parse_echo_request(&[]), None);
        let mut fragment = p.clone();
        fragment[6] = 0x20; // more fragments
        fragment[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&fragment[..20]);
        fragment[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_echo_request(&fragment), None);
    }

    #[test]
    fn the_reply_swaps_addresses_and_keeps_id_sequence_and_data() {
        let p = request([198, 19, 255, 254], [198, 18, 0, 7], 0xbeef, 3);
        let r = parse_echo_request(&p).expect("request");
        let reply = echo_reply(&p, &r);
        assert_eq!(reply.len(), 84);
        assert_eq!(&reply[12..16], &[198, 18, 0, 7]);
        assert_eq!(&reply[16..20], &[198, 19, 255, 254]);
        assert_eq!(checksum(&reply[..20]), 0, "IPv4 checksum");
        assert_eq!(checksum(&reply[20..]), 0, "ICMP checksum");
        assert_eq!((reply[20], reply[21]), (0, 0), "echo reply");
        assert_eq!(&reply[24..], &p[24..], "identifier, sequence and data");
    }

    #[test]
    fn answers_after_the_delay_drops_evenly_and_ignores_unknown_addresses() {
        let ms = Duration::from_millis;
        let links = HashMap::from([
            (
                Ipv4Addr::new(198, 18, 0, 1),
                Link {
                    delay: ms(20),
                    jitter: Duration::ZERO,
                    loss: 0.0,
                },
            ),
            (
                Ipv4Addr::new(198, 18, 0, 2),
                Link {
                    delay: ms(50),
                    jitter: ms(5),
                    loss: 0.4,
                },
            ),
        ]);
        let stats = Arc::new(Stats::default());
        let mut r = Responder::new(links, 1, stats.clone());
        let t0 = Instant::now();
        let src = [198, 19, 255, 254];
        let (at, _) = r
            .answer(&request(src, [198, 18, 0, 1], 1, 1), t0)
            .expect("answers");
        assert_eq!(at - t0, ms(20));
        let mut answered = 0;
        for seq in 0..10 {
            if let Some((at, _)) = r.answer(&request(src, [198, 18, 0, 2], 1, seq), t0) {
                answered += 1;
                assert!((ms(45)..=ms(55)).contains(&(at - t0)), "{:?}", at - t0);
            }
        }
        assert_eq!(answered, 6, "40% of 10 dropped");
        assert!(r.answer(&request(src, [198, 18, 0, 3], 1, 1), t0).is_none());
        assert!(r.answer(&[0x60; 40], t0).is_none());
        let s = stats.snapshot();
        assert_eq!(s[&Ipv4Addr::new(198, 18, 0, 2)].requests, 10);
        assert_eq!(s[&Ipv4Addr::new(198, 18, 0, 2)].replies, 6);
        assert_eq!(s[&Ipv4Addr::new(198, 18, 0, 3)].replies, 0);
        assert_eq!(stats.ignored.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_clock_sends_in_time_order() {
        let clock = Arc::new(Clock::default());
        let stats = Arc::new(Stats::default());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (c, s, out) = (clock.clone(), stats.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            c.run(
                |p| {
                    out.lock().unwrap().push((p[0], Instant::now()));
                    Ok(p.len())
                },
                &s,
            )
        });
        let t0 = Instant::now();
        clock.schedule(t0 + Duration::from_millis(30), vec![3]);
        clock.schedule(t0 + Duration::from_millis(10), vec![1]);
        clock.schedule(t0 + Duration::from_millis(20), vec![2]);
        std::thread::sleep(Duration::from_millis(60));
        clock.stop();
        thread.join().unwrap();
        let sent = sent.lock().unwrap();
        let order: Vec<u8> = sent.iter().map(|(b, _)| *b).collect();
        assert_eq!(order, [1, 2, 3]);
        for (b, at) in sent.iter() {
            let want = Duration::from_millis(10 * u64::from(*b));
            assert!(*at - t0 >= want, "never early");
        }
        assert_eq!(stats.sent.load(Ordering::Relaxed), 3);
    }
}
