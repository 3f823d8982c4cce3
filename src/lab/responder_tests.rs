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
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
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

/// Requests to `dst` answered, of `n`, by `r`.
fn answered(r: &mut Responder, dst: [u8; 4], n: u16) -> Vec<bool> {
    let t0 = Instant::now();
    (0..n)
        .map(|seq| {
            r.answer(&request([198, 19, 255, 254], dst, 1, seq), t0)
                .is_some()
        })
        .collect()
}

fn lossy_links(loss: f64) -> HashMap<Ipv4Addr, Link> {
    HashMap::from([(
        Ipv4Addr::new(198, 18, 0, 2),
        Link {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            loss,
        },
    )])
}

#[test]
fn random_loss_is_drawn_per_request_from_the_seed() {
    let dst = [198, 18, 0, 2];
    let responder = |seed: u64| {
        Responder::new(lossy_links(0.4), 1, Arc::new(Stats::default())).random_loss(seed)
    };
    let mut r = responder(7);
    assert_eq!(r.loss_mode(), LossMode::Random);
    let seen = answered(&mut r, dst, 10_000);
    let lost = seen.iter().filter(|a| !**a).count();
    // 40% of 10,000: the standard deviation is 49 requests.
    assert!((3_800..=4_200).contains(&lost), "{lost} lost of 10,000");
    // Runs of 5 vary as Bernoulli draws do: 0.6⁵ = 7.8% of them lose nothing (even loss:
    // none), and not every run loses exactly 2.
    let runs: Vec<usize> = seen
        .chunks(5)
        .map(|run| run.iter().filter(|a| !**a).count())
        .collect();
    let clean = runs.iter().filter(|&&l| l == 0).count();
    assert!(
        (100..=220).contains(&clean),
        "{clean} of 2,000 runs of 5 lost nothing"
    );
    assert!(runs.iter().any(|&l| l >= 4), "some run of 5 loses 4 or 5");
    // The same seed draws the same losses, another seed others.
    assert_eq!(answered(&mut responder(7), dst, 10_000), seen);
    assert_ne!(answered(&mut responder(8), dst, 10_000), seen);
}

#[test]
fn random_loss_keeps_the_extremes_and_the_jitter() {
    let stats = Arc::new(Stats::default());
    let mut clean = Responder::new(lossy_links(0.0), 1, stats.clone()).random_loss(3);
    assert!(
        answered(&mut clean, [198, 18, 0, 2], 1_000)
            .iter()
            .all(|a| *a)
    );
    let mut dead = Responder::new(lossy_links(1.0), 1, stats).random_loss(3);
    assert!(
        answered(&mut dead, [198, 18, 0, 2], 1_000)
            .iter()
            .all(|a| !*a)
    );
    // The jitter comes from the world's seed, whatever the loss mode: the same delays.
    let mut links = lossy_links(0.0);
    for l in links.values_mut() {
        l.jitter = Duration::from_millis(2);
    }
    let delays = |r: &mut Responder| -> Vec<Duration> {
        let t0 = Instant::now();
        (0..50)
            .map(|seq| {
                let p = request([198, 19, 255, 254], [198, 18, 0, 2], 1, seq);
                r.answer(&p, t0).expect("answers").0 - t0
            })
            .collect()
    };
    let even = delays(&mut Responder::new(
        links.clone(),
        9,
        Arc::new(Stats::default()),
    ));
    let random = delays(&mut Responder::new(links, 9, Arc::new(Stats::default())).random_loss(4));
    assert_eq!(even, random);
    assert_eq!(
        Responder::new(lossy_links(0.4), 1, Arc::new(Stats::default())).loss_mode(),
        LossMode::Even
    );
}
