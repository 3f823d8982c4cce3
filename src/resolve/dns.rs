//! The resolve stage's I/O shell: hickory-resolver with the system configuration or explicit
//! name servers, names looked up concurrently, each lookup bounded in time.

use crate::progress::Progress;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::sync::Semaphore;

use super::{Answer, is_special_use};
use crate::catalog::is_hostname;

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

    /// Looks every distinct name up, concurrently, counting them into `progress`.
    pub async fn lookup_all<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        progress: &Progress,
    ) -> HashMap<String, Answer> {
        let mut distinct: Vec<String> = names.into_iter().map(str::to_owned).collect();
        distinct.sort();
        distinct.dedup();
        progress.resolving(distinct.len());
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
            progress.name_resolved();
            if let Ok((name, answer)) = joined {
                answers.insert(name, answer);
            }
        }
        answers
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
