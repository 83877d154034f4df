//! The cluster's types (nodes, roles, availability), their validation, and the
//! errors users see. No side effects.

mod error;
mod node;

pub use error::ApiError;
pub use node::{random_id, Availability, ManagerStatus, Node, NodeRole, NodeState, NodeView};
