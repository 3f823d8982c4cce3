use proptest::prelude::*;

use super::*;

/// The README's "Encoding example", byte for byte.
const README_EXAMPLE: &[u8] = &[
    3, 4, b'k', b'e', b'y', b'1', 0, 6, b'v', b'a', b'l', b'u', b'e', b'1', //
    1, 8, b's', b'e', b'c', b't', b'i', b'o', b'n', b'1', //
    1, 11, b's', b'u', b'b', b'-', b's', b'e', b'c', b't', b'i', b'o', b'n', //
    3, 4, b'k', b'e', b'y', b'2', 0, 6, b'v', b'a', b'l', b'u', b'e', b'2', //
    2,    //
    4, 5, b'l', b'i', b's', b't', b'1', //
    5, 0, 5, b'i', b't', b'e', b'm', b'1', //
    5, 0, 5, b'i', b't', b'e', b'm', b'2', //
    6,    //
    2,
];

fn readme_message() -> Message {
    Message::new().kv("key1", "value1").section(
        "section1",
        Message::new()
            .section("sub-section", Message::new().kv("key2", "value2"))
            .list("list1", ["item1", "item2"]),
    )
}

#[test]
fn the_readme_example_encodes_and_decodes_byte_for_byte() {
    assert_eq!(readme_message().encode().unwrap(), README_EXAMPLE);
    let decoded = Message::decode(README_EXAMPLE).unwrap();
    assert_eq!(decoded, readme_message());
    let section = decoded.get_section("section1").unwrap();
    assert_eq!(
        section.get_section("sub-section").unwrap().get_text("key2"),
        Some("value2".into())
    );
    assert_eq!(section.get_texts("list1"), ["item1", "item2"]);
    assert_eq!(decoded.get_value("key1"), Some(&b"value1"[..]));
    // Asking for the wrong kind of element finds nothing.
    assert_eq!(decoded.get_list("key1"), None);
    assert_eq!(decoded.get_value("section1"), None);
}

#[test]
fn packets_are_framed_as_the_python_client_frames_them() {
    // protocol.py: struct.pack("!I", len) + struct.pack("!BB", type, len(name)) + name + message
    let version = Packet::CmdRequest {
        command: "version".into(),
        message: Message::new(),
    };
    assert_eq!(
        version.encode().unwrap(),
        [0, 0, 0, 9, 0, 7, b'v', b'e', b'r', b's', b'i', b'o', b'n']
    );
    assert_eq!(
        Packet::EventRegister("list-sa".into()).encode().unwrap(),
        [0, 0, 0, 9, 3, 7, b'l', b'i', b's', b't', b'-', b's', b'a']
    );
    assert_eq!(Packet::EventConfirm.encode().unwrap(), [0, 0, 0, 1, 5]);
    let response = Packet::CmdResponse(Message::new().kv("success", "yes"));
    let frame = response.encode().unwrap();
    assert_eq!(frame[..5], [0, 0, 0, 15, 1]);
    assert_eq!(Packet::decode(&frame[4..]).unwrap(), response);
    let request = encode_request("version", &Message::new()).unwrap();
    assert_eq!(request, version.encode().unwrap());
}

#[test]
fn every_packet_type_round_trips() {
    let m = Message::new().kv("a", "b");
    for packet in [
        Packet::CmdRequest {
            command: "list-sas".into(),
            message: m.clone(),
        },
        Packet::CmdResponse(m.clone()),
        Packet::CmdUnknown,
        Packet::EventRegister("list-sa".into()),
        Packet::EventUnregister("list-sa".into()),
        Packet::EventConfirm,
        Packet::EventUnknown,
        Packet::Event {
            name: "ike-updown".into(),
            message: m.clone(),
        },
    ] {
        let frame = packet.encode().unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4, "{}", packet.kind());
        assert_eq!(Packet::decode(&frame[4..]).unwrap(), packet);
    }
}

