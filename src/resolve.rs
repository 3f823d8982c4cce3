//! Resolve stage: every PoP FQDN looked up in DNS, the answers merged with the addresses the
//! catalogue lists.
//!
//! The merge is pure ([`merge`]). The I/O shell ([`DnsResolver`]) uses hickory-resolver with the
//! system configuration or explicit name servers, looks names up concurrently, and bounds each
//! lookup in time. A name that does not resolve (NXDOMAIN, no records, timeout, server failure)
//! falls back to its listed addresses: DNS can only add endpoints, never take any away.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::catalog::{ListedFqdn, Pop, is_hostname};

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
    pub fqdn: String,
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
    let dns: &[IpAddr] = match answer {
        Answer::Addresses(ips) => ips,
        _ => &[],
    };
    let mut out: Vec<Endpoint> = Vec::with_capacity(fqdn.ips.len() + dns.len());
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
    out
}

/// The endpoints of a PoP, given the answers for its names (a name missing from `answers`
/// counts as not asked). An address that two FQDNs of the PoP share is one endpoint, under the
/// first FQDN.
pub fn endpoints(pop: &Pop, answers: &HashMap<String, Answer>) -> Vec<Endpoint> {
    let not_asked = Answer::NotAsked;
    let mut out: Vec<Endpoint> = Vec::new();
    for f in &pop.fqdns {
        for e in merge(f, answers.get(&f.name).unwrap_or(&not_asked)) {
            if !out.iter().any(|o| o.ip == e.ip) {
                out.push(e);
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Explicit name servers (UDP and TCP); the system configuration when empty.
    pub nameservers: Vec<SocketAddr>,
    /// Bound on one name's lookup, all attempts included.
    pub timeout: Duration,
    /// Lookups in flight at once.
    pub concurrency: usize,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(2),
            concurrency: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up DNS resolution: {0}; give name servers explicitly (--nameserver IP:PORT or [dns] nameservers)"
)]
pub struct DnsSetupError(String);

#[derive(Clone)]
pub struct DnsResolver {
    inner: TokioResolver,
    settings: DnsSettings,
}

impl DnsResolver {
    pub fn new(settings: DnsSettings) -> Result<Self, DnsSetupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if settings.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| DnsSetupError(e.to_string()))?
        } else {
            let servers = settings
                .nameservers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for conn in &mut ns.connections {
                        conn.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                provider,
            )
        };
        let opts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        let inner = builder.build().map_err(|e| DnsSetupError(e.to_string()))?;
        Ok(Self { inner, settings })
    }

    /// Looks one name up, within the configured time.
    pub async fn lookup(&self, name: &str) -> Answer {
        if !is_hostname(name) {
            return Answer::NotAsked;
        }
        if self.settings.nameservers.is_empty() && is_special_use(name) {
            return Answer::NotAsked;
        }
        // The trailing dot makes the name absolute: no search domains appended.
        let absolute = format!("{name}.");
        match tokio::time::timeout(self.settings.timeout, self.inner.lookup_ip(absolute)).await {
            Err(_) => Answer::Failed(format!(
                "no answer within {:.1}s",
                self.settings.timeout.as_secs_f64()
            )),
            Ok(Ok(lookup)) => {
                let mut ips: Vec<IpAddr> = Vec::new();
                for ip in lookup.iter() {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                if ips.is_empty() {
                    Answer::NoRecords
                } else {
                    Answer::Addresses(ips)
                }
            }
            Ok(Err(e)) if e.is_nx_domain() => Answer::NxDomain,
            Ok(Err(e)) if e.is_no_records_found() => Answer::NoRecords,
            Ok(Err(e)) => Answer::Failed(e.to_string()),
        }
    }

    /// Looks every distinct name up, concurrently.
    pub async fn lookup_all<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> HashMap<String, Answer> {
        let mut distinct: Vec<String> = names.into_iter().map(str::to_owned).collect();
        distinct.sort();
        distinct.dedup();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for name in distinct {
            let this = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let answer = this.lookup(&name).await;
                (name, answer)
            });
        }
        let mut answers = HashMap::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, answer)) = joined {
                answers.insert(name, answer);
            }
        }
        answers
    }
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
    pops.iter()
        .flat_map(|p| p.fqdns.iter().map(|f| f.name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fqdn(ips: &[&str]) -> ListedFqdn {
        ListedFqdn {
            name: "a.pops.test".into(),
            ips: ips.iter().map(|s| ip(s)).collect(),
        }
    }

    #[test]
    fn merge_marks_sources_and_keeps_each_address_once() {
        let f = fqdn(&["198.18.0.1", "198.18.0.2"]);
        let answer = Answer::Addresses(vec![ip("198.18.0.2"), ip("198.18.0.9"), ip("198.18.0.9")]);
        let got: Vec<(IpAddr, Source)> = merge(&f, &answer)
            .into_iter()
            .map(|e| (e.ip, e.source))
            .collect();
        assert_eq!(
            got,
            [
                (ip("198.18.0.1"), Source::Catalog),
                (ip("198.18.0.2"), Source::Both),
                (ip("198.18.0.9"), Source::Dns)
            ]
        );
    }

    #[test]
    fn failed_lookups_fall_back_to_the_listed_addresses() {
        let f = fqdn(&["198.18.0.1"]);
        for answer in [
            Answer::NxDomain,
            Answer::NoRecords,
            Answer::Failed("timeout".into()),
            Answer::NotAsked,
        ] {
            let got = merge(&f, &answer);
            assert_eq!(got.len(), 1, "{answer:?}");
            assert_eq!(
                (got[0].ip, got[0].source),
                (ip("198.18.0.1"), Source::Catalog)
            );
        }
    }

    #[test]
    fn special_use_names_are_recognised() {
        for name in [
            "a.pops.popsel.test",
            "x.INVALID.",
            "example",
            "host.localhost",
        ] {
            assert!(is_special_use(name), "{name}");
        }
        for name in ["ipsec.axisapps.io", "testing.com", "mytest"] {
            assert!(!is_special_use(name), "{name}");
        }
    }

    #[tokio::test]
    async fn special_use_names_never_reach_the_system_resolver() {
        // With no explicit name server, a .test name is answered locally: NotAsked, at once.
        let Ok(dns) = DnsResolver::new(DnsSettings::default()) else {
            return; // no system resolver configuration on this machine: nothing to ask anyway
        };
        assert_eq!(
            dns.lookup("ipsec-1.pops.popsel.test").await,
            Answer::NotAsked
        );
    }

    #[test]
    fn a_name_with_no_listed_address_lives_on_dns_alone() {
        let f = fqdn(&[]);
        assert!(merge(&f, &Answer::NxDomain).is_empty());
        let got = merge(&f, &Answer::Addresses(vec![ip("::1")]));
        assert_eq!((got[0].ip, got[0].source), (ip("::1"), Source::Dns));
    }
}
