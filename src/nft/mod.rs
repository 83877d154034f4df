//! nftables rulesets as data, applied in one atomic transaction per
//! namespace: today the host firewall that keeps the underlay out of VXLAN.

pub mod firewall;
