//! From the file as written to a `Config`: every value checked, every problem collected with
//! its key path before anything is reported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::raw::{
    RawAgent, RawApi, RawConfig, RawDns, RawEdge, RawLocation, RawMetrics, RawProbe, RawSelection,
    RawTunnel,
};
use super::{Config, DEFAULT_STATE_DIR};
use crate::atmos::ApiSettings;
use crate::atmos::rules::{MIN_PSK_CHARS, is_valid_authentication_id, is_valid_psk};
use crate::catalog::Filter;
use crate::edge::EdgeSettings;
use crate::edge::swanctl::section_name;
use crate::location::{Location, Role, Site, TunnelConfig};
use crate::metrics::MetricsSettings;
use crate::probe::ProbeSettings;
use crate::resolve::dns::DnsSettings;
use crate::schedule::Schedule;
use crate::select::SelectionSettings;
use crate::status::StatusSettings;

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

/// An `IP:PORT` or a bare `IP` (port 53).
fn nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

pub(super) fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<String>> {
    let mut p = Problems::default();
    let api = api(&mut p, raw.api, base);
    let probe = probe(&mut p, raw.probe);
    let dns = dns(&mut p, raw.dns);
    let selection = selection(&mut p, raw.selection);
    let state_dir = resolve_path(
        base,
        &raw.state
            .dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
    );
    let locations = locations(&mut p, raw.locations, base, env);
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
            watch: raw.connectors.watch,
        },
    })
}

fn api(p: &mut Problems, raw: RawApi, base: &Path) -> ApiSettings {
    let defaults = ApiSettings::default();
    if let Some(size) = raw.page_size {
        if !(1..=1000).contains(&size) {
            p.add(
                "api.page_size",
                format!("{size} is out of range; use 1 to 1000"),
            );
        }
    }
    if raw.timeout == Some(Duration::ZERO) {
        p.add("api.timeout", "must be more than 0s");
    }
    ApiSettings {
        base_url: raw.base_url,
        token_file: raw.token_file.map(|f| resolve_path(base, &f)),
        timeout: raw.timeout.unwrap_or(defaults.timeout),
        page_size: raw.page_size.unwrap_or(defaults.page_size),
    }
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
    }
    let interval = positive(p, "probe.interval", raw.interval, defaults.interval);
    let interval = at_most(p, "probe.interval", interval, Duration::from_secs(60));
    let timeout = positive(p, "probe.timeout", raw.timeout, defaults.timeout);
    let timeout = at_most(p, "probe.timeout", timeout, Duration::from_secs(60));
    ProbeSettings {
        count,
        interval,
        timeout,
        concurrency,
        max_pps,
    }
}

