//! What runs: popsel's version and revision, and the process collector's CPU, memory and file
//! descriptors.

#[cfg(target_os = "linux")]
use prometheus::process_collector::ProcessCollector;
use prometheus::{IntGaugeVec, Result};

use super::family::{Family, collector};

const INFO: Family = Family {
    name: "popsel_build_info",
    help: "Version and source revision of this popsel (value 1).",
    labels: &["version", "revision"],
};

/// Nothing updates it after construction: it is not kept beside the registry's copy.
pub struct BuildCollector {
    info: IntGaugeVec,
    /// The prometheus crate has one for Linux only.
    #[cfg(target_os = "linux")]
    process: ProcessCollector,
}

collector!(BuildCollector {
    info,
    #[cfg(target_os = "linux")]
    process
});

impl BuildCollector {
    pub const FAMILIES: [&'static str; 1] = [INFO.name];

    /// The process collector's families (Linux), named by the prometheus crate.
    pub const PROCESS_FAMILIES: [&'static str; 7] = [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_threads",
    ];

    pub fn new() -> Result<BuildCollector> {
        let info = INFO.int_gauges()?;
        info.with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("POPSEL_REVISION").unwrap_or("unknown"),
        ])
        .set(1);
        Ok(BuildCollector {
            info,
            #[cfg(target_os = "linux")]
            process: ProcessCollector::for_self(),
        })
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
