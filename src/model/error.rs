//! Errors a user sees, as one sentence each; mapped to a status at the API edge.

use serde::{Deserialize, Serialize};

/// The words Docker uses when a worker is asked for cluster state.
pub const NOT_A_MANAGER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";

/// The words Docker uses when a node outside a swarm is asked for cluster state.
pub const NOT_IN_SWARM: &str = "This node is not a swarm manager. Use \"swarmnet swarm init\" or \"swarmnet swarm join\" to connect this node to swarm and try again.";

/// The words Docker uses on init or join when the node is already in a swarm.
pub const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"swarmnet swarm leave\" to leave this swarm and join another one.";

/// An error with the status class it maps to at the API edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The name or state of another object stands in the way (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Status class used for metrics (`outcome` label).
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "invalid_argument",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::FailedPrecondition(_) => "failed_precondition",
            ApiError::PermissionDenied(_) => "permission_denied",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn not_a_manager() -> Self {
        ApiError::Unavailable(NOT_A_MANAGER.into())
    }

    pub fn not_in_swarm() -> Self {
        ApiError::Unavailable(NOT_IN_SWARM.into())
    }

    pub fn already_in_swarm() -> Self {
        ApiError::Unavailable(ALREADY_IN_SWARM.into())
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError::Internal(err.to_string())
    }
}
