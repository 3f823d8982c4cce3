//! `popsel plan` and `popsel apply`: each location's PoP selection and the reconciliation of
//! its Atmos tunnels with the config.
//!
//! plan exit codes, as terraform's: 0 success, changes pending or not; 1 error (conflicts
//! included: they need a human); with `--detailed-exitcode`, 0 no changes and 2 changes
//! pending. Without the flag plan never exits 2, so that a usage error (clap's exit 2) is
//! never read as "changes pending". apply exit codes: 0 done, 1 something failed or conflicts
//! remain.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::{LogArgs, Output, SiteArgs, StderrReport, Table, client_from_config, print_json};
use crate::config::Config;
use crate::location::Role;
use crate::pipeline::{self, Generation, Mode, Pipeline, Planned};
use crate::reconcile;
use crate::select::{Change, Selection};

/// What plan and apply share: how one pass runs and prints.
#[derive(Debug, Args)]
pub struct PassArgs {
    /// Do not probe: rank every location by distance
    #[arg(long)]
    pub no_probe: bool,
    /// Do not look FQDNs up; use the catalogue's addresses
    #[arg(long)]
    pub no_dns: bool,
    /// Also delete tunnels popsel manages that are no longer in the config
    #[arg(long)]
    pub prune: bool,
    /// Output format
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// Exit 2 when changes are pending and 0 when there are none (as terraform plan
    /// -detailed-exitcode); without it, 0 either way
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub pass: PassArgs,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// plan's exit code when it got to the end (see the module's comment).
fn plan_exit_code(conflicts: usize, writes: usize, detailed: bool) -> ExitCode {
    if conflicts > 0 {
        ExitCode::FAILURE
    } else if detailed && writes > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// How a command uses the state dir.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateUse {
    /// `popsel plan`: reads it beside a running agent, takes no lock, writes nothing (but a
    /// missing fingerprint key, made without ever replacing one).
    Read,
    /// `popsel apply`: its one writer; refused, naming the holder, while an agent (or another
    /// apply) has it.
    Write,
}

/// The pipeline of the site's config, for one pass.
fn pipeline(
    site: &SiteArgs,
    args: &PassArgs,
    state_use: StateUse,
) -> anyhow::Result<(Config, Pipeline)> {
    let config = site.source()?.load()?;
    let client = client_from_config(
        &site.connection,
        &config,
        Default::default(),
        Default::default(),
    )?;
    let report = Box::new(StderrReport::new(false));
    let prober =
        pipeline::ProberSlot::open(&config.locations, args.no_probe, &config.probe, &*report);
    let generation = match state_use {
        StateUse::Read => Generation::read_only(config.clone(), client, !args.no_dns, &*report)?,
        StateUse::Write => Generation::new(config.clone(), client, !args.no_dns, &*report)?,
    };
    let pipeline = Pipeline::new(generation, prober, Mode::OneShot, report)?;
    Ok((config, pipeline))
}

pub(super) fn selection_text(config: &Config, selection: &Selection) -> String {
    let mut t = Table::new(&[
        "LOCATION", "ROLE", "POP", "FQDN", "IP", "RTT ms", "SINCE", "NOTE",
    ]);
    for loc in &config.locations {
        let Some(s) = selection.locations.get(&loc.name) else {
            continue;
        };
        for role in Role::ALL {
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

pub async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let (config, pipeline) = pipeline(&args.site, &args.pass, StateUse::Read)?;
    let Planned { decision, tunnels } = pipeline.plan(args.pass.prune).await?;
    match args.pass.output {
        Output::Json => print_json(&serde_json::json!({
            "selection": decision.selection,
            "plan": reconcile::plan_json(&tunnels.plan),
        }))?,
        Output::Table => {
            print!("{}", selection_text(&config, &decision.selection));
            if !decision.changes.is_empty() {
                print!("\nSelection changes:\n{}", changes_text(&decision.changes));
            }
            print!("\n{}", reconcile::plan_text(&tunnels.plan, None));
        }
    }
    Ok(plan_exit_code(
        tunnels.plan.conflicts(),
        tunnels.plan.writes(),
        args.detailed_exitcode,
    ))
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

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let (config, pipeline) = pipeline(&args.site, &args.pass, StateUse::Write)?;
    let planned = pipeline.plan(args.pass.prune).await?;
    let plan = planned.tunnels.plan.clone();
    let (selection, changes) = (
        planned.decision.selection.clone(),
        planned.decision.changes.clone(),
    );
    if args.pass.output == Output::Table {
        print!("{}", selection_text(&config, &selection));
        print!("\n{}", reconcile::plan_text(&plan, None));
    }
    let writes = plan.writes();
    if writes > 0 && !args.yes && !confirm(writes)? {
        println!("Nothing applied.");
        return Ok(ExitCode::FAILURE);
    }
    let applied = pipeline.apply(planned).await?;
    for failure in &applied.hand_off.failures {
        eprintln!(
            "popsel: warning: {failure}; the selection change is handed off again by the next run"
        );
    }
    match args.pass.output {
        Output::Table => {
            if writes > 0 {
                print!(
                    "\nApplied:\n{}",
                    reconcile::plan_text(&plan, Some(&applied.report))
                );
            } else {
                println!("\nNothing to change.");
            }
            if !changes.is_empty() {
                print!("\nSelection changes:\n{}", changes_text(&changes));
            }
        }
        Output::Json => print_json(&serde_json::json!({
            "selection": selection,
            "plan": reconcile::plan_json(&plan),
            "results": applied.report.results.iter().map(|(a, o)| serde_json::json!({"action": a, "outcome": o})).collect::<Vec<_>>(),
        }))?,
    }
    let failed = applied.report.failures().next().is_some();
    Ok(
        if failed || plan.conflicts() > 0 || !applied.hand_off.failures.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}
