//! Reconcile stage: make each location's Atmos tunnels exist and match the config.
//!
//! [`plan`](plan::plan) is pure: desired tunnels (config) + actual tunnels (API, all pages) +
//! what popsel remembers ([`managed`]: managed tunnels and PSK fingerprints) give a [`Plan`].
//! [`apply`](apply::apply) carries it out through the client, and records each write in the
//! audit log and the state. popsel never deletes a tunnel unless asked to prune and the tunnel
//! carries its management marker (it is in the state's managed tunnels); a tunnel popsel does
//! not manage that stands in the way is a conflict for a human, never something to overwrite.

pub mod apply;
pub mod managed;
pub mod plan;
mod render;

pub use apply::{ApplyError, ApplyReport, Outcome, Written};
pub use managed::{Fingerprinter, ManagedTunnel, ManagedTunnels};
pub use plan::{Action, FieldChange, Plan, PskReason};
pub use render::{plan_json, plan_text};
