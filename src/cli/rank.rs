//! `popsel rank`: which Atmos PoP is best from here, and why. Catalogue (file or API), DNS,
//! ICMP, distance, ranking, printed as a table, JSON or CSV.
//!
//! Exit codes: 0 a ranking was produced; 2 bad input (named on stderr); 3 nothing to rank
//! (no PoP left after filtering), since then there is neither a latency nor a distance basis.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{ApiArgs, client, rank_output};
use crate::catalog::{Catalog, Filter};
use crate::probe::{ProbeSettings, Prober};
use crate::rank::{self, Basis, Site};
use crate::resolve::{DnsResolver, DnsSettings};
use crate::survey::survey;

pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NOTHING_TO_RANK: u8 = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RankOutput {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct RankArgs {
    /// Where to rank from, as LAT,LON in degrees (e.g. 41.88,-87.63)
    #[arg(long, value_parser = Site::parse, allow_hyphen_values = true)]
    pub site: Site,
    /// Read the catalogue from this file (JSON, as GET /api/v1/pops/ipsec returns) instead of the API
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// DNS server to ask instead of the system's (repeatable)
    #[arg(long = "nameserver", value_name = "IP:PORT")]
    pub nameservers: Vec<SocketAddr>,
    /// Do not look FQDNs up; probe the listed addresses only
    #[arg(long)]
    pub no_dns: bool,
    /// Do not probe; rank by distance only
    #[arg(long)]
    pub no_probe: bool,
    /// Echo requests per address
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Time between two requests to one address
    #[arg(long, value_parser = positive_duration, default_value = "200ms")]
    pub interval: Duration,
    /// How long a request waits for its reply
    #[arg(long, value_parser = positive_duration, default_value = "1s")]
    pub timeout: Duration,
    /// How long one DNS lookup may take
    #[arg(long, value_parser = positive_duration, default_value = "2s")]
    pub dns_timeout: Duration,
    /// Echo requests per second, all addresses together
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pps: u32,
    /// Addresses probed at once
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency: u64,
    /// Only PoPs in this country (repeatable)
    #[arg(long = "country", value_name = "CC")]
    pub countries: Vec<String>,
    /// Only PoPs of this provider (repeatable)
    #[arg(long = "provider", value_name = "P")]
    pub providers: Vec<String>,
    /// Leave out this city or FQDN (repeatable)
    #[arg(long = "exclude", value_name = "CITY|FQDN")]
    pub exclude: Vec<String>,
    /// Show only the best N PoPs
    #[arg(long)]
    pub top: Option<usize>,
    #[arg(long, value_enum, default_value_t)]
    pub output: RankOutput,
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write e.g. 200ms or 1s)"))?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// Bad input: said on stderr, exit code 2.
fn bad_input(e: anyhow::Error) -> ExitCode {
    eprintln!("popsel: error: {e:#}");
    ExitCode::from(EXIT_BAD_INPUT)
}

async fn load_catalog(args: &RankArgs, api: &ApiArgs) -> Result<Catalog, ExitCode> {
    match &args.catalog {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("catalogue file {}", path.display()))
                .map_err(bad_input)?;
            Catalog::from_json(&text)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "catalogue file {}: not a PoP catalogue ({e}); expected {{\"ipSecLocations\": [...]}} as GET /api/v1/pops/ipsec returns",
                        path.display()
                    )
                })
                .map_err(bad_input)
        }
        None => {
            let client = client(api).map_err(bad_input)?;
            match client.ipsec_pops().await {
                Ok(doc) => Ok(Catalog::from_document(&doc)),
                Err(e) => {
                    eprintln!("popsel: error: {e}");
                    Err(ExitCode::FAILURE)
                }
            }
        }
    }
}

pub async fn run(args: RankArgs, api: &ApiArgs) -> ExitCode {
    let catalog = match load_catalog(&args, api).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    for s in &catalog.skipped {
        eprintln!(
            "popsel: warning: catalogue entry {}/{} skipped: {}",
            s.country, s.city, s.reason
        );
    }
    let filter = Filter {
        countries: args.countries.clone(),
        providers: args.providers.clone(),
        exclude: args.exclude.clone(),
    };
    let pops = filter.apply(&catalog.pops);
    if pops.is_empty() {
        eprintln!(
            "popsel: nothing to rank: the catalogue has {} usable PoPs and the filters leave none",
            catalog.pops.len()
        );
        return ExitCode::from(EXIT_NOTHING_TO_RANK);
    }

    let dns = if args.no_dns {
        None
    } else {
        let settings = DnsSettings {
            nameservers: args.nameservers.clone(),
            timeout: args.dns_timeout,
            ..DnsSettings::default()
        };
        match DnsResolver::new(settings) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("popsel: warning: {e}; using the catalogue's addresses only");
                None
            }
        }
    };
    let prober = if args.no_probe {
        None
    } else {
        match Prober::new() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("popsel: warning: {e}. Ranking by distance instead.");
                None
            }
        }
    };
    let settings = ProbeSettings {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
        concurrency: args.concurrency as usize,
        max_pps: args.max_pps,
    };
    let show_progress = std::io::stderr().is_terminal();
    let progress = |done: usize, total: usize| {
        if show_progress {
            eprint!("\rprobing: {done}/{total} addresses");
            let _ = std::io::stderr().flush();
        }
    };
    let surveyed = survey(pops, dns.as_ref(), prober.as_ref(), &settings, &progress).await;
    if show_progress && prober.is_some() {
        eprint!("\r\x1b[K");
    }
    let mut ranking = rank::rank(
        args.site,
        surveyed.pops,
        surveyed.probes.as_ref(),
        catalog.skipped,
    );
    if ranking.basis == Basis::Distance && prober.is_some() {
        eprintln!("popsel: warning: no address answered ICMP; ranking by distance");
    }
    let counts = rank_output::Counts::of(&ranking);
    if let Some(top) = args.top {
        ranking.pops.truncate(top);
    }
    let text = match args.output {
        RankOutput::Table => rank_output::table(&ranking, &counts),
        RankOutput::Json => rank_output::json(&ranking),
        RankOutput::Csv => rank_output::csv(&ranking),
    };
    print!("{text}");
    ExitCode::SUCCESS
}
