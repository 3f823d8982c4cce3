use super::*;

#[test]
fn fingerprints_are_keyed_stable_and_never_the_psk() {
    let psk = SecretString::from("correct horse battery".to_owned());
    let key = [7u8; 32];
    let a = Fingerprinter::new(&key).fingerprint(&psk);
    let b = Fingerprinter::new(&key).fingerprint(&psk);
    assert_eq!(a, b, "the same key gives the same fingerprint");
    assert_eq!(a.len(), 64);
    assert!(!a.contains("horse"));
    assert_ne!(
        Fingerprinter::new(&[8u8; 32]).fingerprint(&psk),
        a,
        "keyed: another key, another fingerprint"
    );
    let changed = SecretString::from("correct horse battery!".to_owned());
    assert_ne!(Fingerprinter::new(&key).fingerprint(&changed), a);
}

#[test]
fn audit_entries_round_trip_as_json_lines() {
    let entry = AuditEntry {
        time: crate::timestamp::rfc3339(std::time::SystemTime::UNIX_EPOCH),
        action: "update".into(),
        tunnel: "t".into(),
        id: None,
        fields: vec!["psk".into()],
        result: "ok".into(),
    };
    let line = serde_json::to_string(&entry).unwrap();
    assert!(!line.contains('\n'));
    let back: AuditEntry = serde_json::from_str(&line).unwrap();
    assert_eq!(back, entry);
    assert_eq!(back.time, "1970-01-01T00:00:00Z");
}

#[test]
fn managed_tunnels_gone_from_the_api_are_forgotten() {
    let entry = |id: &str| ManagedTunnel {
        id: id.into(),
        name: format!("n-{id}"),
        location: "l".into(),
        psk_fingerprint: String::new(),
    };
    let mut managed = ManagedTunnels {
        version: 1,
        tunnels: [("a".into(), entry("a")), ("b".into(), entry("b"))].into(),
    };
    let actual = [Tunnel {
        id: "a".into(),
        ..Tunnel::default()
    }];
    let gone = managed.forget_gone(&actual);
    assert_eq!(gone, [entry("b")]);
    assert_eq!(managed.tunnels.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(managed.id_of("n-a"), Some("a"));
    assert_eq!(managed.id_of("n-b"), None);
}
