//! From the file as written to a `Config`: every value checked, every problem collected with
//! its key path before anything is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod credential;
mod locations;

use super::raw::{
    RawAgent, RawApi, RawConfig, RawDns, RawEdge, RawMetrics, RawProbe, RawSelection,
};
use super::{Config, DEFAULT_STATE_DIR};
use crate::atmos::ApiSettings;
use crate::atmos::origin::{check_base_url, shown_url};
use crate::catalog::Filter;
use crate::edge::EdgeSettings;
use crate::metrics::MetricsSettings;
use crate::probe::icmp::MAX_CONCURRENCY;
use crate::probe::{ProbeSettings, interface_name};
use crate::resolve::dns::DnsSettings;
use crate::resolve::nameserver::parse_nameserver;
use crate::schedule::Schedule;
use crate::select::SelectionSettings;
use crate::status::{StatusSettings, Watched};

/// Collects problems as `key.path: message`.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, key: &str, message: impl std::fmt::Display) {
        self.0.push(format!("{key}: {message}"));
    }
}

fn positive(p: &mut Problems, key: &str, d: Option<Duration>, default: Duration) -> Duration {
    match d {
        Some(d) if d.is_zero() => {
            p.add(key, "must be more than 0s");
            default
        }
        Some(d) => d,
        None => default,
    }
}