#[test]
fn duplicate_keys_are_kept_in_order_and_the_first_is_found() {
    let m = Message::new().kv("k", "1").kv("k", "2");
    let decoded = Message::decode(&m.encode().unwrap()).unwrap();
    assert_eq!(decoded, m);
    assert_eq!(decoded.get_text("k"), Some("1".into()));
}

/// Decodes `bytes` as a message, expecting an error whose text contains each of `words`.
fn decode_error(bytes: &[u8], words: &[&str]) -> DecodeError {
    let e = Message::decode(bytes).unwrap_err();
    for word in words {
        assert!(e.to_string().contains(word), "{e} lacks {word:?}");
    }
    e
}

#[test]
fn truncated_messages_are_errors_naming_what_was_cut() {
    // Cut the README example at every length: each prefix is complete or an error, never a
    // panic; the cut inside key2's value names it.
    for cut in 0..README_EXAMPLE.len() {
        let _ = Message::decode(&README_EXAMPLE[..cut]);
    }
    decode_error(&README_EXAMPLE[..45], &["truncated", "\"key2\""]);
    decode_error(&README_EXAMPLE[..20], &["truncated", "section name"]);
    decode_error(
        &README_EXAMPLE[..14 + 10],
        &["section \"section1\" is not closed"],
    );
    decode_error(&README_EXAMPLE[..65], &["an item of list \"list1\""]);
    decode_error(&README_EXAMPLE[..75], &["the end of list \"list1\""]);
    // A value claiming 300 bytes with 2 there.
    let e = decode_error(
        &[3, 2, b'i', b'd', 1, 44, b'x', b'y'],
        &["\"id\"", "300 bytes needed"],
    );
    assert_eq!(
        e,
        DecodeError::Truncated {
            at: 6,
            what: "the value of \"id\": 300 bytes needed, 2 left".into()
        }
    );
}

#[test]
fn malformed_messages_are_errors_naming_what_is_wrong() {
    decode_error(&[2], &["byte 0", "never opened"]);
    decode_error(&[5, 0, 0], &["list element outside a list"]);
    decode_error(&[6], &["list element outside a list"]);
    decode_error(&[9], &["9 is not a VICI element type"]);
    decode_error(
        &[4, 1, b'l', 3, 1, b'k'],
        &["element type 3 inside list \"l\""],
    );
    decode_error(&[4, 1, b'l', 4, 1, b'm'], &["inside list \"l\""]);
    // A name from the wire is escaped in the error.
    decode_error(&[1, 2, b'\n', b'"'], &["\\n\\\""]);
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.extend([SECTION_START, 1, b's']);
        }
        bytes.extend(std::iter::repeat_n(SECTION_END, depth));
        bytes
    };
    assert!(Message::decode(&nested(DEPTH_MAX)).is_ok());
    decode_error(&nested(DEPTH_MAX + 1), &["nests deeper than 32"]);
    // 170 000 levels in a frame: an error, not a stack overflow.
    decode_error(&nested(FRAME_MAX / 3), &["nests deeper"]);
    // What decoding refuses, encoding refuses.
    let mut deep = Message::new();
    for _ in 0..=DEPTH_MAX {
        deep = Message::new().section("s", deep);
    }
    assert!(matches!(deep.encode(), Err(EncodeError::TooDeep { .. })));
}

#[test]
fn malformed_packets_are_errors() {
    let packet_error = |bytes: &[u8], word: &str| {
        let e = Packet::decode(bytes).unwrap_err();
        assert!(e.to_string().contains(word), "{e} lacks {word:?}");
    };
    packet_error(&[], "the packet type");
    packet_error(&[8], "8 is not a VICI packet type");
    packet_error(&[5, 0], "1 trailing bytes after EVENT_CONFIRM");
    packet_error(
        &[3, 7, b'l', b'i'],
        "the event name: 7 bytes needed, 2 left",
    );
    packet_error(&[7], "the length of the event name");
    packet_error(&[1, 3, 1, b'k', 0], "the length of the value of \"k\"");
    packet_error(&vec![1; FRAME_MAX + 1], "over charon's limit");
}

