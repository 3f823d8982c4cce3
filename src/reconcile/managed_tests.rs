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
        why: None,
    };
    let line = serde_json::to_string(&entry).unwrap();
    assert!(!line.contains('\n'));
    let back: AuditEntry = serde_json::from_str(&line).unwrap();
    assert_eq!(back, entry);
    assert_eq!(back.time, "1970-01-01T00:00:00Z");
}

fn entry(id: &str) -> ManagedTunnel {
    ManagedTunnel {
        id: id.into(),
        name: format!("n-{id}"),
        location: "l".into(),
        psk_fingerprint: format!("fp-{id}"),
        psk_record_lost: None,
        missing_listings: 0,
    }
}

fn listed(ids: &[&str]) -> Vec<Tunnel> {
    ids.iter()
        .map(|id| Tunnel {
            id: (*id).into(),
            ..Tunnel::default()
        })
        .collect()
}

#[test]
fn a_managed_tunnel_is_forgotten_only_after_three_listings_in_a_row_without_it() {
    let mut managed = ManagedTunnels {
        version: 1,
        tunnels: [("a".into(), entry("a")), ("b".into(), entry("b"))].into(),
        next_audit: None,
    };
    // An empty page, then a partial one, then one with both: nothing is forgotten.
    let seen = managed.note_listing(&[]);
    assert_eq!(seen.missing.len(), 2);
    assert!(seen.forgotten.is_empty());
    assert_eq!(managed.id_of("n-a"), None, "not polled while missing");
    let seen = managed.note_listing(&listed(&["a"]));
    assert_eq!(
        seen.missing
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(seen.missing[0].missing_listings, 2);
    assert_eq!(managed.tunnels["a"].missing_listings, 0);
    assert_eq!(
        managed.note_listing(&listed(&["a", "b"])),
        ListingSeen::default()
    );
    assert_eq!(managed.tunnels.len(), 2);
    assert_eq!(
        managed.tunnels["b"].psk_fingerprint, "fp-b",
        "the record stays whole"
    );
    assert_eq!(managed.id_of("n-b"), Some("b"));

    // Really gone: forgotten on the third listing without it, not before.
    for n in 1..FORGET_AFTER_LISTINGS {
        let seen = managed.note_listing(&listed(&["a"]));
        assert!(seen.forgotten.is_empty(), "after {n}");
        assert_eq!(seen.missing[0].missing_listings, n);
    }
    let seen = managed.note_listing(&listed(&["a"]));
    assert_eq!(seen.forgotten.len(), 1);
    assert_eq!(seen.forgotten[0].id, "b");
    assert!(seen.missing.is_empty());
    assert_eq!(managed.tunnels.keys().collect::<Vec<_>>(), ["a"]);
    const { assert!(FORGET_AFTER_LISTINGS >= 3) };
}

#[test]
fn an_entry_keyed_by_another_id_is_still_forgotten() {
    let mut managed = ManagedTunnels::default();
    managed.tunnels.insert("key".into(), entry("id"));
    for _ in 0..FORGET_AFTER_LISTINGS {
        managed.note_listing(&[]);
    }
    assert!(managed.tunnels.is_empty());
}

#[test]
fn a_missing_count_on_disk_cannot_overflow() {
    let mut managed = ManagedTunnels::default();
    let mut m = entry("a");
    m.missing_listings = u32::MAX;
    managed.tunnels.insert("a".into(), m);
    let seen = managed.note_listing(&[]);
    assert_eq!(seen.forgotten.len(), 1);
}

#[test]
fn tunnels_json_of_before_still_reads_and_new_fields_are_left_out_when_unset() {
    let old = r#"{"version":1,"tunnels":{"a":{"id":"a","name":"n","location":"l","psk_fingerprint":"f"}}}"#;
    let managed: ManagedTunnels = serde_json::from_str(old).unwrap();
    assert_eq!(managed.tunnels["a"].missing_listings, 0);
    assert_eq!(managed.tunnels["a"].psk_record_lost, None);
    let back = serde_json::to_string(&managed).unwrap();
    assert_eq!(back, old);
}

#[test]
fn a_replaced_key_marks_every_tunnel_for_a_psk_push() {
    let mut managed = ManagedTunnels::default();
    for id in ["a", "b"] {
        managed.tunnels.insert(id.into(), entry(id));
    }
    managed.tunnels.get_mut("b").unwrap().psk_record_lost = Some(PskRecordLost::ManagedFileDamaged);
    assert_eq!(managed.key_replaced(), 2);
    assert_eq!(managed.tunnels["a"].psk_fingerprint, "");
    assert_eq!(
        managed.tunnels["a"].psk_record_lost,
        Some(PskRecordLost::KeyReplaced)
    );
    assert_eq!(
        managed.tunnels["b"].psk_record_lost,
        Some(PskRecordLost::ManagedFileDamaged),
        "the first reason stands"
    );
}

#[test]
fn an_audit_is_due_once_its_time_has_come_or_when_it_is_planned_impossibly_far() {
    let day = std::time::Duration::from_secs(24 * 3600);
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
    let mut managed = ManagedTunnels::default();
    assert!(!managed.audit_due(now, day), "none planned: not due");
    managed.plan_audit(now + day);
    assert!(!managed.audit_due(now, day));
    assert!(managed.audit_due(now + day, day));
    managed.plan_audit(now + day * 2);
    assert!(
        managed.audit_due(now, day),
        "two days away with a one-day interval: the clock went back"
    );
}
