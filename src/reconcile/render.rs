//! Plans and their results as people read them (in the manner of `terraform plan`) and as JSON.

use super::apply::{ApplyReport, Outcome};
use super::plan::{Action, Plan};

/// One block per action; `outcome` is given after an apply.
fn action_text(a: &Action, outcome: Option<&Outcome>) -> String {
    let result = match outcome {
        None | Some(Outcome::Nothing) => String::new(),
        Some(Outcome::Created { id }) => format!("  → created {id}"),
        Some(Outcome::Adopted { id }) => {
            format!("  → adopted {id} (it existed with this name and authentication ID)")
        }
        Some(Outcome::AlreadyThere { id }) => format!(
            "  → already there as {id}, as configured (the listing missed it); nothing written"
        ),
        Some(Outcome::Updated) => "  → updated".into(),
        Some(Outcome::Deleted) => "  → deleted".into(),
        Some(Outcome::Failed(e)) => format!("  → FAILED: {e}"),
    };
    match a {
        Action::Create { location, tunnel } => {
            format!("  + create    {tunnel:?} (location {location}){result}\n")
        }
        Action::Update {
            tunnel,
            id,
            changes,
            psk,
            ..
        } => {
            let mut s = format!("  ~ update    {tunnel:?} ({id}){result}\n");
            for c in changes {
                s.push_str(&format!("        {}: {:?} → {:?}\n", c.field, c.old, c.new));
            }
            if let Some(reason) = psk {
                s.push_str(&format!(
                    "        psk: (sensitive) ({})\n",
                    reason.describe()
                ));
            }
            s
        }
        Action::Unchanged { tunnel, id, .. } => format!("  = unchanged {tunnel:?} ({id})\n"),
        Action::Conflict { tunnel, reason, .. } => format!("  ! conflict  {tunnel:?}: {reason}\n"),
        Action::Delete { tunnel, id } => format!("  - delete    {tunnel:?} ({id}){result}\n"),
        Action::Orphan { tunnel, id } => format!(
            "  ? orphan    {tunnel:?} ({id}): managed by popsel but no longer in the config; kept (--prune deletes it)\n"
        ),
    }
}

/// The plan, one block per action; after an apply, `report` holds each action's outcome.
pub fn plan_text(plan: &Plan, report: Option<&ApplyReport>) -> String {
    let mut s = String::from("Tunnels:\n");
    for (i, a) in plan.actions.iter().enumerate() {
        let outcome = report.and_then(|r| r.results.get(i)).map(|(_, o)| o);
        s.push_str(&action_text(a, outcome));
    }
    let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    s.push_str(&format!(
        "\nPlan: {} to create, {} to update, {} to delete, {} unchanged, {} conflict(s).\n",
        count(|a| matches!(a, Action::Create { .. })),
        count(|a| matches!(a, Action::Update { .. })),
        count(|a| matches!(a, Action::Delete { .. })),
        count(|a| matches!(a, Action::Unchanged { .. })),
        plan.conflicts(),
    ));
    s
}

pub fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "actions": plan.actions,
        "writes": plan.writes(),
        "conflicts": plan.conflicts(),
    })
}