#[test]
fn encoding_refuses_what_does_not_fit() {
    let long = "n".repeat(256);
    let e = Message::new().kv(&long, "v").encode().unwrap_err();
    assert!(
        matches!(e, EncodeError::NameTooLong { len: 256, .. }),
        "{e}"
    );
    assert!(e.to_string().len() < 200, "the name is shortened: {e}");
    let e = Message::new()
        .list("owners", [vec![0u8; 65536]])
        .encode()
        .unwrap_err();
    assert_eq!(
        e,
        EncodeError::ValueTooLong {
            key: "owners".into(),
            len: 65536
        }
    );
    // Nine values of 64 KiB: under each value's limit, over the frame's.
    let mut big = Message::new();
    for i in 0..9 {
        big = big.kv(&i.to_string(), vec![0u8; 65535]);
    }
    let request = Packet::CmdRequest {
        command: "load-conn".into(),
        message: big,
    };
    assert!(matches!(
        request.encode(),
        Err(EncodeError::FrameTooLarge { .. })
    ));
    let e = Packet::EventRegister(long).encode().unwrap_err();
    assert!(matches!(e, EncodeError::NameTooLong { .. }), "{e}");
}

#[test]
fn a_frame_split_across_reads_at_any_point_decodes_whole() {
    let first = Packet::CmdResponse(readme_message());
    let second = Packet::Event {
        name: "list-sa".into(),
        message: Message::new().kv("k", "v"),
    };
    let mut stream = first.encode().unwrap();
    stream.extend(second.encode().unwrap());
    let first_len = first.encode().unwrap().len() - 4;
    for cut in 0..=stream.len() {
        let mut decoder = FrameDecoder::default();
        let mut got = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            decoder.push(piece);
            while let Some(packet) = decoder.next_packet().unwrap() {
                got.push(packet);
            }
        }
        assert_eq!(got.len(), 2, "cut at {cut}");
        assert_eq!(got[0], (first.clone(), first_len));
        assert_eq!(got[1].0, second);
        assert!(!decoder.is_mid_frame());
    }
    // Byte by byte, as a slow writer might deliver it.
    let mut decoder = FrameDecoder::default();
    let mut got = Vec::new();
    for byte in &stream {
        decoder.push(std::slice::from_ref(byte));
        if let Some(p) = decoder.next_packet().unwrap() {
            got.push(p.0);
        }
    }
    assert_eq!(got, [first, second]);
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let mut decoder = FrameDecoder::default();
    decoder.push(&u32::try_from(FRAME_MAX + 1).unwrap().to_be_bytes());
    assert_eq!(
        decoder.next_packet().unwrap_err(),
        DecodeError::FrameTooLarge { len: FRAME_MAX + 1 }
    );
    let mut decoder = FrameDecoder::default();
    decoder.push(&[0xff; 4]);
    assert!(decoder.next_packet().is_err());
    // Exactly the limit is a frame.
    let mut decoder = FrameDecoder::default();
    decoder.push(&u32::try_from(FRAME_MAX).unwrap().to_be_bytes());
    assert_eq!(decoder.next_packet().unwrap(), None);
    assert!(decoder.is_mid_frame());
}

const PSK: &str = "s3cr3t-psk-value-7f";

