use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn json_round_trips_atomically_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("s")).unwrap();
    let read = || {
        state
            .read_json::<BTreeMap<String, String>>("tunnels.json")
            .unwrap()
    };
    assert_eq!(read(), None);
    let value = BTreeMap::from([("id1".to_owned(), "n".to_owned())]);
    state.write_json("tunnels.json", &value).unwrap();
    assert_eq!(read(), Some(value));
    let mode = std::fs::metadata(state.path().join("tunnels.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn an_unreadable_state_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("tunnels.json"), "{not json").unwrap();
    let e = state
        .read_json::<BTreeMap<String, String>>("tunnels.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tunnels.json") && e.contains("move it aside"),
        "{e}"
    );
}

#[test]
fn a_secret_key_is_made_once_per_state_dir_with_a_private_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let a = state.secret_key("k.key").unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(state.secret_key("k.key").unwrap(), a, "the key persists");
    let mode = std::fs::metadata(dir.path().join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let other = StateDir::open(&dir.path().join("other")).unwrap();
    assert_ne!(
        other.secret_key("k.key").unwrap(),
        a,
        "one key per state dir"
    );
    std::fs::write(dir.path().join("short.key"), b"short").unwrap();
    let e = state.secret_key("short.key").unwrap_err().to_string();
    assert!(e.contains("short.key") && e.contains("too short"), "{e}");
}

#[test]
fn write_if_changed_skips_identical_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.conf");
    assert!(write_if_changed(&p, b"x", 0o600).unwrap());
    assert!(!write_if_changed(&p, b"x", 0o600).unwrap());
    assert!(write_if_changed(&p, b"y", 0o600).unwrap());
}

#[test]
fn json_lines_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    for action in ["create", "update"] {
        state
            .append_json_line("audit.log", &serde_json::json!({ "action": action }))
            .unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["action"], "update");
    let mode = std::fs::metadata(dir.path().join("audit.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
