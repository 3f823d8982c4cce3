//! The client against a fake charon: a Unix socket in a temporary directory whose peer plays a
//! script of canned frames and records what it was sent.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::*;

/// One step of the fake charon's script, on the first connection.
enum Step {
    /// Reads one frame; what was read is returned at the end.
    Recv,
    /// Writes a packet, its length and its body in separate writes as charon does.
    Reply(Packet),
    /// Writes raw bytes.
    Raw(Vec<u8>),
    Pause(Duration),
    /// Answers nothing until the client goes away.
    Stall,
}

use Step::*;

struct FakeCharon {
    path: PathBuf,
    _dir: tempfile::TempDir,
    script: JoinHandle<Vec<Packet>>,
}

impl FakeCharon {
    async fn start(steps: Vec<Step>) -> FakeCharon {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("charon.vici");
        let listener = UnixListener::bind(&path).unwrap();
        let script = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            for step in steps {
                match step {
                    Recv => received.push(read_packet(&mut conn).await),
                    Reply(packet) => {
                        let frame = packet.encode().unwrap();
                        conn.write_all(&frame[..4]).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        conn.write_all(&frame[4..]).await.unwrap();
                    }
                    Raw(bytes) => conn.write_all(&bytes).await.unwrap(),
                    Pause(d) => tokio::time::sleep(d).await,
                    Stall => while conn.read(&mut [0; 64]).await.is_ok_and(|n| n > 0) {},
                }
            }
            received
        });
        FakeCharon {
            path,
            _dir: dir,
            script,
        }
    }

    async fn connect(&self) -> Vici {
        Vici::connect(&self.path, Duration::from_secs(10))
            .await
            .unwrap()
    }

    /// What the client sent, once the script has run.
    async fn received(self) -> Vec<Packet> {
        self.script.await.unwrap()
    }
}

/// A frame read the plain way (not through the client's decoder).
async fn read_packet(conn: &mut UnixStream) -> Packet {
    let mut header = [0u8; 4];
    conn.read_exact(&mut header).await.unwrap();
    let mut body = vec![0; u32::from_be_bytes(header) as usize];
    conn.read_exact(&mut body).await.unwrap();
    Packet::decode(&body).unwrap()
}

fn response(pairs: &[(&str, &str)]) -> Packet {
    let m = pairs.iter().fold(Message::new(), |m, (k, v)| m.kv(k, v));
    Packet::CmdResponse(m)
}

fn ok() -> Packet {
    response(&[("success", "yes")])
}

fn event(name: &str, message: Message) -> Packet {
    Packet::Event {
        name: name.into(),
        message,
    }
}

fn request(command: &str, message: Message) -> Packet {
    Packet::CmdRequest {
        command: command.into(),
        message,
    }
}

#[tokio::test]
async fn version_is_asked_and_read() {
    let version = response(&[
        ("daemon", "charon"),
        ("version", "5.9.13"),
        ("sysname", "Linux"),
        ("release", "6.8.0"),
        ("machine", "x86_64"),
    ]);
    let charon = FakeCharon::start(vec![Recv, Reply(version)]).await;
    let mut vici = charon.connect().await;
    let v = vici.version().await.unwrap();
    assert_eq!(
        (v.daemon.as_str(), v.version.as_str()),
        ("charon", "5.9.13")
    );
    assert_eq!(v.machine, "x86_64");
    assert_eq!(
        charon.received().await,
        [request("version", Message::new())]
    );
}

