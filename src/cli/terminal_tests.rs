use std::ffi::OsStr;

use super::*;

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    assert!(colour(true, None));
    assert!(!colour(false, None), "never off a terminal");
    for set in ["1", "0", "true", "false", "yes", " "] {
        // Any value but the empty string disables colour, "0" and "false" included.
        assert!(!colour(true, Some(OsStr::new(set))), "NO_COLOR={set:?}");
        assert!(!colour(false, Some(OsStr::new(set))), "NO_COLOR={set:?}");
    }
    assert!(
        colour(true, Some(OsStr::new(""))),
        "an empty NO_COLOR is unset"
    );
}
