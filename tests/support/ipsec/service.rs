//! The service behind every PoP, and the question "which PoP carried this packet?".
//!
//! Each PoP namespace holds [`SERVICE_ADDRESS`] on its loopback, and a thread of the test
//! process, moved into that namespace, answers UDP datagrams to [`SERVICE_PORT`] with the PoP's
//! name. The branch has no route to the address but the tunnels' (table 220), so an answer can
//! only come through a tunnel, and its text says which PoP terminated it. [`ask`] sends the
//! question from a thread moved into the branch's namespace.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::netns;

/// The address every PoP serves (RFC 2544 range, on each PoP's `lo`, /32).
pub const SERVICE_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const SERVICE_PORT: u16 = 7777;
/// What a question carries; the server answers anything else too, but only this is asked.
const QUESTION: &[u8] = b"who carried this?";
/// How often a server looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A PoP's answering thread; stopped and joined on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts answering `name` in namespace `ns`; returns once the socket is bound.
    pub fn start(ns: &str, name: &str) -> Result<Server, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ns, name, flag) = (ns.to_owned(), name.to_owned(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("ipsec-lab-{name}"))
            .spawn(move || {
                let bound = netns::enter(&ns).and_then(|()| {
                    let socket = UdpSocket::bind(SocketAddrV4::new(SERVICE_ADDRESS, SERVICE_PORT))
                        .map_err(|e| {
                            format!("bind {SERVICE_ADDRESS}:{SERVICE_PORT} in {ns}: {e}")
                        })?;
                    socket
                        .set_read_timeout(Some(POLL))
                        .map_err(|e| e.to_string())?;
                    Ok(socket)
                });
                let socket = match bound {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut buf = [0u8; 512];
                while !flag.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(name.as_bytes(), from);
                    }
                }
            })
            .map_err(|e| format!("start the service thread: {e}"))?;
        let server = Server {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the service thread did not start".into()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the service once from namespace `ns` and returns the answer's text, or `None` when
/// nothing answers within `wait` (no route, no tunnel, a dark PoP, ...).
pub fn ask(ns: &str, wait: Duration) -> Result<Option<String>, String> {
    let ns = ns.to_owned();
    std::thread::Builder::new()
        .name("ipsec-lab-ask".into())
        .spawn(move || -> Result<Option<String>, String> {
            netns::enter(&ns)?;
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind in {ns}: {e}"))?;
            socket
                .set_read_timeout(Some(wait))
                .map_err(|e| e.to_string())?;
            let to = SocketAddrV4::new(SERVICE_ADDRESS, SERVICE_PORT);
            // No route (no tunnel installed) fails the send itself: nothing carried it.
            if socket.send_to(QUESTION, to).is_err() {
                return Ok(None);
            }
            let mut buf = [0u8; 512];
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from == to.into() => {
                        return Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned()));
                    }
                    // Not the service (cannot happen in the lab, but never taken as an answer).
                    Ok(_) => continue,
                    Err(_) => return Ok(None),
                }
            }
        })
        .map_err(|e| format!("start the asking thread: {e}"))?
        .join()
        .map_err(|_| "the asking thread panicked".to_owned())?
}
