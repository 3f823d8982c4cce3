//! `plan` is pure: config + actual tunnels + managed tunnels + fingerprints in, actions out.

use std::path::Path;

use secrecy::SecretString;

use super::*;
use crate::config::Config;
use crate::fixtures::{
    CHICAGO, CHICAGO_1 as NAME_1, CHICAGO_2 as NAME_2, CHICAGO_AUTH_1 as AUTH_1,
    CHICAGO_AUTH_2 as AUTH_2, CHICAGO_LOCATION_ID as LOC_ID, SiteToml,
};
use crate::reconcile::apply::{ApplyError, ApplyReport, Outcome};
use crate::reconcile::managed::ManagedTunnel;
use crate::reconcile::render::{plan_json, plan_text};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_LOC_ID: &str = "5a1c0e4b-8d2f-4f3e-9b7a-0c6d1e2f3a4b";
const PSK_1: &str = "first-psk-Zq81xw";
const PSK_2: &str = "second-psk-Vb47kr";

/// The demo site's "chicago" alone, its tunnels' PSKs from `PSK_1` and `PSK_2`.
fn chicago() -> SiteToml {
    SiteToml::demo()
        .only(CHICAGO)
        .psk_env(NAME_1, "PSK_1")
        .psk_env(NAME_2, "PSK_2")
}

/// `site` parsed with `psk_1` in `PSK_1` and [`PSK_2`] in `PSK_2`.
fn parse(site: &SiteToml, psk_1: &str) -> Config {
    let psk_1 = psk_1.to_owned();
    let env = move |k: &str| match k {
        "PSK_1" => Some(psk_1.clone()),
        "PSK_2" => Some(PSK_2.to_owned()),
        _ => None,
    };
    Config::parse_with(&site.render(), "t.toml", Path::new("/nonexistent"), &env)
        .expect("valid config")
}

/// One location, "chicago", with the primary and, when asked, the secondary tunnel. The
/// primary's PSK is `psk_1`.
fn config(psk_1: &str, secondary: bool) -> Config {
    let site = if secondary {
        chicago()
    } else {
        chicago().without_tunnel(NAME_2)
    };
    parse(&site, psk_1)
}

fn both() -> Config {
    config(PSK_1, true)
}

fn fingerprinter() -> Fingerprinter {
    Fingerprinter::new(KEY)
}

fn fp(psk: &str) -> String {
    fingerprinter().fingerprint(&SecretString::from(psk.to_owned()))
}

fn tunnel(id: &str, name: &str, auth: &str, location_id: &str) -> Tunnel {
    Tunnel {
        id: id.into(),
        name: name.into(),
        authentication_id: auth.into(),
        location_id: location_id.into(),
    }
}

/// `(id, name, fingerprint)` of each managed tunnel.
fn managed(entries: &[(&str, &str, &str)]) -> ManagedTunnels {
    ManagedTunnels {
        version: 1,
        tunnels: entries
            .iter()
            .map(|(id, name, fingerprint)| {
                (
                    (*id).to_owned(),
                    ManagedTunnel {
                        id: (*id).to_owned(),
                        name: (*name).to_owned(),
                        location: CHICAGO.into(),
                        psk_fingerprint: (*fingerprint).to_owned(),
                        psk_record_lost: None,
                        missing_listings: 0,
                    },
                )
            })
            .collect(),
        next_audit: None,
    }
}

/// Both configured tunnels exist as configured and popsel pushed the configured PSKs.
fn in_sync() -> (Vec<Tunnel>, ManagedTunnels) {
    (
        vec![
            tunnel("t1", NAME_1, AUTH_1, LOC_ID),
            tunnel("t2", NAME_2, AUTH_2, LOC_ID),
        ],
        managed(&[("t1", NAME_1, &fp(PSK_1)), ("t2", NAME_2, &fp(PSK_2))]),
    )
}

fn run(config: &Config, actual: &[Tunnel], managed: &ManagedTunnels, prune: bool) -> Plan {
    plan(&config.locations, actual, managed, &fingerprinter(), prune)
}

fn unchanged(tunnel: &str, id: &str) -> Action {
    Action::Unchanged {
        location: CHICAGO.into(),
        tunnel: tunnel.into(),
        id: id.into(),
    }
}

fn change(field: &'static str, old: &str, new: &str) -> FieldChange {
    FieldChange {
        field,
        old: old.into(),
        new: new.into(),
    }
}

