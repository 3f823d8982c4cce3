//! `[[locations]]` and their tunnels: names unique (also once made swanctl section names),
//! coordinates in range, exactly one primary, authentication IDs valid and unique, PSKs read
//! from their file or variable and checked (reported by length, never quoted).

use std::collections::HashMap;
use std::path::Path;

use secrecy::SecretString;

use super::super::raw::{RawLocation, RawTunnel};
use super::Problems;
use super::credential::secret_path;
use crate::atmos::rules::{MIN_PSK_CHARS, is_valid_authentication_id, is_valid_psk};
use crate::edge::swanctl::section_name;
use crate::location::{Location, Role, Site, TrafficSelector, TunnelConfig};

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

pub(super) fn locations(
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
    let local_ts = traffic_selectors(p, &format!("{key}.local_ts"), &loc.local_ts);
    let remote_ts = traffic_selectors(p, &format!("{key}.remote_ts"), &loc.remote_ts);
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
        local_ts,
        remote_ts,
    }
}

/// A list of subnets, each checked; the key of a bad one names its index.
fn traffic_selectors(p: &mut Problems, key: &str, raw: &[String]) -> Vec<TrafficSelector> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            TrafficSelector::parse(text)
                .map_err(|e| p.add(&format!("{key}[{i}]"), e))
                .ok()
        })
        .collect()
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
            let fkey = format!("{key}.psk_file");
            let path = match secret_path(file, base, env) {
                Ok(path) => path,
                Err(why) => {
                    p.add(&fkey, why);
                    return None;
                }
            };
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
