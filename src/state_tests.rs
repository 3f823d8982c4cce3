use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn temp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

type Map = BTreeMap<String, String>;

#[test]
fn json_round_trips_atomically_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(&dir.path().join("s")).unwrap();
    assert_eq!(state.load_json::<Map>("tunnels.json"), Loaded::Absent);
    let value = Map::from([("id1".to_owned(), "n".to_owned())]);
    state.write_json("tunnels.json", &value).unwrap();
    assert_eq!(state.load_json("tunnels.json"), Loaded::Found(value));
    assert_eq!(mode(&state.path().join("tunnels.json")), 0o600);
    assert!(temp_files(state.path()).is_empty());
}

#[test]
fn a_new_state_dir_is_private_and_an_existing_one_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("a/b/state");
    StateDir::open(&new).unwrap();
    assert_eq!(mode(&new), 0o700);

    for kept in [0o750, 0o755, 0o700, 0o1700] {
        let existing = dir.path().join(format!("kept-{kept:o}"));
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(kept)).unwrap();
        StateDir::open(&existing).unwrap();
        StateDir::open_read_only(&existing).unwrap();
        assert_eq!(mode(&existing), kept, "{kept:o} changed");
    }
    // Others may write there (a /tmp): refused, and left as it is.
    for open in [0o1777, 0o777, 0o770, 0o2775] {
        let shared = dir.path().join(format!("shared-{open:o}"));
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(open)).unwrap();
        let e = StateDir::open(&shared).unwrap_err().to_string();
        assert!(
            e.contains("other users may write") && e.contains(&format!("{open:o}")),
            "{e}"
        );
        assert!(StateDir::open_read_only(&shared).is_err());
        assert_eq!(mode(&shared), open, "{open:o} changed");
    }
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = StateDir::open(&file).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn a_failed_atomic_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    // The rename fails: a non-empty directory holds the name.
    std::fs::create_dir(dir.path().join("tunnels.json")).unwrap();
    std::fs::write(dir.path().join("tunnels.json/x"), b"x").unwrap();
    assert!(state.write_json("tunnels.json", &Map::new()).is_err());
    assert!(state.write_atomic("tunnels.json", b"{}", 0o600).is_err());
    assert!(temp_files(dir.path()).is_empty(), "{:?}", names(dir.path()));

    // The swanctl files go through the same write.
    let secrets = dir.path().join("popsel-chicago-secrets.conf");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("x"), b"x").unwrap();
    assert!(write_if_changed(&secrets, b"secrets { psk = 0x6869 }", 0o600).is_err());
    assert!(temp_files(dir.path()).is_empty(), "{:?}", names(dir.path()));

    // The temporary file cannot even be made: a name too long for the filesystem.
    let long = "n".repeat(250);
    assert!(write_if_changed(&dir.path().join(long), b"x", 0o600).is_err());
    assert!(temp_files(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn write_if_changed_skips_identical_content_and_never_reads_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.conf");
    assert!(write_if_changed(&p, b"x", 0o600).unwrap());
    assert!(!write_if_changed(&p, b"x", 0o600).unwrap());
    assert!(write_if_changed(&p, b"y", 0o600).unwrap());
    assert_eq!(mode(&p), 0o600);

    let fifo = dir.path().join("fifo.conf");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        write_if_changed(&fifo, b"x", 0o600).unwrap(),
        "replaced, not read"
    );
    assert_eq!(std::fs::read(&fifo).unwrap(), b"x");
}

/// Every way a state file can be unusable, and what the loader calls it.
fn damage(path: &Path, how: &str) {
    match how {
        "empty" => std::fs::write(path, b"").unwrap(),
        "garbage" => std::fs::write(path, b"{not json").unwrap(),
        "not utf-8" => std::fs::write(path, [0xff, 0xfe, 0x80]).unwrap(),
        "wrong shape" => std::fs::write(path, b"[1, 2]").unwrap(),
        "directory" => std::fs::create_dir(path).unwrap(),
        "fifo" => assert!(Command::new("mkfifo").arg(path).status().unwrap().success()),
        "huge" => std::fs::File::create(path)
            .unwrap()
            .set_len(MAX_STATE_FILE_BYTES + 1)
            .unwrap(),
        other => panic!("{other}"),
    }
}

const DAMAGES: [&str; 7] = [
    "empty",
    "garbage",
    "not utf-8",
    "wrong shape",
    "directory",
    "fifo",
    "huge",
];

