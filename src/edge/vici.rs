//! A minimal VICI client for strongSwan's charon: load and unload connections and PSKs,
//! initiate and terminate SAs, read IKE_SA and CHILD_SA state. [`message`] is the wire format.
//!
//! Why not the `rsvici` crate (0.1.5): it races reads that are not cancel-safe in `select!`
//! (charon writes a frame's length and body in separate writes, so a read cancelled between
//! them loses the stream), does not check `success = no` on plain requests, and has capacity-1
//! channels.
//!
//! How this one stays in step with charon (`src/libcharon/plugins/vici/README.md`):
//! - One task owns the socket's read half and reads whole frames only, passing each on through
//!   a bounded channel (which holds charon back when nobody reads, instead of growing); nothing
//!   else reads, so no cancelled future can leave half a frame behind.
//! - There are no sequence numbers, so charon serves one command at a time on a connection and
//!   so does [`Vici`]: every command takes `&mut self`. A blocking [`Vici::initiate`] holds the
//!   connection until charon answers; to read SA state meanwhile, initiate with
//!   [`Wait::Background`] or use another connection ([`Vici::connect`] is cheap).
//! - Events may come in the middle of any command (README, "Events"): those of the stream a
//!   command asked for (`list-sa` for `list-sas`) are kept, any other is dropped.
//! - Every command has a deadline ([`Vici::connect`]'s timeout; [`Vici::initiate`] and
//!   [`Vici::terminate`] add the time charon is asked to wait). A command that timed out, or
//!   whose future was dropped before its answer came, may still be answered later, and that
//!   answer would be taken for the next command's: the connection is then out of use, each
//!   call says so ([`ViciError::Broken`]), and the caller connects anew.
//! - `success = no` is an error carrying charon's `errmsg` ([`ViciError::Failed`]), as in
//!   strongSwan's Python client (`session.py`, `request`).

pub mod message;
pub mod model;

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use message::{DecodeError, EncodeError, FrameDecoder, Message, Packet, shown};
use model::number;
pub use model::{
    Action, ChildSa, ChildSpec, ChildState, Childless, ConnSpec, IkeSa, IkeState, LoadedConn,
};

/// Frames read ahead of the command that takes them.
const FRAME_QUEUE: usize = 16;
/// The most event bytes one command may stream: far more than the few SAs and connections of
/// a branch router, and a bound on what a runaway stream can cost.
pub const STREAM_MAX: usize = 16 * 1024 * 1024;
/// The longest `errmsg` quoted in an error.
const ERRMSG_MAX: usize = 200;

/// A failed VICI call. None quotes a value but charon's `errmsg`, which never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ViciError {
    #[error("cannot connect to charon's VICI socket {}: {detail}", .path.display())]
    Connect { path: PathBuf, detail: String },
    #[error("charon did not answer {command} within {:.1}s", .after.as_secs_f64())]
    Timeout { command: String, after: Duration },
    #[error("charon refused {command}: {errmsg}")]
    Failed { command: String, errmsg: String },
    #[error("charon does not know the VICI command {command}")]
    UnknownCommand { command: String },
    #[error("charon does not know the VICI event {event}")]
    UnknownEvent { event: String },
    #[error("charon streamed more than {STREAM_MAX} bytes of events for {command}")]
    StreamTooLarge { command: String },
    #[error("charon's answer to {command} is malformed: {what}")]
    Malformed { command: String, what: String },
    #[error("charon sent {got} where {expected} was due")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    #[error("charon closed the VICI connection")]
    Closed,
    #[error("charon closed the VICI connection in the middle of a frame")]
    ClosedMidFrame,
    #[error("VICI connection: {0}")]
    Io(String),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("the VICI connection is out of use ({reason}); connect anew")]
    Broken { reason: String },
}

impl ViciError {
    /// Whether the connection is still in step after this error: charon answered in full.
    fn leaves_connection_usable(&self) -> bool {
        matches!(
            self,
            ViciError::Failed { .. }
                | ViciError::UnknownCommand { .. }
                | ViciError::UnknownEvent { .. }
                | ViciError::StreamTooLarge { .. }
        )
    }
}