#[tokio::test]
async fn success_no_is_an_error_with_charons_errmsg_and_the_connection_stays_usable() {
    let refused = response(&[("success", "no"), ("errmsg", "invalid connection 'x'")]);
    let hostile = format!("bad\n\u{1b}[31m{}", "x".repeat(1000));
    let charon = FakeCharon::start(vec![
        Recv,
        Reply(refused),
        Recv,
        Reply(response(&[("success", "no"), ("errmsg", &hostile)])),
        Recv,
        Reply(response(&[("success", "no")])),
        Recv,
        Reply(ok()),
    ])
    .await;
    let mut vici = charon.connect().await;
    let e = vici.unload_conn("x").await.unwrap_err();
    assert!(
        matches!(&e, ViciError::Failed { command, errmsg }
            if command == "unload-conn" && errmsg == "invalid connection 'x'"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "charon refused unload-conn: invalid connection 'x'"
    );
    assert!(!vici.is_broken());
    // An errmsg is escaped and shortened.
    let e = vici.unload_conn("x").await.unwrap_err().to_string();
    assert!(e.contains("bad\\n\\u{1b}[31m") && !e.contains('\n'), "{e}");
    assert!(e.len() < 300, "{e}");
    let e = vici.unload_conn("x").await.unwrap_err().to_string();
    assert!(e.contains("(no errmsg)"), "{e}");
    vici.unload_conn("x").await.unwrap();
}

#[tokio::test]
async fn an_unknown_command_is_an_error_and_the_connection_stays_usable() {
    let charon = FakeCharon::start(vec![Recv, Reply(Packet::CmdUnknown), Recv, Reply(ok())]).await;
    let mut vici = charon.connect().await;
    let e = vici.request("no-such", &Message::new()).await.unwrap_err();
    assert!(matches!(&e, ViciError::UnknownCommand { command } if command == "no-such"));
    vici.request("reload-settings", &Message::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn events_around_and_amid_a_command_are_dropped_without_losing_step() {
    let updown = || event("ike-updown", Message::new().kv("up", "yes"));
    let charon = FakeCharon::start(vec![
        // Before the first request, unasked.
        Reply(updown()),
        Recv,
        Reply(updown()),
        Reply(event("list-sa", Message::new().kv("success", "no"))),
        Reply(response(&[("conns", "ignored")])),
        // Between commands.
        Reply(updown()),
        Recv,
        Reply(updown()),
        Reply(Packet::CmdResponse(Message::new().list("keys", ["a", "b"]))),
    ])
    .await;
    let mut vici = charon.connect().await;
    let first = vici.request("get-conns", &Message::new()).await.unwrap();
    assert_eq!(first.get_text("conns"), Some("ignored".into()));
    assert_eq!(vici.get_shared().await.unwrap(), ["a", "b"]);
}

/// A `list-sa` event as charon's `vici_query.c` builds it.
fn list_sa(name: &str, uniqueid: &str, children: Message) -> Message {
    let sa = Message::new()
        .kv("uniqueid", uniqueid)
        .kv("version", "2")
        .kv("state", "ESTABLISHED")
        .kv("local-host", "198.18.0.2")
        .kv("local-port", "500")
        .kv("local-id", "branch@example")
        .kv("remote-host", "198.18.3.1")
        .kv("remote-port", "500")
        .kv("remote-id", "198.18.3.1")
        .kv("initiator", "yes")
        .kv("established", "42")
        .kv("rekey-time", "13000")
        .list("tasks-queued", Vec::<&str>::new())
        .section("child-sas", children);
    Message::new().section(name, sa)
}

fn child(name: &str, uniqueid: &str, state: &str, installed: bool) -> Message {
    let child = Message::new()
        .kv("name", name)
        .kv("uniqueid", uniqueid)
        .kv("reqid", "1")
        .kv("state", state)
        .kv("mode", "TUNNEL")
        .kv("protocol", "ESP");
    let child = if installed {
        child
            .kv("bytes-in", "1234")
            .kv("packets-in", "12")
            .kv("bytes-out", "5678")
            .kv("packets-out", "34")
            .kv("install-time", "40")
    } else {
        child
    };
    child
        .list("local-ts", ["10.1.0.0/16"])
        .list("remote-ts", ["0.0.0.0/0"])
}

#[tokio::test]
async fn list_sas_registers_collects_its_events_and_unregisters() {
    let rekeying = Message::new()
        .section("primary-7", child("primary", "7", "REKEYED", true))
        .section("primary-9", child("primary", "9", "INSTALLED", true))
        .section("primary-8", child("primary", "8", "INSTALLED", true));
    let connecting =
        Message::new().section("secondary-3", child("secondary", "3", "CREATED", false));
    let charon = FakeCharon::start(vec![
        Recv,
        Reply(Packet::EventConfirm),
        Recv,
        Reply(event("list-sa", list_sa("chicago-primary", "5", rekeying))),
        Reply(event("ike-updown", Message::new().kv("up", "yes"))),
        Reply(event(
            "list-sa",
            list_sa("chicago-secondary", "6", connecting),
        )),
        Reply(Packet::CmdResponse(Message::new())),
        Recv,
        Reply(Packet::EventConfirm),
    ])
    .await;
    let mut vici = charon.connect().await;
    let sas = vici.list_sas(Some("chicago-primary")).await.unwrap();
    assert_eq!(
        charon.received().await,
        [
            Packet::EventRegister("list-sa".into()),
            request("list-sas", Message::new().kv("ike", "chicago-primary")),
            Packet::EventUnregister("list-sa".into()),
        ]
    );
    assert_eq!(sas.len(), 2);
    let primary = &sas[0];
    assert_eq!(primary.name, "chicago-primary");
    assert_eq!(primary.uniqueid, 5);
    assert!(primary.is_established());
    assert_eq!(primary.remote_host, Some("198.18.3.1".parse().unwrap()));
    assert_eq!(primary.remote_id.as_deref(), Some("198.18.3.1"));
    assert_eq!(primary.established_secs, Some(42));
    let keys: Vec<_> = primary.children.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["primary-7", "primary-9", "primary-8"]);
    assert_eq!(primary.children[0].state, ChildState::Rekeyed);
    // The newest installed child, not the one a rekey left behind.
    let installed = primary.installed_child("primary").unwrap();
    assert_eq!(
        (installed.uniqueid, installed.key.as_str()),
        (9, "primary-9")
    );
    assert_eq!(installed.bytes_in, Some(1234));
    assert_eq!(installed.packets_out, Some(34));
    assert_eq!(installed.install_time_secs, Some(40));
    assert_eq!(installed.remote_ts, ["0.0.0.0/0"]);
    // Not yet installed: no traffic figures.
    let secondary = &sas[1].children[0];
    assert_eq!(secondary.state, ChildState::Created);
    assert_eq!(
        (secondary.bytes_in, secondary.install_time_secs),
        (None, None)
    );
    assert!(sas[1].installed_child("secondary").is_none());
}

#[tokio::test]
async fn a_malformed_sa_is_an_error_naming_it() {
    let bad = Message::new().section("p-1", child("p", "x", "INSTALLED", false));
    let charon = FakeCharon::start(vec![
        Recv,
        Reply(Packet::EventConfirm),
        Recv,
        Reply(event("list-sa", list_sa("conn", "1", bad))),
        Reply(Packet::CmdResponse(Message::new())),
        Recv,
        Reply(Packet::EventConfirm),
    ])
    .await;
    let mut vici = charon.connect().await;
    let e = vici.list_sas(None).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "charon's answer to list-sas is malformed: IKE_SA \"conn\": CHILD_SA \"p-1\": uniqueid is not a number"
    );
    assert!(!vici.is_broken());
}

#[tokio::test]
async fn list_conns_and_get_conns_read_what_is_loaded() {
    let conn = Message::new().section(
        "chicago-primary",
        Message::new()
            .list("local_addrs", ["%any"])
            .list("remote_addrs", ["198.18.3.1"])
            .kv("version", "IKEv2")
            .section("local-1", Message::new().kv("class", "pre-shared key"))
            .section(
                "children",
                Message::new().section("primary", Message::new().kv("mode", "TUNNEL")),
            ),
    );
    let charon = FakeCharon::start(vec![
        Recv,
        Reply(Packet::EventConfirm),
        Recv,
        Reply(event("list-conn", conn)),
        Reply(Packet::CmdResponse(Message::new())),
        Recv,
        Reply(Packet::EventConfirm),
        Recv,
        Reply(Packet::CmdResponse(
            Message::new().list("conns", ["chicago-primary"]),
        )),
    ])
    .await;
    let mut vici = charon.connect().await;
    let conns = vici.list_conns(None).await.unwrap();
    assert_eq!(
        conns,
        [LoadedConn {
            name: "chicago-primary".into(),
            local_addrs: vec!["%any".into()],
            remote_addrs: vec!["198.18.3.1".into()],
            version: "IKEv2".into(),
            children: vec!["primary".into()],
        }]
    );
    assert_eq!(vici.get_conns().await.unwrap(), ["chicago-primary"]);
}

#[tokio::test]
async fn an_unknown_event_is_an_error_and_the_command_is_not_sent() {
    let charon =
        FakeCharon::start(vec![Recv, Reply(Packet::EventUnknown), Recv, Reply(ok())]).await;
    let mut vici = charon.connect().await;
    let e = vici
        .streamed("list-things", "list-thing", &Message::new())
        .await
        .unwrap_err();
    assert!(matches!(&e, ViciError::UnknownEvent { event } if event == "list-thing"));
    vici.unload_shared("k").await.unwrap();
    let received = charon.received().await;
    assert_eq!(
        received[1],
        request("unload-shared", Message::new().kv("id", "k"))
    );
}

#[tokio::test]
async fn a_stream_past_its_bound_is_an_error_and_the_connection_stays_usable() {
    // Events of about 450 KiB each, 40 of them: over STREAM_MAX.
    let mut big = Message::new();
    for i in 0..7 {
        big = big.kv(&i.to_string(), vec![b'x'; 65000]);
    }
    let mut steps = vec![Recv, Reply(Packet::EventConfirm), Recv];
    for _ in 0..40 {
        steps.push(Reply(event("list-sa", big.clone())));
    }
    steps.extend([
        Reply(Packet::CmdResponse(Message::new())),
        Recv,
        Reply(Packet::EventConfirm),
    ]);
    steps.extend([Recv, Reply(ok())]);
    let charon = FakeCharon::start(steps).await;
    let mut vici = charon.connect().await;
    let e = vici.streamed("list-sas", "list-sa", &Message::new()).await;
    assert!(matches!(e, Err(ViciError::StreamTooLarge { .. })), "{e:?}");
    vici.unload_conn("x").await.unwrap();
}

#[tokio::test]
async fn a_frame_in_pieces_is_read_whole() {
    let frame = response(&[("success", "yes"), ("note", "in pieces")])
        .encode()
        .unwrap();
    let pause = Duration::from_millis(30);
    let charon = FakeCharon::start(vec![
        Recv,
        Raw(frame[..2].to_vec()),
        Pause(pause),
        Raw(frame[2..7].to_vec()),
        Pause(pause),
        Raw(frame[7..].to_vec()),
    ])
    .await;
    let mut vici = charon.connect().await;
    let m = vici.request("x", &Message::new()).await.unwrap();
    assert_eq!(m.get_text("note"), Some("in pieces".into()));
}

#[tokio::test]
async fn a_frame_over_the_limit_is_refused_from_its_header_and_breaks_the_connection() {
    let header = u32::try_from(message::FRAME_MAX + 1).unwrap().to_be_bytes();
    let charon = FakeCharon::start(vec![Recv, Raw(header.to_vec()), Stall]).await;
    let mut vici = charon.connect().await;
    let e = vici.version().await.unwrap_err();
    assert!(
        matches!(e, ViciError::Decode(DecodeError::FrameTooLarge { len }) if len == message::FRAME_MAX + 1),
        "{e:?}"
    );
    assert!(vici.is_broken());
    let e = vici.version().await.unwrap_err();
    assert!(matches!(e, ViciError::Broken { .. }), "{e:?}");
    assert!(e.to_string().contains("over charon's limit"), "{e}");
}

#[tokio::test]
async fn a_stalled_charon_times_out_and_its_late_answer_is_never_taken_for_another() {
    let late = response(&[("daemon", "late answer")]);
    let charon = FakeCharon::start(vec![
        Recv,
        Pause(Duration::from_millis(600)),
        Reply(late),
        Stall,
    ])
    .await;
    let mut vici = Vici::connect(&charon.path, Duration::from_millis(200))
        .await
        .unwrap();
    let e = vici.version().await.unwrap_err();
    assert!(
        matches!(&e, ViciError::Timeout { command, .. } if command == "version"),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    vici.set_timeout(Duration::from_secs(10));
    let e = vici.version().await.unwrap_err();
    assert!(matches!(e, ViciError::Broken { .. }), "{e:?}");
    assert!(e.to_string().contains("did not answer version"), "{e}");
}

#[tokio::test]
async fn a_call_abandoned_by_its_caller_leaves_the_connection_out_of_use() {
    let charon = FakeCharon::start(vec![
        Recv,
        Pause(Duration::from_millis(300)),
        Reply(response(&[("daemon", "late answer")])),
        Stall,
    ])
    .await;
    let mut vici = charon.connect().await;
    let abandoned = tokio::time::timeout(Duration::from_millis(50), vici.version()).await;
    assert!(abandoned.is_err());
    let e = vici.version().await.unwrap_err();
    assert!(matches!(e, ViciError::Broken { .. }), "{e:?}");
    assert!(e.to_string().contains("abandoned"), "{e}");
}

#[tokio::test]
async fn a_charon_that_closes_is_an_error_mid_frame_or_between_frames() {
    let mut cut = response(&[("daemon", "charon")]).encode().unwrap();
    cut.truncate(9);
    let charon = FakeCharon::start(vec![Recv, Raw(cut)]).await;
    let mut vici = charon.connect().await;
    let e = vici.version().await.unwrap_err();
    assert!(matches!(e, ViciError::ClosedMidFrame), "{e:?}");
    assert!(vici.is_broken());

    let charon = FakeCharon::start(vec![Recv]).await;
    let mut vici = charon.connect().await;
    let e = vici.version().await.unwrap_err();
    assert!(matches!(e, ViciError::Closed), "{e:?}");
}

#[tokio::test]
async fn a_packet_out_of_turn_breaks_the_connection() {
    let charon = FakeCharon::start(vec![Recv, Reply(Packet::EventConfirm), Stall]).await;
    let mut vici = charon.connect().await;
    let e = vici.version().await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "charon sent EVENT_CONFIRM where CMD_RESPONSE was due"
    );
    assert!(vici.is_broken());
}

#[tokio::test]
async fn connecting_to_no_socket_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("charon.vici");
    let e = Vici::connect(&path, Duration::from_secs(5))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.starts_with("cannot connect to charon's VICI socket"),
        "{e}"
    );
}

