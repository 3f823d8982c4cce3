//! Resolve stage: every PoP FQDN looked up in DNS, the answers merged with the addresses the
//! catalogue lists.
//!
//! This module is the pure core: the merge of answers and listed addresses ([`merge`],
//! [`endpoints`]). The I/O shell is [`dns`]. A name that does not resolve (NXDOMAIN, no
//! records, timeout, server failure) falls back to its listed addresses: DNS can only add
//! endpoints, never take any away.

pub mod dns;
pub mod nameserver;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::catalog::{ListedFqdn, Name, Pop};

/// Where an endpoint address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Catalog,
    Dns,
    Both,
}

/// One address of one FQDN of a PoP: the thing that gets probed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    /// The FQDN's name, shared with the catalogue's [`ListedFqdn`].
    pub fqdn: Name,
    pub ip: IpAddr,
    pub source: Source,
}

/// What DNS said about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Addresses(Vec<IpAddr>),
    NxDomain,
    NoRecords,
    /// Timeout, server failure, no usable name server: the text says which.
    Failed(String),
    /// Not asked: DNS is off, or the name cannot be looked up.
    NotAsked,
}

/// The endpoints of one FQDN: its listed addresses (in catalogue order) then the addresses
/// only DNS knows (in answer order), each once, each marked with its source.
pub fn merge(fqdn: &ListedFqdn, answer: &Answer) -> Vec<Endpoint> {
    let mut out = Vec::new();
    merge_into(&mut out, fqdn, answer);
    out
}

/// [`merge`] appended to `out`, leaving out the addresses `out` already has. One vector per
/// PoP, not one per FQDN: the rank core does this for every PoP of a 10,000-PoP catalogue.
fn merge_into(out: &mut Vec<Endpoint>, fqdn: &ListedFqdn, answer: &Answer) {
    let dns: &[IpAddr] = match answer {
        Answer::Addresses(ips) => ips,
        _ => &[],
    };
    out.reserve(fqdn.ips.len() + dns.len());
    let mut push = |ip: IpAddr, source: Source| {
        if !out.iter().any(|e| e.ip == ip) {
            out.push(Endpoint {
                fqdn: fqdn.name.clone(),
                ip,
                source,
            });
        }
    };
    for &ip in &fqdn.ips {
        push(
            ip,
            if dns.contains(&ip) {
                Source::Both
            } else {
                Source::Catalog
            },
        );
    }
    for &ip in dns {
        push(ip, Source::Dns);
    }
}

/// The endpoints of a PoP, given the answers for its names (a name missing from `answers`
/// counts as not asked). An address that two FQDNs of the PoP share is one endpoint, under the
/// first FQDN.
pub fn endpoints(pop: &Pop, answers: &HashMap<String, Answer>) -> Vec<Endpoint> {
    let not_asked = Answer::NotAsked;
    let listed = pop.fqdns.iter().map(|f| f.ips.len()).sum();
    let mut out: Vec<Endpoint> = Vec::with_capacity(listed);
    for f in &pop.fqdns {
        merge_into(&mut out, f, answers.get(&*f.name).unwrap_or(&not_asked));
    }
    out
}

/// Names under the special-use domains of RFC 6761 (`test.`, `invalid.`, `example.`,
/// `localhost.`) cannot exist on the Internet, so they are never sent to the system's name
/// servers (the sample catalogue and the demo use `.test`): only to name servers given
/// explicitly, such as a test's own.
pub fn is_special_use(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    ["test", "invalid", "example", "localhost"]
        .iter()
        .any(|tld| name == *tld || name.ends_with(&format!(".{tld}")))
}

/// Every FQDN of `pops`, for [`DnsResolver::lookup_all`].
pub fn names(pops: &[Pop]) -> impl Iterator<Item = &str> {
    pops.iter().flat_map(|p| p.fqdns.iter().map(|f| &*f.name))
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