/// A connection to charon's VICI socket. Dropping it closes the connection.
pub struct Vici {
    writer: OwnedWriteHalf,
    /// Whole packets (with their frame's length) from the reader task, or why it stopped.
    frames: mpsc::Receiver<Result<(Packet, usize), ViciError>>,
    reader: JoinHandle<()>,
    timeout: Duration,
    /// Why the connection is out of use; set while a command is under way, so that a command
    /// whose future is dropped leaves it set.
    broken: Option<String>,
}

impl std::fmt::Debug for Vici {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vici")
            .field("timeout", &self.timeout)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Drop for Vici {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads whole frames and passes them on, until the connection ends or breaks, or the client
/// is gone. Only this task reads the socket.
async fn read_frames(
    mut read: OwnedReadHalf,
    frames: mpsc::Sender<Result<(Packet, usize), ViciError>>,
) {
    let mut decoder = FrameDecoder::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            let next = match decoder.next_packet() {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => break,
                Err(e) => Err(e.into()),
            };
            let stop = next.is_err();
            if frames.send(next).await.is_err() || stop {
                return;
            }
        }
        let end = match read.read(&mut chunk).await {
            Ok(0) if decoder.is_mid_frame() => ViciError::ClosedMidFrame,
            Ok(0) => ViciError::Closed,
            Ok(n) => {
                decoder.push(chunk.get(..n).unwrap_or_default());
                continue;
            }
            Err(e) => ViciError::Io(e.to_string()),
        };
        let _ = frames.send(Err(end)).await;
        return;
    }
}

/// Events collected for a streaming command.
struct Collected<'a> {
    event: &'a str,
    events: Vec<Message>,
    bytes: usize,
}

