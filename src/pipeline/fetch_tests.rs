use std::time::{Duration, SystemTime};

use super::*;
use crate::state::{Loaded, StateDir};

const NOW: Duration = Duration::from_secs(1_767_225_600);

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + NOW
}

/// A cache whose `fetched_unix` is `value` (any JSON number).
fn cache_with(fetched_unix: &str) -> (tempfile::TempDir, StateDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    let document = crate::sim::SAMPLE_CATALOG;
    let text = format!("{{\"fetched_unix\": {fetched_unix}, \"document\": {document}}}");
    std::fs::write(dir.path().join(CATALOG_FILE), text).unwrap();
    (dir, state)
}

fn fetched(fetched_unix: &str) -> SystemTime {
    let (_dir, state) = cache_with(fetched_unix);
    match read_cache(&state, now()) {
        Loaded::Found(cached) => {
            assert_eq!(cached.catalog.pops.len(), 52, "the catalogue is used");
            cached.fetched
        }
        other => panic!("{fetched_unix}: {:?}", other.map_kind()),
    }
}

trait Kind {
    fn map_kind(&self) -> String;
}

impl<T> Kind for Loaded<T> {
    fn map_kind(&self) -> String {
        match self {
            Loaded::Absent => "absent".into(),
            Loaded::Found(_) => "found".into(),
            Loaded::Damaged(problem) => format!("damaged: {problem}"),
        }
    }
}

#[test]
fn a_cached_catalogue_keeps_its_fetch_time() {
    assert_eq!(
        fetched("1767225000.5"),
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1_767_225_000.5)
    );
}

/// `1e300` panicked once (`Duration::from_secs_f64`); no number on disk may, and a time that is
/// no time, or one still to come, is taken as the epoch: stale, never fresh.
#[test]
fn hostile_fetch_times_are_the_epoch_and_never_panic() {
    for hostile in [
        "1e300",
        "-1e300",
        "-1",
        "-0.5",
        "1.7976931348623157e308",
        "-1.7976931348623157e308",
        "18446744073709551616",
        "9.3e18",
        "5e18",
        // A minute from now: a clock set back since.
        "1767225660",
    ] {
        assert_eq!(fetched(hostile), SystemTime::UNIX_EPOCH, "{hostile}");
    }
    assert_eq!(fetched("0"), SystemTime::UNIX_EPOCH);
    assert_eq!(fetched("1e-300"), SystemTime::UNIX_EPOCH + Duration::ZERO);
}

#[test]
fn a_cache_that_is_not_one_is_damaged_not_absent() {
    for text in [
        "",
        "{",
        "1e400",
        "{\"fetched_unix\": \"soon\", \"document\": {}}",
        "[]",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(CATALOG_FILE), text).unwrap();
        assert!(
            matches!(read_cache(&state, now()), Loaded::Damaged(_)),
            "{text:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path()).unwrap();
    assert!(matches!(read_cache(&state, now()), Loaded::Absent));
}
