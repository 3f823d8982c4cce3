use std::time::Duration;

use super::*;
use crate::catalog::Skipped;
use crate::metrics::fixtures::{exposition, pop, sample};

#[test]
fn the_catalogue_in_use_is_counted_with_its_fetch_time() {
    let c = CatalogCollector::new().unwrap();
    let catalog = Catalog {
        pops: vec![pop("Frankfurt"), pop("Munich")],
        skipped: vec![Skipped {
            country: "DE".into(),
            city: "Berlin".into(),
            reason: "no address".into(),
        }],
    };
    c.observe(
        &catalog,
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_500),
    );
    let text = exposition(c.clone());
    assert_eq!(sample(&text, "popsel_catalog_pops", &[]), Some(2.0));
    assert_eq!(
        sample(&text, "popsel_catalog_skipped_entries", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "popsel_catalog_last_update_timestamp_seconds", &[]),
        Some(1.5)
    );
}