const PSK: &str = "vici-test-psk-4e1a9c";

#[tokio::test]
async fn load_shared_sends_the_psk_to_charon_and_nowhere_else() {
    let refused = response(&[("success", "no"), ("errmsg", "loading shared key failed")]);
    let charon = FakeCharon::start(vec![Recv, Reply(refused)]).await;
    let mut vici = charon.connect().await;
    let psk = SecretString::from(PSK);
    let e = vici
        .load_shared("chicago-primary", &psk, &["branch@example", "198.18.3.1"])
        .await
        .unwrap_err();
    assert!(!e.to_string().contains(PSK) && !format!("{e:?}").contains(PSK));
    let received = charon.received().await;
    let Packet::CmdRequest { command, message } = &received[0] else {
        panic!("{received:?}");
    };
    assert_eq!(command, "load-shared");
    assert_eq!(message.get_text("id"), Some("chicago-primary".into()));
    assert_eq!(message.get_text("type"), Some("IKE".into()));
    assert_eq!(message.get_value("data"), Some(PSK.as_bytes()));
    assert_eq!(
        message.get_texts("owners"),
        ["branch@example", "198.18.3.1"]
    );
    assert!(!format!("{received:?}").contains(PSK));
}

#[test]
fn a_conn_spec_becomes_the_load_conn_message_charon_expects() {
    let spec = ConnSpec {
        local_addrs: vec!["198.18.0.2".into()],
        remote_addrs: vec!["198.18.3.1".into()],
        proposals: vec![],
        dpd_delay: Some(Duration::from_secs(10)),
        childless: Some(Childless::Allow),
        mobike: Some(false),
        local_id: "branch@example".into(),
        remote_id: None,
        children: vec![ChildSpec {
            name: "primary".into(),
            local_ts: vec!["10.1.0.0/16".into()],
            remote_ts: vec!["0.0.0.0/0".into()],
            esp_proposals: vec!["aes256gcm16".into()],
            start_action: Some(Action::None),
            dpd_action: Some(Action::Start),
            close_action: None,
        }],
    };
    let expected = Message::new().section(
        "chicago-primary",
        Message::new()
            .kv("version", "2")
            .list("local_addrs", ["198.18.0.2"])
            .list("remote_addrs", ["198.18.3.1"])
            .kv("dpd_delay", "10")
            .kv("childless", "allow")
            .kv("mobike", "no")
            .section(
                "local",
                Message::new().kv("auth", "psk").kv("id", "branch@example"),
            )
            .section("remote", Message::new().kv("auth", "psk"))
            .section(
                "children",
                Message::new().section(
                    "primary",
                    Message::new()
                        .list("local_ts", ["10.1.0.0/16"])
                        .list("remote_ts", ["0.0.0.0/0"])
                        .list("esp_proposals", ["aes256gcm16"])
                        .kv("start_action", "none")
                        .kv("dpd_action", "start"),
                ),
            ),
    );
    assert_eq!(spec.to_message("chicago-primary"), expected);
    // Half a second is not "off".
    let short = ConnSpec {
        dpd_delay: Some(Duration::from_millis(1500)),
        ..spec.clone()
    };
    let m = short.to_message("c");
    assert_eq!(
        m.get_section("c").unwrap().get_text("dpd_delay"),
        Some("2".into())
    );
    let with_remote = ConnSpec {
        remote_id: Some("pop@atmos".into()),
        proposals: vec!["aes256-sha256-modp2048".into()],
        ..spec
    };
    let m = with_remote.to_message("c");
    let conn = m.get_section("c").unwrap();
    assert_eq!(conn.get_texts("proposals"), ["aes256-sha256-modp2048"]);
    assert_eq!(
        conn.get_section("remote").unwrap().get_text("id"),
        Some("pop@atmos".into())
    );
}

