//! What every collector is made of: metric families declared as constants, so that a family's
//! name is written once and serves both the metric and the collector's list of families.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Result,
};

/// One family's name, help text and label names: an interface, kept exactly.
pub(super) struct Family {
    pub name: &'static str,
    pub help: &'static str,
    /// Empty for a family of one series.
    pub labels: &'static [&'static str],
}

impl Family {
    fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }

    pub fn gauges(&self) -> Result<GaugeVec> {
        GaugeVec::new(self.opts(), self.labels)
    }

    pub fn int_gauges(&self) -> Result<IntGaugeVec> {
        IntGaugeVec::new(self.opts(), self.labels)
    }

    pub fn counters(&self) -> Result<IntCounterVec> {
        IntCounterVec::new(self.opts(), self.labels)
    }

    pub fn histograms(&self, buckets: Vec<f64>) -> Result<HistogramVec> {
        HistogramVec::new(
            HistogramOpts::new(self.name, self.help).buckets(buckets),
            self.labels,
        )
    }

    pub fn gauge(&self) -> Result<Gauge> {
        Gauge::with_opts(self.opts())
    }

    pub fn int_gauge(&self) -> Result<IntGauge> {
        IntGauge::with_opts(self.opts())
    }
}

/// How many names `lists` hold together: the length of [`concat`]'s array.
pub(super) const fn count(lists: &[&[&str]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < lists.len() {
        n += lists[i].len();
        i += 1;
    }
    n
}

/// The names of `lists` in order, as one array a `const` can hold (slices cannot be joined in
/// a const context otherwise).
pub(super) const fn concat<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut n = 0;
    let mut i = 0;
    while i < lists.len() {
        let mut j = 0;
        while j < lists[i].len() {
            out[n] = lists[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "N must be count(lists)");
    out
}

/// Implements `prometheus::core::Collector` for a collector whose listed fields are its metric
/// families (or collectors of their own), so that a registry takes the concern as one unit. A
/// field may carry `#[cfg(…)]`.
macro_rules! collector {
    ($collector:ty { $($(#[$attr:meta])* $field:ident),+ $(,)? }) => {
        impl prometheus::core::Collector for $collector {
            fn desc(&self) -> Vec<&prometheus::core::Desc> {
                let mut descs = Vec::new();
                $($(#[$attr])* descs.extend(prometheus::core::Collector::desc(&self.$field));)+
                descs
            }

            fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
                let mut families = Vec::new();
                $($(#[$attr])* families.extend(prometheus::core::Collector::collect(&self.$field));)+
                families
            }
        }
    };
}

pub(super) use collector;