/// The single action about `tunnel` (configured tunnels, deletes and orphans alike).
fn action_for<'a>(plan: &'a Plan, name: &str) -> &'a Action {
    let found: Vec<&Action> = plan.actions.iter().filter(|a| a.tunnel() == name).collect();
    assert_eq!(found.len(), 1, "one action for {name:?} in {plan:#?}");
    found[0]
}

fn conflict_reason<'a>(plan: &'a Plan, name: &str) -> &'a str {
    match action_for(plan, name) {
        Action::Conflict { reason, .. } => reason,
        other => panic!("expected a conflict for {name:?}, got {other:?}"),
    }
}

#[test]
fn absent_tunnels_are_created() {
    let plan = run(&both(), &[], &ManagedTunnels::default(), false);
    assert_eq!(
        plan.actions,
        vec![
            Action::Create {
                location: CHICAGO.into(),
                tunnel: NAME_1.into()
            },
            Action::Create {
                location: CHICAGO.into(),
                tunnel: NAME_2.into()
            },
        ]
    );
    assert_eq!((plan.writes(), plan.conflicts()), (2, 0));
}

#[test]
fn unrelated_tunnels_of_the_account_do_not_matter() {
    let actual = vec![tunnel(
        "x1",
        "Denver IPSec1",
        "denver@branch.example",
        OTHER_LOC_ID,
    )];
    let plan = run(&both(), &actual, &ManagedTunnels::default(), true);
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, Action::Create { .. })),
        "{plan:#?}"
    );
    assert_eq!(plan.writes(), 2);
}

#[test]
fn a_managed_tunnel_matching_in_every_field_and_psk_is_unchanged() {
    let (actual, managed) = in_sync();
    let plan = run(&both(), &actual, &managed, false);
    assert_eq!(
        plan.actions,
        vec![unchanged(NAME_1, "t1"), unchanged(NAME_2, "t2")]
    );
    assert_eq!((plan.writes(), plan.conflicts()), (0, 0));
    // Prune changes nothing when every managed tunnel is in the config.
    assert_eq!(run(&both(), &actual, &managed, true), plan);
}

#[test]
fn an_update_lists_each_differing_field_old_to_new() {
    let (mut actual, managed) = in_sync();
    actual[0] = tunnel("t1", NAME_1, "someone@else.example", OTHER_LOC_ID);
    let plan = run(&both(), &actual, &managed, false);
    assert_eq!(
        action_for(&plan, NAME_1),
        &Action::Update {
            location: CHICAGO.into(),
            tunnel: NAME_1.into(),
            id: "t1".into(),
            changes: vec![
                change("authentication_id", "someone@else.example", AUTH_1),
                change("location_id", OTHER_LOC_ID, LOC_ID),
            ],
            psk: None,
        }
    );
    assert_eq!(action_for(&plan, NAME_2), &unchanged(NAME_2, "t2"));
    assert_eq!(plan.writes(), 1);
}

#[test]
fn a_single_differing_field_is_the_only_change_listed() {
    let (mut actual, managed) = in_sync();
    actual[1].location_id = OTHER_LOC_ID.into();
    let plan = run(&both(), &actual, &managed, false);
    let Action::Update { changes, psk, .. } = action_for(&plan, NAME_2) else {
        panic!("{plan:#?}")
    };
    assert_eq!(changes, &[change("location_id", OTHER_LOC_ID, LOC_ID)]);
    assert_eq!(*psk, None);
}

#[test]
fn a_psk_changed_in_the_config_is_rotated() {
    let (actual, managed) = in_sync();
    let plan = run(
        &config("rotated-psk-Hn20pq", true),
        &actual,
        &managed,
        false,
    );
    assert_eq!(
        action_for(&plan, NAME_1),
        &Action::Update {
            location: CHICAGO.into(),
            tunnel: NAME_1.into(),
            id: "t1".into(),
            changes: vec![],
            psk: Some(PskReason::Rotated),
        }
    );
    assert_eq!(action_for(&plan, NAME_2), &unchanged(NAME_2, "t2"));
}

#[test]
fn a_psk_popsel_has_no_record_of_pushing_is_unknown() {
    // Managed, but no fingerprint recorded.
    let (actual, _) = in_sync();
    let managed = managed(&[("t1", NAME_1, ""), ("t2", NAME_2, &fp(PSK_2))]);
    let plan = run(&both(), &actual, &managed, false);
    let Action::Update { changes, psk, .. } = action_for(&plan, NAME_1) else {
        panic!("{plan:#?}")
    };
    assert!(changes.is_empty());
    assert_eq!(*psk, Some(PskReason::Unknown));

    // Not managed at all, but recognisably this tunnel (same name and authentication ID): it
    // is taken over, and its PSK pushed since popsel cannot know it.
    let plan = run(&both(), &actual, &ManagedTunnels::default(), false);
    for (name, id) in [(NAME_1, "t1"), (NAME_2, "t2")] {
        assert_eq!(
            action_for(&plan, name),
            &Action::Update {
                location: CHICAGO.into(),
                tunnel: name.into(),
                id: id.into(),
                changes: vec![],
                psk: Some(PskReason::Unknown),
            }
        );
    }
    assert_eq!(plan.conflicts(), 0);
}

