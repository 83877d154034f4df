//! Service discovery: a resolver at 127.0.0.11 inside every container and
//! task, answering the swarm's names from a view of the endpoint table that
//! is swapped whole when it changes, scoped to the asker's networks, and
//! forwarding every other name to the host's resolvers.

mod answer;
mod cache;
mod forward;
mod server;
mod view;

pub use server::{Resolver, RESOLVER_IP};
pub use view::View;

/// The view's test fixture, for the load balancer's tests.
#[cfg(test)]
pub(crate) use view::tests as view_fixture;

#[cfg(test)]
mod fuzz_test;

#[cfg(test)]
mod server_test;
