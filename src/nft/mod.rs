//! nftables rulesets as data, applied in one atomic transaction per
//! namespace: the host firewall that keeps the underlay out of VXLAN, and
//! the service VIPs in every container's namespace.

pub mod balancer;
pub mod firewall;
pub mod lb;
