//! The engine of sequential probing: one request to every address, then more only to those
//! the caller's decision names (the rank stage's contenders), each `follow_up` apart, until
//! none is named and every request has its reply or its timeout.
//!
//! One coordinator decides; each request is a task of its own that takes a slot of the
//! packet pacer, sends, waits for its reply and reports back. Requests get sequence numbers
//! from the prober's counter one by one, so no (address, sequence) pair is ever in flight
//! twice, as in fixed mode.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use surge_ping::{PingSequence, SurgeError};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{PAYLOAD, Pacer, Prober, is_echo_reply};
use crate::probe::adaptive::{Adaptive, Tally};
use crate::probe::{Probe, ProbeError, ProbeSettings, Probes};
use crate::progress::Progress;

/// Which addresses get another request, given each PoP's addresses and their tallies.
pub type Decision<'a> = dyn Fn(&[Vec<usize>], &[Tally]) -> Vec<bool> + Sync + 'a;

/// What a request's task reports.
enum Event {
    /// It left (after waiting for its pacer slot).
    Sent { address: usize, k: u32, at: Instant },
    /// Its reply (`Ok`), or none (`Err`: the timeout, an ICMP error, a send error).
    Ended {
        address: usize,
        k: u32,
        reply: Result<Duration, Option<ProbeError>>,
    },
}

/// One address, as the coordinator follows it.
#[derive(Default)]
struct Followed {
    tally: Tally,
    /// Replies with the number of their request, to put them in send order.
    replies: Vec<(u32, Duration)>,
    /// Requests under way: when each left (`None`: still waiting for its pacer slot).
    waiting: HashMap<u32, Option<Instant>>,
    last_request: Option<Instant>,
    error: Option<ProbeError>,
}

impl Followed {
    fn settle(&mut self, k: u32, reply: Result<Duration, Option<ProbeError>>) {
        self.waiting.remove(&k);
        match reply {
            Ok(rtt) => {
                let at = self.replies.partition_point(|(j, _)| *j < k);
                self.replies.insert(at, (k, rtt));
                self.tally.rtts = self.replies.iter().map(|(_, rtt)| *rtt).collect();
            }
            Err(error) => {
                self.tally.lost = self.tally.lost.saturating_add(1);
                if let Some(error) = error {
                    self.error.get_or_insert(error);
                }
            }
        }
    }

    /// The tally the decision sees: a request still waiting while a later one to the same
    /// address has had its reply counts as lost already (echo replies come back in order on
    /// one path), so that a lossy address leaves the contest at its next reply rather than
    /// one timeout later, holding a place in the top meanwhile. Its reply, should it still
    /// come, counts in the result.
    fn for_decision(&self) -> Tally {
        let mut tally = self.tally.clone();
        if let Some(&(latest, _)) = self.replies.last() {
            let overtaken = self.waiting.keys().filter(|&&k| k < latest).count();
            let overtaken = u32::try_from(overtaken).unwrap_or(u32::MAX);
            tally.lost = tally.lost.saturating_add(overtaken);
        }
        tally
    }

    /// Done: no more requests wanted now, none under way.
    fn idle(&self, wanted: bool) -> bool {
        !wanted && self.waiting.is_empty()
    }
}

