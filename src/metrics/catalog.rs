//! The catalogue stage's families: the catalogue in use, fresh or cached.

use std::time::SystemTime;

use prometheus::{Gauge, IntGauge, Result};

use super::family::{Family, collector};
use crate::catalog::Catalog;
use crate::timestamp::unix_seconds_f64;

const POPS: Family = Family {
    name: "popsel_catalog_pops",
    help: "Usable PoPs in the catalogue in use.",
    labels: &[],
};
const SKIPPED: Family = Family {
    name: "popsel_catalog_skipped_entries",
    help: "Catalogue entries skipped as unusable.",
    labels: &[],
};
const LAST_UPDATE: Family = Family {
    name: "popsel_catalog_last_update_timestamp_seconds",
    help: "When the catalogue in use was fetched from the API (a cached one keeps its time).",
    labels: &[],
};

/// Clones share their series (the registry holds one, the agent updates another).
#[derive(Clone)]
pub struct CatalogCollector {
    pops: IntGauge,
    skipped: IntGauge,
    last_update: Gauge,
}

collector!(CatalogCollector {
    pops,
    skipped,
    last_update
});

impl CatalogCollector {
    pub const FAMILIES: [&'static str; 3] = [POPS.name, SKIPPED.name, LAST_UPDATE.name];

    pub fn new() -> Result<CatalogCollector> {
        Ok(CatalogCollector {
            pops: POPS.int_gauge()?,
            skipped: SKIPPED.int_gauge()?,
            last_update: LAST_UPDATE.gauge()?,
        })
    }

    /// `fetched`: when the catalogue came from the API, not when it was loaded from the cache,
    /// so that a stale catalogue shows.
    pub fn observe(&self, catalog: &Catalog, fetched: SystemTime) {
        self.pops.set(catalog.pops.len() as i64);
        self.skipped.set(catalog.skipped.len() as i64);
        self.last_update.set(unix_seconds_f64(fetched));
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