fn dns(p: &mut Problems, raw: RawDns) -> DnsSettings {
    let defaults = DnsSettings::default();
    let mut nameservers = Vec::new();
    for (i, s) in raw.nameservers.unwrap_or_default().iter().enumerate() {
        match nameserver(s) {
            Some(addr) => nameservers.push(addr),
            None => p.add(
                &format!("dns.nameservers[{i}]"),
                format!("{s:?} is not IP or IP:PORT (e.g. \"127.0.0.1:53\" or \"[::1]:53\")"),
            ),
        }
    }
    DnsSettings {
        nameservers,
        timeout: positive(p, "dns.timeout", raw.timeout, defaults.timeout),
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
    EdgeSettings {
        swanctl_dir: raw.swanctl_dir.map(|d| resolve_path(base, &d)),
        on_change: raw.on_change,
        on_change_timeout: positive(
            p,
            "edge.on_change_timeout",
            raw.on_change_timeout,
            defaults.on_change_timeout,
        ),
    }
}

fn schedule(p: &mut Problems, raw: RawAgent) -> Schedule {
    let defaults = Schedule::default();
    let mut interval = |key: &str, value: Option<Duration>, default: Duration| {
        positive(p, &format!("agent.{key}"), value, default)
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
    metrics
}

/// Checks that `value` (at `key`) is given and not already used; `seen` maps values to the
/// key that first used them.
fn unique(p: &mut Problems, key: &str, value: &str, seen: &mut HashMap<String, String>) {
    if value.is_empty() {
        p.add(key, "is missing");
    } else if let Some(first) = seen.get(value) {
        let owner = first
            .rsplit_once('.')
            .map_or(first.as_str(), |(owner, _)| owner);
        p.add(key, format!("{value:?} is already used by {owner}"));
    } else {
        seen.insert(value.to_owned(), key.to_owned());
    }
}

/// The names already taken, each with the key that took it first.
#[derive(Default)]
struct Taken {
    locations: HashMap<String, String>,
    section_names: HashMap<String, String>,
    tunnels: HashMap<String, String>,
    authentication_ids: HashMap<String, String>,
}

fn locations(
    p: &mut Problems,
    raw: Vec<RawLocation>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Location> {
    let mut taken = Taken::default();
    raw.into_iter()
        .enumerate()
        .map(|(i, loc)| location(p, &format!("locations[{i}]"), loc, base, env, &mut taken))
        .collect()
}

fn location(
    p: &mut Problems,
    key: &str,
    loc: RawLocation,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    taken: &mut Taken,
) -> Location {
    let name = location_name(p, key, loc.name, taken);
    let location_id = loc.location_id.unwrap_or_default().trim().to_owned();
    if location_id.is_empty() {
        p.add(
            &format!("{key}.location_id"),
            "is missing (the Atmos location the tunnels belong to)",
        );
    }
    let site = Site {
        latitude: coordinate(p, &format!("{key}.latitude"), loc.latitude, 90.0),
        longitude: coordinate(p, &format!("{key}.longitude"), loc.longitude, 180.0),
    };
    check_roles(p, key, &loc.tunnels);
    let tunnels = loc
        .tunnels
        .into_iter()
        .enumerate()
        .filter_map(|(j, t)| tunnel(p, &format!("{key}.tunnels[{j}]"), t, base, env, taken))
        .collect();
    Location {
        name,
        location_id,
        site,
        local: loc.local.unwrap_or(true),
        tunnels,
    }
}

/// A location's name: given, unique, and still unique once made a swanctl section name.
fn location_name(p: &mut Problems, key: &str, raw: Option<String>, taken: &mut Taken) -> String {
    let name = raw.unwrap_or_default().trim().to_owned();
    let before = p.0.len();
    unique(p, &format!("{key}.name"), &name, &mut taken.locations);
    // The swanctl files and connections are named after the location, with what swanctl
    // does not accept replaced: two names must not end up the same there.
    let safe = section_name(&name);
    if p.0.len() == before {
        if let Some(first) = taken.section_names.get(&safe) {
            p.add(
                &format!("{key}.name"),
                format!(
                    "{name:?} becomes {safe:?} in swanctl names, as {first} does; choose another"
                ),
            );
        } else {
            taken.section_names.insert(safe, key.to_owned());
        }
    }
    name
}

fn coordinate(p: &mut Problems, key: &str, v: Option<f64>, limit: f64) -> f64 {
    match v {
        None => {
            p.add(key, "is missing");
            0.0
        }
        Some(v) if !v.is_finite() || v.abs() > limit => {
            p.add(key, format!("{v} is out of range (-{limit} to {limit})"));
            0.0
        }
        Some(v) => v,
    }
}

/// Exactly one primary, at most one secondary.
fn check_roles(p: &mut Problems, key: &str, tunnels: &[RawTunnel]) {
    let count = |role: &str| {
        tunnels
            .iter()
            .filter(|t| t.role.as_deref().map(str::trim) == Some(role))
            .count()
    };
    let (primaries, secondaries) = (count("primary"), count("secondary"));
    if primaries != 1 {
        p.add(
            &format!("{key}.tunnels"),
            format!("needs exactly one primary tunnel, found {primaries}"),
        );
    }
    if secondaries > 1 {
        p.add(
            &format!("{key}.tunnels"),
            format!("allows at most one secondary tunnel, found {secondaries}"),
        );
    }
}

fn tunnel(
    p: &mut Problems,
    key: &str,
    t: RawTunnel,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    taken: &mut Taken,
) -> Option<TunnelConfig> {
    let before = p.0.len();
    let name = t.name.unwrap_or_default().trim().to_owned();
    unique(p, &format!("{key}.name"), &name, &mut taken.tunnels);
    let role = match t.role.as_deref().map(str::trim) {
        Some("primary") => Some(Role::Primary),
        Some("secondary") => Some(Role::Secondary),
        Some(other) => {
            p.add(
                &format!("{key}.role"),
                format!("{other:?} is neither \"primary\" nor \"secondary\""),
            );
            None
        }
        None => {
            p.add(
                &format!("{key}.role"),
                "is missing (\"primary\" or \"secondary\")",
            );
            None
        }
    };
    let auth = t.authentication_id.unwrap_or_default().trim().to_owned();
    if auth.is_empty() {
        p.add(&format!("{key}.authentication_id"), "is missing");
    } else if !is_valid_authentication_id(&auth) {
        p.add(
            &format!("{key}.authentication_id"),
            format!("{auth:?} is neither an email nor an IP address"),
        );
    } else {
        unique(
            p,
            &format!("{key}.authentication_id"),
            &auth,
            &mut taken.authentication_ids,
        );
    }
    let psk = psk(
        p,
        key,
        t.psk_file.as_deref(),
        t.psk_env.as_deref(),
        base,
        env,
    );
    if p.0.len() != before {
        return None;
    }
    Some(TunnelConfig {
        name,
        role: role?,
        authentication_id: auth,
        psk: psk?,
    })
}

fn psk(
    p: &mut Problems,
    key: &str,
    file: Option<&Path>,
    var: Option<&str>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SecretString> {
    let text = match (file, var) {
        (Some(_), Some(_)) => {
            p.add(key, "give either psk_file or psk_env, not both");
            return None;
        }
        (None, None) => {
            p.add(key, "needs a PSK: psk_file (a file only popsel can read) or psk_env (an environment variable)");
            return None;
        }
        (Some(file), None) => {
            let path = resolve_path(base, file);
            let fkey = format!("{key}.psk_file");
            if let Err(why) = check_secret_file(&path) {
                p.add(&fkey, why);
                return None;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    p.add(&fkey, format!("{} cannot be read: {e}", path.display()));
                    return None;
                }
            }
        }
        (None, Some(var)) => match env(var) {
            Some(v) => v,
            None => {
                p.add(
                    &format!("{key}.psk_env"),
                    format!("environment variable {var} is not set"),
                );
                return None;
            }
        },
    };
    let psk = text.trim();
    if !is_valid_psk(psk) {
        // The PSK itself is never quoted, only its length.
        p.add(
            key,
            format!(
                "the PSK has {} characters; Atmos requires at least {MIN_PSK_CHARS}",
                psk.chars().count()
            ),
        );
        return None;
    }
    Some(SecretString::from(psk.to_owned()))
}

/// A PSK file must not be readable by everyone.
#[cfg(unix)]
fn check_secret_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    let mode = meta.permissions().mode();
    if mode & 0o004 != 0 {
        return Err(format!(
            "{} is world-readable (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file(_: &Path) -> Result<(), String> {
    Ok(())
}
