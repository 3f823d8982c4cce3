use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::edge::fixtures::*;

#[test]
fn files_are_written_only_on_change_and_secrets_are_private() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_swanctl(dir.path(), &location(), &selection()).unwrap());
    assert!(
        !write_swanctl(dir.path(), &location(), &selection()).unwrap(),
        "same content: no write"
    );
    let (conf, secrets) = swanctl_paths(dir.path(), &location());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o600);
    assert_eq!(mode(&conf), 0o644);
    let mut moved = selection();
    moved.primary.choice = Some(choice("Dallas", "ipsec-dal-1.pops.popsel.test"));
    assert!(write_swanctl(dir.path(), &location(), &moved).unwrap());
    assert!(
        std::fs::read_to_string(conf)
            .unwrap()
            .contains("ipsec-dal-1")
    );
}

/// The hand-off of one change of "chicago hq" from `previous` to `next`, with a hook that
/// leaves a marker file when it runs, the swanctl files going to `swanctl_dir`.
async fn hand_off_one_change(
    swanctl_dir: PathBuf,
    marker: &Path,
) -> (HandOff, Selection, Selection) {
    let location = location();
    let mut old = selection();
    old.primary.choice = Some(choice("Chicago", "ipsec-chi-1.pops.popsel.test"));
    let mut new = selection();
    new.primary.choice = Some(choice("Dallas", "ipsec-dal-1.pops.popsel.test"));
    let previous = Selection {
        version: 1,
        locations: [(location.name.clone(), old.clone())].into(),
    };
    let next = Selection {
        version: 1,
        locations: [(location.name.clone(), new.clone())].into(),
    };
    let mut change = change();
    change.location = location.name.clone();
    let settings = EdgeSettings {
        swanctl_dir: Some(swanctl_dir),
        vici_socket: None,
        on_change: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("touch {}", marker.display()),
        ]),
        on_change_timeout: Duration::from_secs(10),
    };
    let handed = hand_off(&settings, &[location], &previous, &next, &[change]).await;
    (handed, previous, next)
}

#[tokio::test]
async fn a_location_whose_swanctl_files_were_not_written_runs_no_hook_and_keeps_its_selection() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the swanctl directory should be: the write fails, even as root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let marker = dir.path().join("hook-ran");
    let (handed, previous, _) = hand_off_one_change(blocker.join("conf.d"), &marker).await;
    assert!(
        !marker.exists(),
        "the hook ran although the router has no new files to load"
    );
    assert!(handed.handed_off.is_empty(), "{:?}", handed.handed_off);
    assert_eq!(
        handed.persisted, previous,
        "the location must keep its previous selection so that the next run retries"
    );
    assert_eq!(handed.failures.len(), 1, "{:?}", handed.failures);
    assert!(
        matches!(handed.failures[0], HandOffFailure::Swanctl { .. }),
        "{:?}",
        handed.failures
    );
}

#[tokio::test]
async fn a_location_whose_swanctl_files_were_written_runs_its_hook_and_is_handed_off() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("hook-ran");
    let (handed, _, next) = hand_off_one_change(dir.path().join("conf.d"), &marker).await;
    assert!(marker.exists(), "the hook did not run");
    assert_eq!(handed.handed_off.len(), 1);
    assert_eq!(handed.persisted, next);
    assert!(handed.failures.is_empty(), "{:?}", handed.failures);
}

#[tokio::test]
async fn only_the_location_whose_files_failed_skips_its_hook() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("conf.d");
    let marker_dir = dir.path().join("ran");
    std::fs::create_dir_all(&marker_dir).unwrap();
    let failing = location();
    let mut written = location();
    written.name = "toronto".into();
    // A directory where the failing location's configuration file goes: its write fails.
    std::fs::create_dir_all(swanctl_paths(&conf_dir, &failing).0).unwrap();
    let mut previous = Selection::default();
    let mut next = Selection::default();
    let mut changes = Vec::new();
    for loc in [&failing, &written] {
        previous.locations.insert(loc.name.clone(), selection());
        let mut moved = selection();
        moved.primary.choice = Some(choice("Dallas", "ipsec-dal-1.pops.popsel.test"));
        next.locations.insert(loc.name.clone(), moved);
        let mut c = change();
        c.location = loc.name.clone();
        changes.push(c);
    }
    let settings = EdgeSettings {
        swanctl_dir: Some(conf_dir),
        vici_socket: None,
        on_change: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("touch \"{}/$POPSEL_LOCATION\"", marker_dir.display()),
        ]),
        on_change_timeout: Duration::from_secs(10),
    };
    let handed = hand_off(
        &settings,
        &[failing.clone(), written.clone()],
        &previous,
        &next,
        &changes,
    )
    .await;
    assert!(!marker_dir.join(&failing.name).exists());
    assert!(marker_dir.join(&written.name).exists());
    assert_eq!(
        handed.persisted.locations[&failing.name],
        previous.locations[&failing.name]
    );
    assert_eq!(
        handed.persisted.locations[&written.name],
        next.locations[&written.name]
    );
    assert_eq!(handed.handed_off.len(), 1);
    assert_eq!(handed.handed_off[0].location, written.name);
}

/// charon out of reach: the locations of this host keep their previous selection and their
/// SAs read as down (not as whatever was last seen); a location not measured from here is not
/// charon's, and its new selection stands.
#[tokio::test]
async fn without_charon_the_hosts_locations_keep_their_selection_and_read_as_down() {
    let dir = tempfile::tempdir().unwrap();
    let here = location();
    let mut elsewhere = location();
    elsewhere.name = "frankfurt".into();
    elsewhere.local = false;
    let (old, mut new) = (selection(), selection());
    new.primary.choice = Some(choice("Dallas", "ipsec-dal-1.pops.popsel.test"));
    let both = |s: &LocationSelection| Selection {
        version: 1,
        locations: [
            (here.name.clone(), s.clone()),
            (elsewhere.name.clone(), s.clone()),
        ]
        .into(),
    };
    let settings = EdgeSettings {
        vici_socket: Some(dir.path().join("no-charon.vici")),
        ..EdgeSettings::default()
    };
    let locations = [here.clone(), elsewhere.clone()];
    let handed = hand_off(&settings, &locations, &both(&old), &both(&new), &[]).await;
    assert!(
        handed
            .failures
            .iter()
            .any(|f| matches!(f, HandOffFailure::Charon { .. })),
        "{:?}",
        handed.failures
    );
    assert_eq!(handed.persisted.locations[&here.name], old, "kept");
    assert_eq!(
        handed.persisted.locations[&elsewhere.name], new,
        "not charon's"
    );
    let sas = handed.ipsec.expect("the SAs are reported");
    assert_eq!(sas.len(), 2, "{sas:?}");
    assert!(
        sas.iter()
            .all(|s| s.location == here.name && !s.up && !s.ike_up)
    );
}