#[test]
fn a_damaged_state_file_is_named_and_set_aside_under_a_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let mut aside = Vec::new();
    for how in DAMAGES {
        damage(&dir.path().join("tunnels.json"), how);
        let Loaded::Damaged(problem) = state.load_json::<Map>("tunnels.json") else {
            panic!("{how}: not damaged");
        };
        let damaged = state.set_aside("tunnels.json", problem);
        let to = damaged
            .moved_to
            .clone()
            .unwrap_or_else(|| panic!("{how}: {damaged}"));
        let name = to.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("tunnels.json.corrupt-"), "{name}");
        let text = damaged.to_string();
        assert!(
            text.contains("tunnels.json is damaged") && text.contains(&name),
            "{how}: {text}"
        );
        assert_eq!(
            state.load_json::<Map>("tunnels.json"),
            Loaded::Absent,
            "{how}"
        );
        aside.push(name);
    }
    // Set aside in the same second, they still all have names of their own.
    let mut unique = aside.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), DAMAGES.len(), "{aside:?}");
}

#[test]
fn read_only_leaves_a_damaged_file_in_place_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open_read_only(dir.path()).unwrap();
    std::fs::write(dir.path().join("selection.json"), b"{").unwrap();
    let Loaded::Damaged(problem) = state.load_json::<Map>("selection.json") else {
        panic!("not damaged");
    };
    let damaged = state.set_aside("selection.json", problem);
    assert_eq!(damaged.moved_to, None);
    assert!(damaged.to_string().contains("left in place"), "{damaged}");
    assert_eq!(
        std::fs::read(dir.path().join("selection.json")).unwrap(),
        b"{"
    );
    assert!(state.write_json("selection.json", &Map::new()).is_err());
    let line = serde_json::json!({});
    assert!(
        state
            .append_json_line("audit.log", &line, ROTATION)
            .is_err()
    );
    assert_eq!(names(dir.path()), ["selection.json"], "no lock file either");
}

#[test]
fn a_secret_key_is_made_once_never_replaced_and_exactly_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    assert_eq!(state.load_secret_key("k.key"), Loaded::Absent);
    let a = state.make_secret_key("k.key").unwrap();
    assert_eq!(a.len(), SECRET_KEY_BYTES);
    assert_eq!(state.load_secret_key("k.key"), Loaded::Found(a.clone()));
    assert_eq!(mode(&dir.path().join("k.key")), 0o600);
    // Made again (another process racing this one): the key there stands.
    assert_eq!(state.make_secret_key("k.key").unwrap(), a);
    let read_only = StateDir::open_read_only(dir.path()).unwrap();
    assert_eq!(read_only.make_secret_key("k.key").unwrap(), a);
    assert!(temp_files(dir.path()).is_empty());

    let other = StateDir::open(&dir.path().join("other")).unwrap();
    assert_ne!(
        other.make_secret_key("k.key").unwrap(),
        a,
        "one key per state dir"
    );

    for (name, bytes) in [("short.key", 31), ("long.key", 33), ("empty.key", 0)] {
        std::fs::write(dir.path().join(name), vec![7u8; bytes]).unwrap();
        match state.load_secret_key(name) {
            Loaded::Damaged(problem) => assert!(problem.contains(&format!("{bytes} bytes"))),
            other => panic!("{name}: {other:?}"),
        }
    }
    for how in ["directory", "fifo", "huge"] {
        let name = format!("{how}.key");
        damage(&dir.path().join(&name), how);
        assert!(
            matches!(state.load_secret_key(&name), Loaded::Damaged(_)),
            "{how}"
        );
    }
}

const ROTATION: Rotation = Rotation {
    max_bytes: 200,
    keep: 3,
};

#[test]
fn json_lines_are_appended_and_rotated_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    for action in ["create", "update"] {
        let line = serde_json::json!({ "action": action });
        state
            .append_json_line("audit.log", &line, ROTATION)
            .unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["action"], "update");
    assert_eq!(mode(&dir.path().join("audit.log")), 0o600);

    // 50 lines of about 40 bytes: five to a file; the newest lines are kept, the oldest go.
    for n in 0..50 {
        let line = serde_json::json!({ "n": n, "pad": "0123456789012345678" });
        state
            .append_json_line("audit.log", &line, ROTATION)
            .unwrap();
    }
    assert_eq!(
        names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("audit.log"))
            .collect::<Vec<_>>(),
        ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    );
    let mut kept = Vec::new();
    for file in ["audit.log.3", "audit.log.2", "audit.log.1", "audit.log"] {
        let path = dir.path().join(file);
        assert!(
            std::fs::metadata(&path).unwrap().len() <= ROTATION.max_bytes,
            "{file}"
        );
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            kept.push(v["n"].as_i64().unwrap());
        }
    }
    let newest: Vec<i64> = (50 - kept.len() as i64..50).collect();
    assert_eq!(kept, newest, "in order, the newest kept");
}

