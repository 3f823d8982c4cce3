//! Why a stage run failed, typed up to the edge where it is logged or printed.

use crate::atmos::ApiError;
use crate::edge::HandOffFailure;
use crate::reconcile::{Action, ApplyError, ApplyReport};
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The agent's catalogue refresh failed (a cached catalogue may stand in).
    #[error("catalogue refresh: {0}")]
    CatalogRefresh(ApiError),
    #[error("no catalogue yet (neither from the API nor cached)")]
    NoCatalog,
    #[error("no probe round yet")]
    NoSurvey,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{}", join(.0))]
    HandOff(Vec<HandOffFailure>),
    #[error("{}", join(.0))]
    Tunnels(Vec<TunnelFailure>),
    #[error("{}", join(.0))]
    Status(Vec<ApiError>),
    /// The stage run panicked (a bug, or input nobody foresaw); the message is the panic's.
    #[error("the stage panicked: {0}")]
    Panicked(String),
}

impl StageError {
    /// The stage failed because the API could not be used: it failed, throttled popsel, or
    /// the call was held back for that.
    pub fn api_unavailable(&self) -> bool {
        match self {
            StageError::CatalogRefresh(e) | StageError::Api(e) => e.is_unavailable(),
            StageError::Status(errors) => errors.iter().any(ApiError::is_unavailable),
            StageError::Tunnels(failures) => failures.iter().any(|f| match f {
                TunnelFailure::Failed { error, .. } => error.api_unavailable(),
                TunnelFailure::Conflict { .. } => false,
            }),
            StageError::NoCatalog
            | StageError::NoSurvey
            | StageError::State(_)
            | StageError::HandOff(_)
            | StageError::Panicked(_) => false,
        }
    }
}

/// A configured tunnel that reconcile could not bring in line.
#[derive(Debug, thiserror::Error)]
pub enum TunnelFailure {
    #[error("{error}")]
    Failed {
        action: Box<Action>,
        error: ApplyError,
    },
    #[error("tunnel {tunnel:?}: {reason}")]
    Conflict { tunnel: String, reason: String },
}

impl TunnelFailure {
    /// Every failed action and every conflict of an apply.
    pub fn of(report: ApplyReport) -> Vec<TunnelFailure> {
        let mut out = Vec::new();
        for (action, outcome) in report.results {
            if let Action::Conflict { tunnel, reason, .. } = &action {
                out.push(TunnelFailure::Conflict {
                    tunnel: tunnel.clone(),
                    reason: reason.clone(),
                });
            }
            if let crate::reconcile::Outcome::Failed(error) = outcome {
                out.push(TunnelFailure::Failed {
                    action: Box::new(action),
                    error,
                });
            }
        }
        out
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