#[test]
fn tunnels_are_relearned_by_name_and_authentication_id_both() {
    let actual = vec![
        tunnel("t1", NAME_1, AUTH_1, OTHER_LOC_ID),
        // The secondary's name with someone else's authentication ID: not ours.
        tunnel("x2", NAME_2, "someone@else.example", LOC_ID),
        tunnel("x3", "Somebody's", AUTH_2, LOC_ID),
    ];
    let mut managed = ManagedTunnels::default();
    let learned = managed.relearn(&both().locations, &actual);
    assert_eq!(learned.len(), 1);
    assert_eq!(managed.tunnels.keys().collect::<Vec<_>>(), ["t1"]);
    let m = &managed.tunnels["t1"];
    assert_eq!((m.name.as_str(), m.location.as_str()), (NAME_1, CHICAGO));
    assert_eq!(m.psk_fingerprint, "");
    assert_eq!(m.psk_record_lost, Some(PskRecordLost::ManagedFileDamaged));
    // The plan then pushes its PSK, saying why, and leaves the others to a human.
    let plan = run(&both(), &actual, &managed, false);
    assert_eq!(
        action_for(&plan, NAME_1).psk_reason(),
        Some(PskReason::Relearned)
    );
    assert_eq!(plan.conflicts(), 1, "{plan:#?}");
}

#[test]
fn a_lost_psk_record_pushes_the_psk_and_says_why() {
    let (actual, mut managed) = in_sync();
    // Re-learned after a damaged tunnels.json; a new fingerprint key for the other.
    let t1 = managed.tunnels.get_mut("t1").unwrap();
    t1.psk_fingerprint.clear();
    t1.psk_record_lost = Some(PskRecordLost::ManagedFileDamaged);
    let t2 = managed.tunnels.get_mut("t2").unwrap();
    t2.psk_record_lost = Some(PskRecordLost::KeyReplaced);
    let plan = run(&both(), &actual, &managed, false);
    for (name, reason, file) in [
        (NAME_1, PskReason::Relearned, "tunnels.json"),
        (NAME_2, PskReason::KeyReplaced, "fingerprint.key"),
    ] {
        let action = action_for(&plan, name);
        assert_eq!(
            action.psk_reason(),
            Some(reason),
            "{name}: even with a fingerprint that matches"
        );
        assert!(reason.describe().contains(file));
    }
    let text = plan_text(&plan, None);
    assert!(text.contains("tunnels.json was damaged"), "{text}");
    assert!(
        text.contains("fingerprint.key was damaged or missing"),
        "{text}"
    );
}

#[test]
fn a_managed_tunnel_renamed_in_the_config_is_found_by_its_authentication_id() {
    let (mut actual, mut managed) = in_sync();
    actual[0].name = "Chicago old name".into();
    managed.tunnels.get_mut("t1").unwrap().name = "Chicago old name".into();
    let plan = run(&both(), &actual, &managed, true);
    assert_eq!(
        plan.actions,
        vec![
            Action::Update {
                location: CHICAGO.into(),
                tunnel: NAME_1.into(),
                id: "t1".into(),
                changes: vec![change("name", "Chicago old name", NAME_1)],
                psk: None,
            },
            unchanged(NAME_2, "t2"),
        ],
        "an update in place: no create, no delete even with prune"
    );
}

#[test]
fn an_unmanaged_tunnel_with_the_name_but_another_authentication_id_is_a_conflict() {
    let actual = vec![tunnel("x1", NAME_1, "someone@else.example", LOC_ID)];
    let plan = run(&both(), &actual, &ManagedTunnels::default(), true);
    let reason = conflict_reason(&plan, NAME_1);
    assert!(
        reason.contains("x1") && reason.contains("someone@else.example"),
        "{reason}"
    );
    assert!(reason.contains("does not manage"), "{reason}");
    assert!(matches!(action_for(&plan, NAME_2), Action::Create { .. }));
    assert_eq!((plan.writes(), plan.conflicts()), (1, 1));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Delete { .. })),
        "never deleted: popsel does not manage it"
    );
}

