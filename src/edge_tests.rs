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
