//! `popsel rank`: which Atmos PoP is best from here, and why. Catalogue (file or API), DNS,
//! ICMP, distance, ranking, printed as a table, JSON or CSV.
//!
//! Exit codes: 0 a ranking was produced; 2 bad input (named on stderr); 3 nothing to rank
//! (no PoP left after filtering), since then there is neither a latency nor a distance basis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{ApiArgs, StderrReport, client_observed, rank_output};
use crate::catalog::{Catalog, Filter};
use crate::location::Site;
use crate::pipeline::{RankRequest, catalog_file, rank_once};
use crate::probe::adaptive::{Adaptive, DEFAULT_CAP, MIN_TOP};
use crate::probe::icmp::MAX_CONCURRENCY;
use crate::probe::{ProbeSettings, interface_name};
use crate::resolve::dns::DnsSettings;
use crate::resolve::nameserver::parse_nameserver;

pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NOTHING_TO_RANK: u8 = 3;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RankOutput {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeMode {
    Adaptive,
    Fixed,
}

/// Fixed mode's count when `--count` is not given: fping's `-C 5`.
const FIXED_COUNT: u16 = 5;

#[derive(Debug, Args)]
pub struct RankArgs {
    /// Where to rank from, as LAT,LON in degrees (e.g. 41.88,-87.63)
    #[arg(long, value_parser = Site::parse, allow_hyphen_values = true)]
    pub site: Site,
    /// Read the catalogue from this file (JSON, as GET /api/v1/pops/ipsec returns) instead of the API
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// DNS server to ask instead of the system's: IP (port 53) or IP:PORT, [IPv6]:PORT for
    /// IPv6 (repeatable)
    #[arg(long = "nameserver", value_name = "IP:PORT", value_parser = parse_nameserver)]
    pub nameservers: Vec<SocketAddr>,
    /// Do not look FQDNs up; probe the listed addresses only
    #[arg(long)]
    pub no_dns: bool,
    /// Do not probe; rank by distance only
    #[arg(long)]
    pub no_probe: bool,
    /// How to spend echo requests: adaptive (one to every address, then up to 20 in all to the
    /// addresses that could still place their PoP in the top; the default) or fixed (--count
    /// to every address, as fping does)
    #[arg(long, value_enum)]
    pub probes: Option<ProbeMode>,
    /// Echo requests per address, fixed mode (implies --probes fixed) [default: 5]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: Option<u16>,
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
    /// The device the probes leave by, e.g. the WAN side of a router whose tunnel carries
    /// 0.0.0.0/0 (replies are taken from any device)
    #[arg(long, value_name = "DEV", value_parser = interface_name)]
    pub interface: Option<String>,
    /// Give the probes their own IPsec bypass policies, past the kernel XFRM policies of a
    /// tunnel whatever its selectors (needs CAP_NET_ADMIN)
    #[arg(long)]
    pub bypass_xfrm: bool,
    /// Addresses probed at once (1 to 10000)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_CONCURRENCY as u64))]
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
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: RankOutput,
    /// Table: every column (endpoint FQDN and IP, jitter); by default it fits 80 columns
    #[arg(long)]
    pub wide: bool,
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
fn bad_input(e: impl Into<anyhow::Error>) -> ExitCode {
    eprintln!("popsel: error: {:#}", e.into());
    ExitCode::from(EXIT_BAD_INPUT)
}

/// The catalogue from `--catalog` or the API, the API's retries shown on `report`'s progress
/// line. On error, the line is cleared before the error is said.
async fn load_catalog(
    args: &RankArgs,
    api: &ApiArgs,
    report: &StderrReport,
) -> Result<Catalog, ExitCode> {
    let client = match &args.catalog {
        Some(path) => {
            return catalog_file(path).map_err(|e| {
                report.clear_progress();
                bad_input(e)
            });
        }
        None => client_observed(api, report.api_observer()),
    };
    let client = client.map_err(|e| {
        report.clear_progress();
        bad_input(e)
    })?;
    client
        .read_ipsec_pops(Catalog::from_json)
        .await
        .map_err(|e| {
            report.clear_progress();
            eprintln!("popsel: error: {e}");
            ExitCode::FAILURE
        })
}

impl RankArgs {
    /// `--count` means fixed; adaptive otherwise, unless asked.
    fn mode(&self) -> ProbeMode {
        match (self.probes, self.count) {
            (Some(mode), _) => mode,
            (None, Some(_)) => ProbeMode::Fixed,
            (None, None) => ProbeMode::Adaptive,
        }
    }

    fn request(&self) -> RankRequest {
        RankRequest {
            site: self.site,
            filter: Filter {
                countries: self.countries.clone(),
                providers: self.providers.clone(),
                exclude: self.exclude.clone(),
            },
            dns: (!self.no_dns).then(|| DnsSettings {
                nameservers: self.nameservers.clone(),
                timeout: self.dns_timeout,
                ..DnsSettings::default()
            }),
            adaptive: (!self.no_probe && self.mode() == ProbeMode::Adaptive)
                .then(|| Adaptive::new(self.top.unwrap_or(MIN_TOP), self.interval, self.timeout)),
            probe: (!self.no_probe).then_some(ProbeSettings {
                count: self.count.unwrap_or(FIXED_COUNT),
                interval: self.interval,
                timeout: self.timeout,
                concurrency: self.concurrency as usize,
                max_pps: self.max_pps,
                interface: self.interface.clone(),
                bypass_xfrm: self.bypass_xfrm,
            }),
        }
    }
}

pub async fn run(args: RankArgs, api: &ApiArgs) -> ExitCode {
    if args.probes == Some(ProbeMode::Adaptive) && args.count.is_some() {
        return bad_input(anyhow::anyhow!(
            "--count sets the requests of fixed mode; adaptive mode decides them (up to {DEFAULT_CAP} per address): drop --count, or use --probes fixed"
        ));
    }
    // The progress line (on a terminal) from the start: the catalogue may take a while.
    let report = StderrReport::new(true);
    let catalog = match load_catalog(&args, api, &report).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ranked = rank_once(catalog, &args.request(), &report).await;
    report.clear_progress();
    let mut ranking = match ranked {
        Ok(ranking) => ranking,
        Err(nothing) => {
            eprintln!("popsel: {nothing}");
            return ExitCode::from(EXIT_NOTHING_TO_RANK);
        }
    };
    let counts = rank_output::Counts::of(&ranking);
    if let Some(top) = args.top {
        ranking.pops.truncate(top);
    }
    let text = match args.output {
        RankOutput::Table => {
            let width = if args.wide {
                rank_output::Width::Wide
            } else {
                rank_output::Width::Narrow
            };
            rank_output::table_of_width(&ranking, &counts, width)
        }
        RankOutput::Json => rank_output::json(&ranking),
        RankOutput::Csv => rank_output::csv(&ranking),
    };
    print!("{text}");
    ExitCode::SUCCESS
}
