//! The one kernel-networking layer, on rtnetlink and netlink-packet-route:
//! persistent namespaces and handles bound inside them, links (veth, bridge,
//! vxlan, the mesh's TAP), addresses and routes, and FDB and neighbour entries.

mod addr;
mod link;
mod neigh;
pub mod netns;
#[cfg(test)]
mod scratch;
#[cfg(test)]
mod tests;

pub use link::{LinkWant, Ns, Vxlan};
pub use neigh::{mac_text, Neighbour, Table};