impl Vici {
    /// Connects to charon's VICI socket (`charon.plugins.vici.socket`, by default
    /// `/var/run/charon.vici`); `timeout` bounds the connection and each command.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Vici, ViciError> {
        let failed = |detail: String| ViciError::Connect {
            path: path.to_owned(),
            detail,
        };
        let stream = match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
            Err(_) => return Err(failed(format!("no answer within {timeout:?}"))),
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Ok(Ok(stream)) => stream,
        };
        let (read, writer) = stream.into_split();
        let (sender, frames) = mpsc::channel(FRAME_QUEUE);
        Ok(Vici {
            writer,
            frames,
            reader: tokio::spawn(read_frames(read, sender)),
            timeout,
            broken: None,
        })
    }

    /// The deadline of each command from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the connection is out of use (a command timed out, was abandoned, or charon
    /// closed it or sent something out of step); connect anew then.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Sends `command` and returns charon's response; `success = no` is [`ViciError::Failed`].
    pub async fn request(
        &mut self,
        command: &str,
        message: &Message,
    ) -> Result<Message, ViciError> {
        let (response, _) = self.exchange(command, message, None, self.timeout).await?;
        check_success(command, &response)?;
        Ok(response)
    }

    /// Sends a command that streams `event`s before its response (`list-sas` streams
    /// `list-sa`) and returns the events: registers for the event, sends the command, collects
    /// the events until the response, unregisters (README, "Client-initiated commands").
    pub async fn streamed(
        &mut self,
        command: &str,
        event: &str,
        message: &Message,
    ) -> Result<Vec<Message>, ViciError> {
        let (response, events) = self
            .exchange(command, message, Some(event), self.timeout)
            .await?;
        check_success(command, &response)?;
        Ok(events)
    }

    /// One command under a deadline, keeping the connection's state right whatever happens.
    async fn exchange(
        &mut self,
        command: &str,
        message: &Message,
        stream: Option<&str>,
        timeout: Duration,
    ) -> Result<(Message, Vec<Message>), ViciError> {
        if let Some(reason) = &self.broken {
            return Err(ViciError::Broken {
                reason: reason.clone(),
            });
        }
        // Zeroed once sent: `load-shared`'s frame holds the PSK.
        let frame = Zeroizing::new(message::encode_request(command, message)?);
        self.broken = Some(format!("{command} was abandoned before charon answered"));
        let result = tokio::time::timeout(timeout, self.converse(command, &frame, stream))
            .await
            .unwrap_or_else(|_| {
                Err(ViciError::Timeout {
                    command: command.to_owned(),
                    after: timeout,
                })
            });
        self.broken = match &result {
            Err(e) if !e.leaves_connection_usable() => Some(e.to_string()),
            _ => None,
        };
        result
    }

    async fn converse(
        &mut self,
        command: &str,
        frame: &[u8],
        event: Option<&str>,
    ) -> Result<(Message, Vec<Message>), ViciError> {
        if let Some(event) = event {
            self.subscribe(Packet::EventRegister(event.to_owned()), event)
                .await?;
        }
        self.send(frame).await?;
        let mut stream = event.map(|event| Collected {
            event,
            events: Vec::new(),
            bytes: 0,
        });
        let reply = self.reply(stream.as_mut()).await?;
        if let Some(event) = event {
            self.subscribe(Packet::EventUnregister(event.to_owned()), event)
                .await?;
        }
        let response = match reply {
            Packet::CmdResponse(response) => response,
            Packet::CmdUnknown => {
                return Err(ViciError::UnknownCommand {
                    command: command.to_owned(),
                });
            }
            other => return Err(unexpected("CMD_RESPONSE", &other)),
        };
        let stream = stream.map(|s| (s.bytes, s.events));
        match stream {
            Some((bytes, _)) if bytes > STREAM_MAX => Err(ViciError::StreamTooLarge {
                command: command.to_owned(),
            }),
            Some((_, events)) => Ok((response, events)),
            None => Ok((response, Vec::new())),
        }
    }

    /// Registers or unregisters for `event` and waits for charon's confirmation.
    async fn subscribe(&mut self, packet: Packet, event: &str) -> Result<(), ViciError> {
        self.send(&packet.encode()?).await?;
        match self.reply(None).await? {
            Packet::EventConfirm => Ok(()),
            Packet::EventUnknown => Err(ViciError::UnknownEvent {
                event: event.to_owned(),
            }),
            other => Err(unexpected("EVENT_CONFIRM", &other)),
        }
    }

    async fn send(&mut self, frame: &[u8]) -> Result<(), ViciError> {
        self.writer
            .write_all(frame)
            .await
            .map_err(|e| ViciError::Io(e.to_string()))
    }

    /// The next packet that is not an event; events of `stream` are collected on the way
    /// (beyond [`STREAM_MAX`] bytes, only counted), any other is dropped.
    async fn reply(&mut self, mut stream: Option<&mut Collected<'_>>) -> Result<Packet, ViciError> {
        loop {
            let (packet, len) = self.frames.recv().await.unwrap_or(Err(ViciError::Closed))?;
            let Packet::Event { name, message } = packet else {
                return Ok(packet);
            };
            match stream.as_deref_mut() {
                Some(s) if s.event == name => {
                    s.bytes = s.bytes.saturating_add(len);
                    if s.bytes <= STREAM_MAX {
                        s.events.push(message);
                    }
                }
                _ => tracing::debug!(event = %shown(&name), "VICI event not asked for, dropped"),
            }
        }
    }
}

fn unexpected(expected: &'static str, got: &Packet) -> ViciError {
    ViciError::Unexpected {
        expected,
        got: got.kind(),
    }
}

/// `success = no` as an error with charon's `errmsg` (escaped, at most [`ERRMSG_MAX`] bytes).
/// A response without `success` (`version`, `get-conns`) succeeded.
fn check_success(command: &str, response: &Message) -> Result<(), ViciError> {
    match response.get_value("success") {
        None | Some(b"yes") => Ok(()),
        Some(_) => Err(ViciError::Failed {
            command: command.to_owned(),
            errmsg: errmsg(response),
        }),
    }
}

