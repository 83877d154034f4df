//! The one kernel-networking layer: persistent namespaces and rtnetlink
//! handles bound inside them, links (veth, bridge, vxlan), addresses, and
//! FDB and neighbour entries.

mod link;
pub mod netns;
pub mod rawnl;

pub use link::{LinkWant, Ns};
