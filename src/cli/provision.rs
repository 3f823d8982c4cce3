//! `popsel plan` and `popsel apply`: each location's PoP selection and the reconciliation of
//! its Atmos tunnels with the config.
//!
//! plan exit codes: 0 no changes, 2 changes pending, 1 error (conflicts included: they need a
//! human). apply exit codes: 0 done, 1 something failed or conflicts remain.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;

use super::{ApiArgs, Output, Table, client_from_config, print_json};
use crate::catalog::Catalog;
use crate::config::{Config, Role};
use crate::edge;
use crate::locations::{rank_locations, select_all};
use crate::probe::Prober;
use crate::reconcile::{self, Outcome, Plan};
use crate::resolve::DnsResolver;
use crate::select::{Change, Selection};
use crate::state::{SELECTION_FILE, StateDir};
use crate::survey::survey;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Do not probe: rank every location by distance
    #[arg(long)]
    pub no_probe: bool,
    /// Do not look FQDNs up; use the catalogue's addresses
    #[arg(long)]
    pub no_dns: bool,
    /// Also delete tunnels popsel manages that are no longer in the config
    #[arg(long)]
    pub prune: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

/// What plan and apply both need.
struct Prepared {
    config: Config,
    client: crate::atmos::Client,
    state: StateDir,
    previous: Selection,
    selection: Selection,
    changes: Vec<Change>,
    plan: Plan,
    fingerprints: crate::state::Fingerprinter,
    /// The managed tunnels, less those gone from the API (saved by apply, not by plan).
    managed: crate::state::ManagedTunnels,
}

async fn prepare(api: &ApiArgs, args: &PlanArgs) -> anyhow::Result<Prepared> {
    let path = api
        .config
        .as_deref()
        .context("plan and apply need --config FILE (see config/popsel.example.toml)")?;
    let config = Config::load(path)?;
    let client = client_from_config(api, &config, Default::default(), Default::default())?;
    let state = StateDir::open(&config.state_dir)?;
    let doc = client.ipsec_pops().await?;
    let catalog = Catalog::from_document(&doc);
    for s in &catalog.skipped {
        eprintln!(
            "popsel: warning: catalogue entry {}/{} skipped: {}",
            s.country, s.city, s.reason
        );
    }
    let pops = config.selection.filter.apply(&catalog.pops);
    let dns = if args.no_dns {
        None
    } else {
        DnsResolver::new(config.dns.clone())
            .map_err(|e| eprintln!("popsel: warning: {e}; using the catalogue's addresses only"))
            .ok()
    };
    let any_local = config.locations.iter().any(|l| l.local);
    let prober = if args.no_probe || !any_local {
        None
    } else {
        Prober::new()
            .map_err(|e| eprintln!("popsel: warning: {e}. Ranking by distance instead."))
            .ok()
    };
    let surveyed = survey(
        pops,
        dns.as_ref(),
        prober.as_ref(),
        &config.probe,
        &|_, _| {},
    )
    .await;
    let rankings = rank_locations(&config, &surveyed, &catalog.skipped);
    let previous: Selection = state.read_json(SELECTION_FILE)?.unwrap_or_default();
    let (selection, changes) = select_all(&config, &rankings, &previous, SystemTime::now());
    let actual = client.list_tunnels().await?;
    let mut managed = state.managed_tunnels()?;
    for m in reconcile::forget_gone(&mut managed, &actual) {
        eprintln!(
            "popsel: warning: managed tunnel {:?} ({}) is gone from the API; it will be created anew",
            m.name, m.id
        );
    }
    let fingerprints = state.fingerprint_key()?;
    let plan = reconcile::plan(&config, &actual, &managed, &fingerprints, args.prune);
    Ok(Prepared {
        config,
        client,
        state,
        previous,
        selection,
        changes,
        plan,
        fingerprints,
        managed,
    })
}