fn errmsg(response: &Message) -> String {
    let Some(text) = response.get_text("errmsg") else {
        return "(no errmsg)".to_owned();
    };
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= ERRMSG_MAX {
            out.push('…');
            break;
        }
        match c.is_control() {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    out
}

/// How long charon should wait for an `initiate` or `terminate` to complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Answer at once; the exchange goes on in the background (VICI `timeout = -1`). Its
    /// outcome shows in [`Vici::list_sas`].
    Background,
    /// Answer when done or after this long (at least 1 ms: charon reads `0` as "for ever",
    /// which an unattended agent never wants); the exchange goes on in the background after.
    UpTo(Duration),
}

impl Wait {
    fn timeout_ms(self) -> String {
        match self {
            Wait::Background => "-1".to_owned(),
            Wait::UpTo(d) => d.as_millis().clamp(1, i32::MAX as u128).to_string(),
        }
    }

    fn extra(self) -> Duration {
        match self {
            Wait::Background => Duration::ZERO,
            Wait::UpTo(d) => d,
        }
    }
}

/// An SA to terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaRef<'a> {
    /// Every IKE_SA of this connection.
    Ike(&'a str),
    IkeId(u32),
    /// Every CHILD_SA of this name, within the IKE_SAs of `ike` if given.
    Child {
        ike: Option<&'a str>,
        child: &'a str,
    },
    ChildId(u32),
}

/// What `terminate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminated {
    pub matches: u32,
    pub terminated: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub daemon: String,
    pub version: String,
    pub sysname: String,
    pub release: String,
    pub machine: String,
}

impl Vici {
    pub async fn version(&mut self) -> Result<Version, ViciError> {
        let m = self.request("version", &Message::new()).await?;
        let text = |key| m.get_text(key).unwrap_or_default();
        Ok(Version {
            daemon: text("daemon"),
            version: text("version"),
            sysname: text("sysname"),
            release: text("release"),
            machine: text("machine"),
        })
    }

    /// Loads or replaces the connection `name`.
    pub async fn load_conn(&mut self, name: &str, spec: &ConnSpec) -> Result<(), ViciError> {
        self.request("load-conn", &spec.to_message(name))
            .await
            .map(drop)
    }

    /// Unloads a connection. This only undoes its start action: terminate its SAs yourself.
    pub async fn unload_conn(&mut self, name: &str) -> Result<(), ViciError> {
        let message = Message::new().kv("name", name);
        self.request("unload-conn", &message).await.map(drop)
    }

    /// The names of the connections loaded over VICI.
    pub async fn get_conns(&mut self) -> Result<Vec<String>, ViciError> {
        let m = self.request("get-conns", &Message::new()).await?;
        Ok(m.get_texts("conns"))
    }

