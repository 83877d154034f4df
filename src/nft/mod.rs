//! nftables rulesets as data, applied in one atomic transaction per
//! namespace: the host firewall that keeps the underlay out of VXLAN, and
//! the service VIPs in every container's namespace, and the routing mesh
//! (published ports on the host, replies' way back in the tasks); the
//! tables that DNAT keep a conntrack timeout policy of their own (`table.rs`).

pub mod balancer;
pub mod dns;
pub mod firewall;
pub mod lb;
pub mod mesh;
pub mod table;