/// A duration from more than 0 to `max`: a larger one is a typo or a hostile file, and would
/// overflow the clock arithmetic done with it.
fn between(
    p: &mut Problems,
    key: &str,
    d: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Duration {
    let d = positive(p, key, d, default);
    at_most(p, key, d, max)
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn at_most(p: &mut Problems, key: &str, d: Duration, max: Duration) -> Duration {
    if d > max {
        p.add(
            key,
            format!(
                "{} is more than {}",
                humantime::format_duration(d),
                humantime::format_duration(max)
            ),
        );
        return max;
    }
    d
}

fn resolve_path(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

pub(super) fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<String>> {
    let mut p = Problems::default();
    let api = api(&mut p, raw.api, base, env);
    let probe = probe(&mut p, raw.probe);
    let dns = dns(&mut p, raw.dns);
    let selection = selection(&mut p, raw.selection);
    let state_dir = resolve_path(
        base,
        &raw.state
            .dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    );
    let locations = locations::locations(&mut p, raw.locations, base, env);
    let edge = edge(&mut p, raw.edge, base);
    let schedule = schedule(&mut p, raw.agent);
    let metrics = metrics(&mut p, raw.metrics);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        api,
        probe,
        dns,
        selection,
        state_dir,
        locations,
        edge,
        schedule,
        metrics,
        status: StatusSettings {
            watch: watched(&mut p, raw.connectors.watch),
        },
    })
}

fn api(
    p: &mut Problems,
    raw: RawApi,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> ApiSettings {
    let defaults = ApiSettings::default();
    if let Some(size) = raw.page_size {
        if !(1..=1000).contains(&size) {
            p.add(
                "api.page_size",
                format!("{size} is out of range; use 1 to 1000"),
            );
        }
    }
    let timeout = between(p, "api.timeout", raw.timeout, defaults.timeout, 10 * MINUTE);
    let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
    if let Some(url) = &raw.base_url {
        if let Err(problem) = check_base_url(url, allow_insecure_http) {
            p.add(
                "api.base_url",
                format!("{:?} is not usable: {problem}", shown_url(url)),
            );
        }
    }
    let token_file = raw.token_file.and_then(|file| {
        credential::secret_path(&file, base, env)
            .map_err(|why| p.add("api.token_file", why))
            .ok()
    });
    ApiSettings {
        base_url: raw.base_url,
        token_file,
        timeout,
        page_size: raw.page_size.unwrap_or(defaults.page_size),
        max_response_bytes: byte_cap(
            p,
            "api.max_response_bytes",
            raw.max_response_bytes,
            defaults.max_response_bytes,
        ),
        max_catalog_bytes: byte_cap(
            p,
            "api.max_catalog_bytes",
            raw.max_catalog_bytes,
            defaults.max_catalog_bytes,
        ),
        allow_insecure_http,
    }
}

/// The smallest and largest body caps: below 64 KiB not even one page of objects fits; above
/// 1 GiB one answer could take a router's memory.
const BYTE_CAP_RANGE: std::ops::RangeInclusive<u64> = (64 << 10)..=(1 << 30);

fn byte_cap(p: &mut Problems, key: &str, value: Option<u64>, default: usize) -> usize {
    let Some(value) = value else {
        return default;
    };
    if !BYTE_CAP_RANGE.contains(&value) {
        p.add(
            key,
            format!(
                "{value} is out of range; use {} (64 KiB) to {} (1 GiB) bytes",
                BYTE_CAP_RANGE.start(),
                BYTE_CAP_RANGE.end()
            ),
        );
        return default;
    }
    usize::try_from(value).unwrap_or(default)
}

fn probe(p: &mut Problems, raw: RawProbe) -> ProbeSettings {
    let defaults = ProbeSettings::default();
    let count = raw.count.unwrap_or(defaults.count);
    if !(1..=100).contains(&count) {
        p.add(
            "probe.count",
            format!("{count} is out of range; use 1 to 100"),
        );
    }
    let max_pps = raw.max_pps.unwrap_or(defaults.max_pps);
    if max_pps == 0 {
        p.add("probe.max_pps", "must be at least 1");
    }
    let concurrency = raw.concurrency.unwrap_or(defaults.concurrency);
    if concurrency == 0 {
        p.add("probe.concurrency", "must be at least 1");
    } else if concurrency > MAX_CONCURRENCY {
        p.add(
            "probe.concurrency",
            format!("{concurrency} is out of range; use 1 to {MAX_CONCURRENCY}"),
        );
    }
    let interval = positive(p, "probe.interval", raw.interval, defaults.interval);
    let interval = at_most(p, "probe.interval", interval, Duration::from_secs(60));
    let timeout = positive(p, "probe.timeout", raw.timeout, defaults.timeout);
    let timeout = at_most(p, "probe.timeout", timeout, Duration::from_secs(60));
    let interface = raw.interface.and_then(|name| match interface_name(&name) {
        Ok(name) => Some(name),
        Err(e) => {
            p.add("probe.interface", e);
            None
        }
    });
    ProbeSettings {
        count,
        interval,
        timeout,
        concurrency,
        max_pps,
        interface,
        bypass_xfrm: raw.bypass_xfrm.unwrap_or(defaults.bypass_xfrm),
    }
}

fn dns(p: &mut Problems, raw: RawDns) -> DnsSettings {
    let defaults = DnsSettings::default();
    let mut nameservers = Vec::new();
    for (i, s) in raw.nameservers.unwrap_or_default().iter().enumerate() {
        match parse_nameserver(s) {
            Ok(addr) => nameservers.push(addr),
            Err(e) => p.add(&format!("dns.nameservers[{i}]"), e),
        }
    }
    DnsSettings {
        nameservers,
        timeout: between(p, "dns.timeout", raw.timeout, defaults.timeout, MINUTE),
        ..defaults
    }
}

fn selection(p: &mut Problems, s: RawSelection) -> SelectionSettings {
    let sd = SelectionSettings::default();
    let selection = SelectionSettings {
        switch_min_improvement_ms: s
            .switch_min_improvement_ms
            .unwrap_or(sd.switch_min_improvement_ms),
        switch_min_improvement_ratio: s
            .switch_min_improvement_ratio
            .unwrap_or(sd.switch_min_improvement_ratio),
        switch_after_cycles: s.switch_after_cycles.unwrap_or(sd.switch_after_cycles),
        filter: Filter {
            countries: s.countries,
            providers: Vec::new(),
            exclude: s.exclude,
        },
        providers: s.providers,
        provider_margin_ms: s.provider_margin_ms.unwrap_or(sd.provider_margin_ms),
    };
    if !selection.switch_min_improvement_ms.is_finite() || selection.switch_min_improvement_ms < 0.0
    {
        p.add("selection.switch_min_improvement_ms", "must be 0 or more");
    }
    if !(0.0..1.0).contains(&selection.switch_min_improvement_ratio) {
        p.add(
            "selection.switch_min_improvement_ratio",
            format!(
                "{} is out of range; use a share from 0 to below 1 (0.2 is 20% faster)",
                selection.switch_min_improvement_ratio
            ),
        );
    }
    if selection.switch_after_cycles == 0 {
        p.add("selection.switch_after_cycles", "must be at least 1");
    }
    if !selection.provider_margin_ms.is_finite() || selection.provider_margin_ms < 0.0 {
        p.add("selection.provider_margin_ms", "must be 0 or more");
    }
    selection
}

fn edge(p: &mut Problems, raw: RawEdge, base: &Path) -> EdgeSettings {
    let defaults = EdgeSettings::default();
    if let Some(cmd) = &raw.on_change {
        if cmd.first().is_none_or(|c| c.trim().is_empty()) {
            p.add(
                "edge.on_change",
                "must be a program and its arguments, e.g. [\"/usr/local/bin/reload-ipsec\", \"--quiet\"]",
            );
        }
    }
    if let Some(socket) = &raw.vici_socket {
        if !socket.is_absolute() {
            p.add(
                "edge.vici_socket",
                format!(
                    "{} is not an absolute path (e.g. \"/run/charon.vici\")",
                    socket.display()
                ),
            );
        }
        if raw.swanctl_dir.is_some() {
            p.add(
                "edge.vici_socket",
                "popsel either drives charon (vici_socket) or writes files for it (swanctl_dir): set one",
            );
        }
    }
    EdgeSettings {
        swanctl_dir: raw.swanctl_dir.map(|d| resolve_path(base, &d)),
        vici_socket: raw.vici_socket,
        on_change: raw.on_change,
        on_change_timeout: between(
            p,
            "edge.on_change_timeout",
            raw.on_change_timeout,
            defaults.on_change_timeout,
            HOUR,
        ),
    }
}

fn schedule(p: &mut Problems, raw: RawAgent) -> Schedule {
    let defaults = Schedule::default();
    let mut interval = |key: &str, value: Option<Duration>, default: Duration| {
        between(p, &format!("agent.{key}"), value, default, WEEK)
    };
    Schedule {
        catalog_interval: interval(
            "catalog_interval",
            raw.catalog_interval,
            defaults.catalog_interval,
        ),
        probe_interval: interval(
            "probe_interval",
            raw.probe_interval,
            defaults.probe_interval,
        ),
        reconcile_interval: interval(
            "reconcile_interval",
            raw.reconcile_interval,
            defaults.reconcile_interval,
        ),
        status_interval: interval(
            "status_interval",
            raw.status_interval,
            defaults.status_interval,
        ),
        audit_interval: interval(
            "audit_interval",
            raw.audit_interval,
            defaults.audit_interval,
        ),
    }
}

/// `[connectors] watch`: ids, or `"*"` alone for every connector of the account.
fn watched(p: &mut Problems, watch: Vec<String>) -> Watched {
    match watch.iter().position(|id| id == "*") {
        None => Watched::Ids(watch),
        Some(_) if watch.len() == 1 => Watched::All,
        Some(at) => {
            p.add(
                &format!("connectors.watch[{at}]"),
                "\"*\" (every connector of the account) stands alone: remove it, or the ids"
                    .to_owned(),
            );
            Watched::All
        }
    }
}

fn metrics(p: &mut Problems, raw: RawMetrics) -> MetricsSettings {
    let mut metrics = MetricsSettings::default();
    if let Some(listen) = &raw.listen {
        match listen.parse() {
            Ok(addr) => metrics.listen = addr,
            Err(_) => p.add(
                "metrics.listen",
                format!("{listen:?} is not IP:PORT (e.g. \"127.0.0.1:9469\")"),
            ),
        }
    }
    metrics.series.rtt_histogram = raw.rtt_histogram.unwrap_or(false);
    metrics.series.endpoints = raw.endpoint_series.unwrap_or(false);
    if let Some(n) = raw.ranked_pops {
        match usize::try_from(n) {
            Ok(n) => metrics.series.ranked_pops = n,
            Err(_) => p.add(
                "metrics.ranked_pops",
                format!("{n} is negative: give 0 (every PoP) or a number of PoPs"),
            ),
        }
    }
    metrics
}