    /// The connections charon knows (of every backend), or only `ike`.
    pub async fn list_conns(&mut self, ike: Option<&str>) -> Result<Vec<LoadedConn>, ViciError> {
        let request = Message::new().kv_opt("ike", ike);
        let events = self.streamed("list-conns", "list-conn", &request).await?;
        Ok(events
            .iter()
            .flat_map(|e| e.sections())
            .map(|(name, conn)| LoadedConn {
                name: name.to_owned(),
                local_addrs: conn.get_texts("local_addrs"),
                remote_addrs: conn.get_texts("remote_addrs"),
                version: conn.get_text("version").unwrap_or_default(),
                children: conn
                    .get_section("children")
                    .map(|c| c.sections().map(|(n, _)| n.to_owned()).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Loads (or replaces) the IKE PSK `id` for the identities `owners`. The PSK travels only
    /// in the request's frame, zeroed once sent, and never shows in `Debug` or an error.
    pub async fn load_shared(
        &mut self,
        id: &str,
        psk: &SecretString,
        owners: &[impl AsRef<str>],
    ) -> Result<(), ViciError> {
        let message = Message::new()
            .kv("id", id)
            .kv("type", "IKE")
            .kv("data", psk.expose_secret())
            .list("owners", owners.iter().map(AsRef::<str>::as_ref));
        self.request("load-shared", &message).await.map(drop)
    }

    pub async fn unload_shared(&mut self, id: &str) -> Result<(), ViciError> {
        let message = Message::new().kv("id", id);
        self.request("unload-shared", &message).await.map(drop)
    }

    /// The ids of the shared keys loaded over VICI.
    pub async fn get_shared(&mut self) -> Result<Vec<String>, ViciError> {
        let m = self.request("get-shared", &Message::new()).await?;
        Ok(m.get_texts("keys"))
    }

    /// Initiates the CHILD_SA `child` of connection `ike` (with its IKE_SA if there is none),
    /// or with no child the IKE_SA alone (childless when the connection allows it: RFC 6023).
    /// A [`Wait::UpTo`] holds this connection that long; when it runs out charon answers
    /// `success = no` ("… not established after …ms") and the negotiation goes on.
    pub async fn initiate(
        &mut self,
        ike: &str,
        child: Option<&str>,
        wait: Wait,
    ) -> Result<(), ViciError> {
        let message = Message::new()
            .kv("ike", ike)
            .kv_opt("child", child)
            .kv("timeout", wait.timeout_ms());
        let deadline = self.timeout.saturating_add(wait.extra());
        let (response, _) = self.exchange("initiate", &message, None, deadline).await?;
        check_success("initiate", &response)
    }

    /// Terminates SAs; `force` deletes an IKE_SA without waiting for the peer's answer to the
    /// DELETE (a dead peer's). Nothing to terminate is not an error: charon says `success = no`
    /// with `matches = 0`, which is returned as no matches. charon waits for each matching SA
    /// in turn (`vici_control.c`, `terminate`), so a [`Wait::UpTo`] over several SAs may take
    /// longer than the deadline allows: terminate them one by one, or in the background.
    pub async fn terminate(
        &mut self,
        sa: SaRef<'_>,
        force: bool,
        wait: Wait,
    ) -> Result<Terminated, ViciError> {
        let message = match sa {
            SaRef::Ike(name) => Message::new().kv("ike", name),
            SaRef::IkeId(id) => Message::new().kv("ike-id", id.to_string()),
            SaRef::Child { ike, child } => Message::new().kv_opt("ike", ike).kv("child", child),
            SaRef::ChildId(id) => Message::new().kv("child-id", id.to_string()),
        };
        let message = message
            .kv("force", if force { "yes" } else { "no" })
            .kv("timeout", wait.timeout_ms());
        let deadline = self.timeout.saturating_add(wait.extra());
        let (response, _) = self.exchange("terminate", &message, None, deadline).await?;
        let count = |key| number::<u32>(&response, key);
        let counts = count("matches").and_then(|m| Ok((m, count("terminated")?)));
        let (matches, terminated) = counts.map_err(|what| ViciError::Malformed {
            command: "terminate".into(),
            what,
        })?;
        if matches != Some(0) {
            check_success("terminate", &response)?;
        }
        Ok(Terminated {
            matches: matches.unwrap_or_default(),
            terminated: terminated.unwrap_or_default(),
        })
    }

    /// The IKE_SAs (of connection `ike` only, if given) and their CHILD_SAs. Waits for SAs
    /// that are busy (no `noblock`): skipping one would show a live tunnel as gone.
    pub async fn list_sas(&mut self, ike: Option<&str>) -> Result<Vec<IkeSa>, ViciError> {
        let request = Message::new().kv_opt("ike", ike);
        let events = self.streamed("list-sas", "list-sa", &request).await?;
        let mut sas = Vec::new();
        for (name, sa) in events.iter().flat_map(|e| e.sections()) {
            sas.push(
                IkeSa::from_vici(name, sa).map_err(|what| ViciError::Malformed {
                    command: "list-sas".into(),
                    what,
                })?,
            );
        }
        Ok(sas)
    }
}

#[cfg(test)]
#[path = "vici_tests.rs"]
mod tests;
