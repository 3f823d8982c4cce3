//! A TCP relay from a lab namespace's loopback to an address on the host's loopback: popsel
//! runs in the branch namespace, the in-process emulator listens on the host's 127.0.0.1, and
//! each namespace has its own loopback. The relay's listener is made by a thread moved into
//! the namespace, which then moves back to the host's namespace, where it connects each
//! accepted connection to the target. Packets stay on the two loopbacks.

use std::fs::File;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use super::netns;

/// How often the accepting thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A running relay; on drop it stops accepting and shuts the relayed connections down.
pub struct Forward {
    listen: SocketAddr,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Listens on 127.0.0.1 (a free port) inside namespace `ns` and relays to `target`.
    pub fn start(ns: &str, target: SocketAddr) -> Result<Forward, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (ns, flag, open) = (ns.to_owned(), stop.clone(), streams.clone());
        let thread = std::thread::Builder::new()
            .name("ipsec-lab-forward".into())
            .spawn(move || match listen_in(&ns) {
                Ok(listener) => {
                    let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
                    accept_loop(&listener, target, &flag, &open);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .map_err(|e| format!("start the relay thread: {e}"))?;
        let mut forward = Forward {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            stop,
            streams,
            thread: Some(thread),
        };
        forward.listen = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the relay did not start".to_owned())??;
        Ok(forward)
    }

    /// Where it listens, inside the namespace.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// `http://127.0.0.1:PORT`, for a config read inside the namespace.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for s in self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A listener on 127.0.0.1:0 of namespace `ns`, made by the calling thread, which then goes
/// back to the namespace it was in.
fn listen_in(ns: &str) -> Result<TcpListener, String> {
    let home = File::open("/proc/thread-self/ns/net").map_err(|e| format!("own netns: {e}"))?;
    netns::enter(ns)?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen in {ns}: {e}"));
    setns(&home, CloneFlags::CLONE_NEWNET).map_err(|e| format!("back from {ns}: {e}"))?;
    let listener = listener?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("non-blocking listener: {e}"))?;
    Ok(listener)
}

fn accept_loop(
    listener: &TcpListener,
    target: SocketAddr,
    stop: &AtomicBool,
    open: &Mutex<Vec<TcpStream>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((inside, _)) => {
                let _ = inside.set_nonblocking(false);
                let Ok(outside) = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                else {
                    continue;
                };
                let mut list = open.lock().unwrap_or_else(|e| e.into_inner());
                for s in [&inside, &outside] {
                    if let Ok(clone) = s.try_clone() {
                        list.push(clone);
                    }
                }
                pipe(&inside, &outside);
                pipe(&outside, &inside);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Copies `from` to `to` on a thread of its own until `from` ends, then ends `to`'s writing.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("ipsec-lab-pipe".into())
        .spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
}