#[test]
fn an_authentication_id_held_by_an_unmanaged_tunnel_is_a_conflict() {
    let actual = vec![tunnel("x1", "Somebody's tunnel", AUTH_1, OTHER_LOC_ID)];
    let plan = run(&both(), &actual, &ManagedTunnels::default(), true);
    let reason = conflict_reason(&plan, NAME_1);
    assert!(
        reason.contains(AUTH_1) && reason.contains("Somebody's tunnel") && reason.contains("x1"),
        "{reason}"
    );
    assert!(reason.contains("does not manage"), "{reason}");
    assert!(matches!(action_for(&plan, NAME_2), Action::Create { .. }));
    assert_eq!(plan.conflicts(), 1);
}

#[test]
fn an_authentication_id_held_by_another_tunnel_blocks_the_update_of_a_managed_one() {
    // t1 is popsel's, but its configured authentication ID now belongs to someone else's x1.
    let actual = vec![
        tunnel("t1", NAME_1, "chicago-old@branch.example", LOC_ID),
        tunnel("x1", "Somebody's tunnel", AUTH_1, LOC_ID),
    ];
    let managed = managed(&[("t1", NAME_1, &fp(PSK_1))]);
    let plan = run(&config(PSK_1, false), &actual, &managed, true);
    let reason = conflict_reason(&plan, NAME_1);
    assert!(reason.contains("held by another tunnel"), "{reason}");
    assert!(reason.contains("x1"), "{reason}");
    assert_eq!(
        plan.actions.len(),
        1,
        "t1 is claimed, not pruned: {plan:#?}"
    );
}

#[test]
fn prune_deletes_only_managed_tunnels_missing_from_the_config() {
    let (mut actual, mut managed) = in_sync();
    // Someone else's tunnel, never managed.
    actual.push(tunnel(
        "x1",
        "Manual tunnel",
        "manual@branch.example",
        LOC_ID,
    ));
    // Managed once, already gone from the account.
    managed
        .tunnels
        .extend(self::managed(&[("gone", "Gone", "ab")]).tunnels);
    let primary_only = config(PSK_1, false);
    let plan = run(&primary_only, &actual, &managed, true);
    assert_eq!(
        plan.actions,
        vec![
            unchanged(NAME_1, "t1"),
            Action::Delete {
                tunnel: NAME_2.into(),
                id: "t2".into()
            },
        ]
    );
    assert_eq!(plan.writes(), 1);
}

#[test]
fn without_prune_a_managed_tunnel_missing_from_the_config_is_an_orphan() {
    let (mut actual, managed) = in_sync();
    actual.push(tunnel(
        "x1",
        "Manual tunnel",
        "manual@branch.example",
        LOC_ID,
    ));
    let plan = run(&config(PSK_1, false), &actual, &managed, false);
    assert_eq!(
        plan.actions,
        vec![
            unchanged(NAME_1, "t1"),
            Action::Orphan {
                tunnel: NAME_2.into(),
                id: "t2".into()
            },
        ]
    );
    assert_eq!(
        (plan.writes(), plan.conflicts()),
        (0, 0),
        "an orphan is neither a write nor a conflict"
    );
}

#[test]

fn no_tunnel_is_the_target_of_two_actions() {
    // The config renames popsel's "Chicago IPSec2" (AUTH_2) to "Chicago IPSec3" and adds a new
    // "Chicago IPSec2" with another authentication ID. The existing tunnel t2 is found by
    // name for the new entry and by authentication ID for the renamed one.
    let site = chicago()
        .set(NAME_1, "authentication_id", AUTH_2)
        .psk_env(NAME_1, "PSK_2")
        .set(NAME_1, "name", "Chicago IPSec3")
        .set(NAME_2, "authentication_id", "chicago-new@branch.example")
        .psk_env(NAME_2, "PSK_1");
    let config = parse(&site, PSK_1);
    let actual = vec![tunnel("t2", NAME_2, AUTH_2, LOC_ID)];
    let managed = managed(&[("t2", NAME_2, &fp(PSK_2))]);
    let plan = run(&config, &actual, &managed, false);
    // The API tunnel each action touches or keeps.
    let ids: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Update { id, .. }
            | Action::Unchanged { id, .. }
            | Action::Delete { id, .. }
            | Action::Orphan { id, .. } => Some(id.as_str()),
            Action::Create { .. } | Action::Conflict { .. } => None,
        })
        .collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{plan:#?}");
}

