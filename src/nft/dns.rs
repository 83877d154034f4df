//! Port 53 of 127.0.0.11 in a container's namespace, led to the resolver's
//! own ports there without connection tracking: the query's destination
//! port and the reply's source port are rewritten in place, both ways, as
//! packets leave. Port 53 itself stays free for a container's own DNS
//! server (Docker uses iptables DNAT for the same, tracked).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Result;

use super::firewall::run_nft_in;

/// The table in each container's namespace.
pub const TABLE: &str = "swarmnet_dns";

/// The script leading `resolver`:53 to its `udp` and `tcp` ports.
pub fn redirect_script(resolver: Ipv4Addr, udp: u16, tcp: u16) -> String {
    format!(
        "table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
    chain out {{
        type filter hook output priority raw; policy accept;
        ip daddr {resolver} udp dport 53 notrack udp dport set {udp}
        ip saddr {resolver} udp sport {udp} notrack udp sport set 53
        ip daddr {resolver} tcp dport 53 notrack tcp dport set {tcp}
        ip saddr {resolver} tcp sport {tcp} notrack tcp sport set 53
    }}
}}
"
    )
}

/// Applies the redirect in the namespace at `netns`.
pub fn redirect(netns: &Path, resolver: Ipv4Addr, udp: u16, tcp: u16) -> Result<()> {
    run_nft_in(Some(netns), &redirect_script(resolver, udp, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_both_protocols_untracked() {
        let script = redirect_script(Ipv4Addr::new(127, 0, 0, 11), 40001, 40002);
        assert!(script.starts_with("table ip swarmnet_dns\ndelete table ip swarmnet_dns\n"));
        assert!(script.contains("ip daddr 127.0.0.11 udp dport 53 notrack udp dport set 40001"));
        assert!(script.contains("ip saddr 127.0.0.11 udp sport 40001 notrack udp sport set 53"));
        assert!(script.contains("ip daddr 127.0.0.11 tcp dport 53 notrack tcp dport set 40002"));
        assert!(script.contains("ip saddr 127.0.0.11 tcp sport 40002 notrack tcp sport set 53"));
        assert!(script.contains("priority raw"));
    }
}