impl Prober {
    /// Sequential probing of `pops` (each PoP's addresses). At each tick `wanted(pops,
    /// tallies)` says which addresses get another request (`pops` as indices into `tallies`);
    /// `settings` gives the timeout and the packet rate; requests, replies and addresses done
    /// with are counted into `progress` (by the coordinator, as it hears of them).
    pub async fn probe_sequential(
        &self,
        pops: &[Vec<IpAddr>],
        settings: &ProbeSettings,
        adaptive: &Adaptive,
        wanted: &Decision<'_>,
        progress: &Progress,
    ) -> Probes {
        let (addresses, groups) = index(pops);
        progress.probing(addresses.len());
        let mut followed: Vec<Followed> = addresses.iter().map(|_| Followed::default()).collect();
        // An address without a socket for its family is done at once, as in fixed mode.
        let mut unprobeable = Probes::default();
        for (i, &ip) in addresses.iter().enumerate() {
            if let Err(e) = self.family(ip) {
                followed[i].tally.sent = u32::from(adaptive.cap);
                unprobeable.insert(
                    ip,
                    Probe {
                        error: Some(e),
                        ..Probe::default()
                    },
                );
            }
        }
        let pacer = Arc::new(Pacer::new(settings.max_pps));
        let (events, mut inbox) = mpsc::unbounded_channel();
        let tick = (adaptive.follow_up / 4).max(Duration::from_millis(2));
        let mut done_before = usize::MAX;
        loop {
            while let Ok(event) = inbox.try_recv() {
                take(&mut followed, event, progress);
            }
            let now = Instant::now();
            for f in &mut followed {
                f.tally.oldest_waiting = f
                    .waiting
                    .values()
                    .map(|at| at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at)))
                    .max();
            }
            let tallies: Vec<Tally> = followed.iter().map(Followed::for_decision).collect();
            let wanted = wanted(&groups, &tallies);
            let done = followed
                .iter()
                .zip(&wanted)
                .filter(|(f, w)| f.idle(**w))
                .count();
            if done != done_before {
                progress.addresses_done(done);
                done_before = done;
            }
            if done == addresses.len() {
                break;
            }
            for (i, _) in wanted.iter().enumerate().filter(|(_, w)| **w) {
                let gap = adaptive.gap(&followed[i].tally);
                let due = followed[i]
                    .last_request
                    .is_none_or(|last| now.saturating_duration_since(last) >= gap);
                if due {
                    self.request(i, addresses[i], &mut followed[i], settings, &pacer, &events);
                }
            }
            tokio::select! {
                Some(event) = inbox.recv() => take(&mut followed, event, progress),
                _ = tokio::time::sleep(tick) => {}
            }
        }
        // In the order of the addresses, as the rank core reads them.
        let mut results = Probes::with_capacity_and_hasher(addresses.len(), Default::default());
        for (ip, f) in addresses.into_iter().zip(followed) {
            let probe = unprobeable.swap_remove(&ip).unwrap_or_else(|| Probe {
                sent: f.tally.sent,
                received: u32::try_from(f.replies.len()).unwrap_or(u32::MAX),
                rtts: f.replies.into_iter().map(|(_, rtt)| rtt).collect(),
                error: f.error,
            });
            results.insert(ip, probe);
        }
        results
    }

    /// Starts one request to `ip`, the `followed` address `address`.
    fn request(
        &self,
        address: usize,
        ip: IpAddr,
        followed: &mut Followed,
        settings: &ProbeSettings,
        pacer: &Arc<Pacer>,
        events: &mpsc::UnboundedSender<Event>,
    ) {
        let Ok(family) = self.family(ip) else {
            return;
        };
        let client = family.client.clone();
        let k = followed.tally.sent;
        followed.tally.sent = k.saturating_add(1);
        followed.waiting.insert(k, None);
        followed.last_request = Some(Instant::now());
        let seq = PingSequence(self.next_sequence.fetch_add(1, Ordering::Relaxed));
        let (ident, timeout) = (self.identifier, settings.timeout);
        let (pacer, events) = (pacer.clone(), events.clone());
        tokio::spawn(async move {
            pacer.wait().await;
            let mut pinger = client.pinger(ip, ident).await;
            pinger.timeout(timeout);
            let at = Instant::now();
            let _ = events.send(Event::Sent { address, k, at });
            let reply = match pinger.ping(seq, &PAYLOAD).await {
                Ok((packet, rtt)) if is_echo_reply(&packet) => Ok(rtt),
                // An ICMP error (unreachable, time exceeded) about our request: a loss.
                Ok(_) | Err(SurgeError::Timeout { .. }) => Err(None),
                Err(e) => Err(Some(ProbeError::Send(e.to_string()))),
            };
            let _ = events.send(Event::Ended { address, k, reply });
        });
    }
}

fn take(followed: &mut [Followed], event: Event, progress: &Progress) {
    match event {
        Event::Sent { address, k, at } => {
            progress.request_sent();
            if let Some(slot) = followed
                .get_mut(address)
                .and_then(|f| f.waiting.get_mut(&k))
            {
                *slot = Some(at);
            }
        }
        Event::Ended { address, k, reply } => {
            if let Some(f) = followed.get_mut(address) {
                if reply.is_ok() {
                    progress.reply_received(f.replies.is_empty());
                }
                f.settle(k, reply);
            }
        }
    }
}

/// The distinct addresses, and each PoP's as indices into them (an address two PoPs share is
/// probed once, for both).
fn index(pops: &[Vec<IpAddr>]) -> (Vec<IpAddr>, Vec<Vec<usize>>) {
    let mut addresses = Vec::new();
    let mut at: HashMap<IpAddr, usize> = HashMap::new();
    let groups = pops
        .iter()
        .map(|ips| {
            let mut group: Vec<usize> = ips
                .iter()
                .map(|&ip| {
                    *at.entry(ip).or_insert_with(|| {
                        addresses.push(ip);
                        addresses.len() - 1
                    })
                })
                .collect();
            group.dedup();
            group
        })
        .collect();
    (addresses, groups)
}