#[tokio::test]
async fn load_conn_goes_over_the_wire_as_built() {
    let spec = ConnSpec {
        remote_addrs: vec!["198.18.3.1".into()],
        local_id: "branch@example".into(),
        ..ConnSpec::default()
    };
    let charon = FakeCharon::start(vec![Recv, Reply(ok())]).await;
    let mut vici = charon.connect().await;
    vici.load_conn("c", &spec).await.unwrap();
    assert_eq!(
        charon.received().await,
        [request("load-conn", spec.to_message("c"))]
    );
}

#[tokio::test]
async fn initiate_and_terminate_say_how_long_charon_may_wait() {
    let none_matched = response(&[
        ("success", "no"),
        ("matches", "0"),
        ("terminated", "0"),
        ("errmsg", "no matching SAs to terminate found"),
    ]);
    let failed = response(&[
        ("success", "no"),
        ("matches", "1"),
        ("terminated", "0"),
        ("errmsg", "terminating SA failed"),
    ]);
    let done = response(&[("success", "yes"), ("matches", "2"), ("terminated", "2")]);
    let charon = FakeCharon::start(vec![
        Recv,
        Reply(ok()),
        // Answered after longer than the connection's timeout, within the wait asked for.
        Recv,
        Pause(Duration::from_millis(600)),
        Reply(ok()),
        Recv,
        Reply(none_matched),
        Recv,
        Reply(failed),
        Recv,
        Reply(done),
    ])
    .await;
    let mut vici = Vici::connect(&charon.path, Duration::from_millis(300))
        .await
        .unwrap();
    vici.initiate("c", Some("primary"), Wait::Background)
        .await
        .unwrap();
    vici.initiate("c", None, Wait::UpTo(Duration::from_secs(3)))
        .await
        .unwrap();
    let none = vici
        .terminate(SaRef::Ike("c"), true, Wait::UpTo(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        none,
        Terminated {
            matches: 0,
            terminated: 0
        }
    );
    let e = vici
        .terminate(SaRef::ChildId(7), false, Wait::Background)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("terminating SA failed"), "{e}");
    let child = SaRef::Child {
        ike: Some("c"),
        child: "primary",
    };
    let both = vici
        .terminate(child, false, Wait::Background)
        .await
        .unwrap();
    assert_eq!(
        both,
        Terminated {
            matches: 2,
            terminated: 2
        }
    );
    let sent: Vec<Message> = charon
        .received()
        .await
        .into_iter()
        .map(|p| match p {
            Packet::CmdRequest { message, .. } => message,
            other => panic!("{other:?}"),
        })
        .collect();
    let timeout = |m: &Message| m.get_text("timeout").unwrap();
    assert_eq!(
        sent[0],
        Message::new()
            .kv("ike", "c")
            .kv("child", "primary")
            .kv("timeout", "-1")
    );
    assert_eq!(timeout(&sent[1]), "3000");
    assert_eq!(sent[1].get("child"), None);
    // Zero would mean "for ever" to charon.
    assert_eq!(
        sent[2],
        Message::new()
            .kv("ike", "c")
            .kv("force", "yes")
            .kv("timeout", "1")
    );
    assert_eq!(sent[3].get_text("child-id"), Some("7".into()));
    assert_eq!(sent[4].get_text("child"), Some("primary".into()));
    assert_eq!(sent[4].get_text("ike"), Some("c".into()));
}