#[test]
fn plan_text_shows_every_kind_of_action_and_never_a_psk() {
    let rotated = "rotated-psk-Hn20pq";
    let actual = vec![
        tunnel("t1", NAME_1, AUTH_1, OTHER_LOC_ID),
        tunnel("t2", NAME_2, AUTH_2, LOC_ID),
        tunnel("t3", "Chicago IPSec3", "chicago-3@branch.example", LOC_ID),
    ];
    let managed = managed(&[
        ("t1", NAME_1, &fp(PSK_1)),
        ("t3", "Chicago IPSec3", &fp(PSK_1)),
    ]);
    let plan = run(&config(rotated, true), &actual, &managed, false);
    let text = plan_text(&plan, None);
    assert!(
        text.contains("  ~ update    \"Chicago IPSec1\" (t1)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "        location_id: \"{OTHER_LOC_ID}\" → \"{LOC_ID}\"\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("        psk: (sensitive) (changed in the config)\n"),
        "{text}"
    );
    assert!(
        text.contains("        psk: (sensitive) (popsel has not pushed it to this tunnel yet)\n"),
        "{text}"
    );
    assert!(
        text.contains("  ? orphan    \"Chicago IPSec3\" (t3)"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 2 to update, 0 to delete, 0 unchanged, 0 conflict(s)."),
        "{text}"
    );

    let pruned = run(&config(rotated, true), &actual, &managed, true);
    let text = plan_text(&pruned, None);
    assert!(
        text.contains("  - delete    \"Chicago IPSec3\" (t3)"),
        "{text}"
    );

    let mut outputs = vec![
        plan_text(&plan, None),
        plan_text(&pruned, None),
        plan_json(&plan).to_string(),
        plan_json(&pruned).to_string(),
        format!("{plan:?}"),
    ];
    // After an apply too.
    let outcomes = [
        Outcome::Updated,
        Outcome::Failed(ApplyError::NotInConfig),
        Outcome::AlreadyThere { id: "t1".into() },
    ];
    let report = ApplyReport {
        results: plan.actions.iter().cloned().zip(outcomes).collect(),
    };
    outputs.push(plan_text(&plan, Some(&report)));
    for out in &outputs {
        for psk in [PSK_1, PSK_2, rotated] {
            assert!(!out.contains(psk), "a PSK shows in {out}");
        }
    }
}

#[test]
fn plan_text_marks_creates_unchanged_and_conflicts() {
    let actual = vec![
        tunnel("x1", NAME_1, "someone@else.example", LOC_ID),
        tunnel("t2", NAME_2, AUTH_2, LOC_ID),
    ];
    let managed = managed(&[("t2", NAME_2, &fp(PSK_2))]);
    let plan = run(&both(), &actual, &managed, false);
    let text = plan_text(&plan, None);
    assert!(
        text.contains("  ! conflict  \"Chicago IPSec1\": "),
        "{text}"
    );
    assert!(
        text.contains("  = unchanged \"Chicago IPSec2\" (t2)"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to create, 0 to update, 0 to delete, 1 unchanged, 1 conflict(s)."),
        "{text}"
    );
    let created = run(&both(), &[], &ManagedTunnels::default(), false);
    let text = plan_text(&created, None);
    assert!(
        text.contains("  + create    \"Chicago IPSec1\" (location chicago)"),
        "{text}"
    );
    let json = plan_json(&created);
    assert_eq!(json["writes"], 2);
    assert_eq!(json["actions"][0]["action"], "create");
}

#[test]
fn reading_by_id_serves_while_every_configured_tunnel_is_managed_and_in_the_last_listing() {
    let site = both();
    let (actual, mut managed) = in_sync();
    assert_eq!(managed.first_unmanaged(&site.locations), None);
    assert!(!run(&site, &actual, &managed, false).needs_account());

    if let Some(m) = managed.tunnels.get_mut("t2") {
        m.missing_listings = 1;
    }
    assert_eq!(managed.first_unmanaged(&site.locations), Some(NAME_2));
    let (_, managed) = in_sync();
    assert_eq!(
        managed.first_unmanaged(&config(PSK_1, false).locations),
        None,
        "a managed tunnel gone from the config is an orphan, read by id too"
    );
}

#[test]
fn a_plan_that_would_create_or_finds_a_conflict_needs_the_whole_account() {
    let config = both();
    let (mut actual, managed) = in_sync();
    actual.pop();
    assert!(
        run(&config, &actual, &managed, false).needs_account(),
        "a create: the tunnel may exist under its name"
    );
    let (mut actual, managed) = in_sync();
    actual[1].authentication_id = AUTH_1.into();
    let plan = run(&config, &actual, &managed, false);
    assert!(plan.conflicts() > 0 && plan.needs_account());
}