#[test]
fn a_log_that_is_not_a_file_is_set_aside_not_written_into() {
    for how in ["directory", "fifo"] {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        damage(&dir.path().join("audit.log"), how);
        let line = serde_json::json!({ "action": "create" });
        state
            .append_json_line("audit.log", &line, ROTATION)
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert_eq!(text, "{\"action\":\"create\"}\n", "{how}");
        assert!(
            names(dir.path())
                .iter()
                .any(|n| n.starts_with("audit.log.corrupt-"))
        );
    }
}

/// Another process holding the lock (a shell that locks `file` with flock(1) on a
/// descriptor of its own, waiting out the probes, then becomes `sleep 30`), once it holds
/// it. Killing it releases the lock, and leaves nothing behind.
fn lock_elsewhere(file: &Path) -> Child {
    let child = Command::new("sh")
        .args(["-c", "exec 9<>\"$0\" && flock 9 && exec sleep 30"])
        .arg(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while locked_elsewhere_possible(file) {
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether another process could take the lock now.
fn locked_elsewhere_possible(file: &Path) -> bool {
    Command::new("flock")
        .arg("-n")
        .arg(file)
        .arg("true")
        .status()
        .unwrap()
        .success()
}

#[test]
fn one_writer_per_state_dir_shared_within_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let lock_file = dir.path().join(LOCK_FILE);
    let a = StateDir::open(dir.path()).unwrap();
    let text = std::fs::read_to_string(&lock_file).unwrap();
    assert_eq!(text.trim(), std::process::id().to_string());
    assert!(!locked_elsewhere_possible(&lock_file), "an OS lock");
    // This process again (a reload): no self-deadlock, the lock stays while any holds it.
    let b = StateDir::open(dir.path()).unwrap();
    let c = StateDir::open(&dir.path().join(".")).unwrap();
    drop(a);
    drop(b);
    assert!(!locked_elsewhere_possible(&lock_file));
    drop(c);
    assert!(
        locked_elsewhere_possible(&lock_file),
        "released with the last"
    );
    // Read-only takes no lock.
    let _reader = StateDir::open_read_only(dir.path()).unwrap();
    assert!(locked_elsewhere_possible(&lock_file));
}

#[test]
fn a_lock_file_that_is_not_a_file_is_set_aside() {
    for how in ["directory", "fifo"] {
        let dir = tempfile::tempdir().unwrap();
        damage(&dir.path().join(LOCK_FILE), how);
        let state = StateDir::open(dir.path()).unwrap();
        assert!(!state.is_read_only());
        assert!(
            std::fs::metadata(dir.path().join(LOCK_FILE))
                .unwrap()
                .is_file()
        );
        let aside: Vec<String> = names(dir.path())
            .into_iter()
            .filter(|n| n.starts_with("popsel.lock.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{how}");
    }
}

#[test]
fn a_taken_lock_names_its_holder_and_a_dead_holder_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lock_file = dir.path().join(LOCK_FILE);
    std::fs::write(&lock_file, "4242\n").unwrap();
    let mut holder = lock_elsewhere(&lock_file);
    let e = StateDir::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("PID 4242") && e.contains(&dir.path().display().to_string()),
        "{e}"
    );
    std::fs::write(&lock_file, "not a pid").unwrap();
    let e = StateDir::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("PID unknown"), "{e}");
    assert!(
        StateDir::open_read_only(dir.path()).is_ok(),
        "plan reads beside it"
    );

    holder.kill().unwrap();
    holder.wait().unwrap();
    // The kernel released it; the PID left in the file blocks nothing.
    let state = StateDir::open(dir.path()).unwrap();
    assert!(!state.is_read_only());
    let text = std::fs::read_to_string(&lock_file).unwrap();
    assert_eq!(text.trim(), std::process::id().to_string());
}