#[test]
fn secret_values_never_show_in_debug() {
    let load_shared = Message::new()
        .kv("id", "chicago-primary")
        .kv("type", "IKE")
        .kv("data", PSK)
        .list("owners", ["branch@example"])
        .section("nested", Message::new().kv("pin", PSK).list("data", [PSK]));
    let debug = format!("{load_shared:?}");
    assert!(!debug.contains(PSK), "{debug}");
    assert!(debug.contains("\"data\": <secret>"), "{debug}");
    assert!(debug.contains("\"id\": \"chicago-primary\""), "{debug}");
    assert!(
        debug.contains("\"owners\": [\"branch@example\"]"),
        "{debug}"
    );
    let packet = Packet::CmdRequest {
        command: "load-shared".into(),
        message: load_shared.clone(),
    };
    let pretty = format!("{packet:#?}");
    assert!(!pretty.contains(PSK), "{pretty}");
    // An element alone does not know its key: it shows no value at all.
    let element = format!("{:?}", load_shared.get("data").unwrap());
    assert!(!element.contains(PSK), "{element}");
    // The PSK does travel in the frame, as raw bytes.
    let frame = packet.encode().unwrap();
    assert!(frame.windows(PSK.len()).any(|w| w == PSK.as_bytes()));
}

#[test]
fn errors_never_quote_a_value() {
    // A value whose length runs past the end: the error names the key, not the bytes.
    let mut bytes = vec![KEY_VALUE, 4, b'd', b'a', b't', b'a', 0, 100];
    bytes.extend(PSK.as_bytes());
    let e = Message::decode(&bytes).unwrap_err();
    assert!(
        !e.to_string().contains(PSK) && !format!("{e:?}").contains(PSK),
        "{e}"
    );
    assert!(e.to_string().contains("\"data\""), "{e}");
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_-]{0,12}",
        1 => ".{0,8}",
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn entries(element: BoxedStrategy<Element>) -> impl Strategy<Value = Message> {
    prop::collection::vec((name(), element), 0..6).prop_map(|entries| {
        let mut m = Message::new();
        for (k, e) in entries {
            m.push(&k, e);
        }
        m
    })
}

fn leaf() -> BoxedStrategy<Element> {
    prop_oneof![
        value().prop_map(Element::Value),
        prop::collection::vec(value(), 0..4).prop_map(Element::List),
    ]
    .boxed()
}

fn message() -> impl Strategy<Value = Message> {
    entries(leaf()).prop_recursive(4, 48, 6, |inner| {
        entries(prop_oneof![leaf(), inner.prop_map(Element::Section)].boxed())
    })
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (name(), message()).prop_map(|(command, message)| Packet::CmdRequest { command, message }),
        message().prop_map(Packet::CmdResponse),
        Just(Packet::CmdUnknown),
        name().prop_map(Packet::EventRegister),
        name().prop_map(Packet::EventUnregister),
        Just(Packet::EventConfirm),
        Just(Packet::EventUnknown),
        (name(), message()).prop_map(|(name, message)| Packet::Event { name, message }),
    ]
}

proptest! {
    #[test]
    fn messages_round_trip(m in message()) {
        prop_assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn packets_round_trip_through_frames_in_any_pieces(p in packet(), cut in any::<prop::sample::Index>()) {
        let frame = p.encode().unwrap();
        let cut = cut.index(frame.len() + 1);
        let mut decoder = FrameDecoder::default();
        decoder.push(&frame[..cut]);
        let early = decoder.next_packet().unwrap();
        decoder.push(&frame[cut..]);
        let got = match early { Some(got) => got, None => decoder.next_packet().unwrap().unwrap() };
        prop_assert_eq!(got, (p, frame.len() - 4));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&bytes);
        let _ = Packet::decode(&bytes);
        let mut decoder = FrameDecoder::default();
        for piece in bytes.chunks(7) {
            decoder.push(piece);
            while let Ok(Some(_)) = decoder.next_packet() {}
        }
    }

    /// Valid frames with a few bytes changed reach deeper than random bytes do.
    #[test]
    fn mutated_frames_never_panic(
        p in packet(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = p.encode().unwrap();
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let _ = Packet::decode(&frame[4..]);
        let mut decoder = FrameDecoder::default();
        decoder.push(&frame);
        let _ = decoder.next_packet();
    }
}
