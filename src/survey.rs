//! Survey: the resolve and probe stages run over a set of PoPs, producing what the rank stage
//! needs. Shared by `popsel rank` and the agent.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::catalog::Pop;
use crate::probe::{Probe, ProbeSettings, Prober};
use crate::resolve::{self, Answer, DnsResolver, Endpoint};

/// The endpoints of each PoP and, when probing ran, what each address answered.
pub struct Survey {
    pub pops: Vec<(Pop, Vec<Endpoint>)>,
    pub answers: HashMap<String, Answer>,
    pub probes: Option<HashMap<IpAddr, Probe>>,
}

/// Resolves every FQDN of `pops` (when `dns` is given) and probes every endpoint address (when
/// `prober` is given).
pub async fn survey(
    pops: Vec<Pop>,
    dns: Option<&DnsResolver>,
    prober: Option<&Prober>,
    settings: &ProbeSettings,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Survey {
    let answers = match dns {
        Some(dns) => dns.lookup_all(resolve::names(&pops)).await,
        None => HashMap::new(),
    };
    let pops: Vec<(Pop, Vec<Endpoint>)> = pops
        .into_iter()
        .map(|pop| {
            let endpoints = resolve::endpoints(&pop, &answers);
            (pop, endpoints)
        })
        .collect();
    let probes = match prober {
        Some(prober) => {
            let targets: Vec<IpAddr> = pops
                .iter()
                .flat_map(|(_, e)| e.iter().map(|e| e.ip))
                .collect();
            Some(prober.probe(&targets, settings, progress).await)
        }
        None => None,
    };
    Survey {
        pops,
        answers,
        probes,
    }
}