pub(super) fn selection_text(config: &Config, selection: &Selection) -> String {
    let mut t = Table::new(&[
        "LOCATION", "ROLE", "POP", "FQDN", "IP", "RTT ms", "SINCE", "NOTE",
    ]);
    for loc in &config.locations {
        let Some(s) = selection.locations.get(&loc.name) else {
            continue;
        };
        for role in [Role::Primary, Role::Secondary] {
            let state = s.role(role);
            let Some(c) = &state.choice else {
                t.row(vec![loc.name.clone(), role.to_string(), "(none)".into()]);
                continue;
            };
            t.row(vec![
                loc.name.clone(),
                role.to_string(),
                c.pop.to_string(),
                c.fqdn.clone(),
                c.ip.to_string(),
                c.rtt_ms.map_or("-".into(), |r| format!("{r:.2}")),
                c.since.clone(),
                state.evidence.note.clone(),
            ]);
        }
    }
    format!("Selection:\n{}", t.render())
}

fn changes_text(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            let old = c
                .old
                .as_ref()
                .map_or("(none)".into(), |o| o.pop.to_string());
            let new = c
                .new
                .as_ref()
                .map_or("(none)".into(), |n| n.pop.to_string());
            format!(
                "  {} {}: {old} → {new} ({})\n",
                c.location, c.role, c.reason
            )
        })
        .collect()
}

pub async fn plan(api: &ApiArgs, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let p = prepare(api, &args).await?;
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "selection": p.selection,
            "plan": reconcile::plan_json(&p.plan),
        }))?,
        Output::Table => {
            print!("{}", selection_text(&p.config, &p.selection));
            if !p.changes.is_empty() {
                print!("\nSelection changes:\n{}", changes_text(&p.changes));
            }
            print!("\n{}", reconcile::plan_text(&p.plan, None));
        }
    }
    Ok(if p.plan.conflicts() > 0 {
        ExitCode::FAILURE
    } else if p.plan.writes() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks on the terminal; refuses when stdin is not one.
fn confirm(writes: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply {writes} change(s) without --yes: standard input is not a terminal to confirm on"
        );
    }
    print!("\nApply {writes} change(s) to the Atmos account? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

pub async fn apply(api: &ApiArgs, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let p = prepare(api, &args.plan).await?;
    if args.plan.output == Output::Table {
        print!("{}", selection_text(&p.config, &p.selection));
        print!("\n{}", reconcile::plan_text(&p.plan, None));
    }
    let writes = p.plan.writes();
    if writes > 0 && !args.yes && !confirm(writes)? {
        println!("Nothing applied.");
        return Ok(ExitCode::FAILURE);
    }
    p.state.save_managed_tunnels(&p.managed)?;
    let report = reconcile::apply(&p.client, &p.config, &p.plan, &p.state, &p.fingerprints).await;
    let outcomes: Vec<Outcome> = report.results.iter().map(|(_, o)| o.clone()).collect();
    let (persisted, _stood, problems) =
        edge::hand_off(&p.config, &p.previous, &p.selection, &p.changes).await;
    p.state.write_json(SELECTION_FILE, &persisted)?;
    for problem in &problems {
        eprintln!(
            "popsel: warning: {problem}; the selection change is handed off again by the next run"
        );
    }
    match args.plan.output {
        Output::Table => {
            if writes > 0 {
                print!(
                    "\nApplied:\n{}",
                    reconcile::plan_text(&p.plan, Some(&outcomes))
                );
            } else {
                println!("\nNothing to change.");
            }
            if !p.changes.is_empty() {
                print!("\nSelection changes:\n{}", changes_text(&p.changes));
            }
        }
        Output::Json => print_json(&serde_json::json!({
            "selection": p.selection,
            "plan": reconcile::plan_json(&p.plan),
            "results": report.results.iter().map(|(a, o)| serde_json::json!({"action": a, "outcome": o})).collect::<Vec<_>>(),
        }))?,
    }
    Ok(
        if report.failures() > 0 || p.plan.conflicts() > 0 || !problems.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}
