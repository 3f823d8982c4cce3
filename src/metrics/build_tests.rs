use super::*;
use crate::metrics::fixtures::{exposition, sample};

#[test]
fn build_info_is_always_there() {
    let text = exposition(BuildCollector::new().unwrap());
    assert!(
        text.lines()
            .any(|l| l.starts_with("popsel_build_info{") && l.ends_with(" 1"))
    );
    assert_eq!(
        sample(
            &text,
            "popsel_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "revision",
                    option_env!("POPSEL_REVISION").unwrap_or("unknown")
                )
            ]
        ),
        Some(1.0)
    );
}
