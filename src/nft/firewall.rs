//! The host's nftables rules, built as data and applied in one atomic batch
//! (`nft -f -`): containers' way out through the gateway bridge (masquerade,
//! replies only coming back, no traffic between containers on it), and the
//! VXLAN port closed to everything but the WireGuard interface, so no one on
//! the underlay can inject frames into an overlay. Docker leaves 4789 open on
//! unencrypted overlays; here every overlay frame must come out of the mesh.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use ipnetwork::Ipv4Network;

use crate::model::VXLAN_PORT;

/// The table all of swarmnet's host rules live in.
pub const TABLE: &str = "swarmnet";

/// What the host's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRules {
    /// The WireGuard mesh interface: the only way VXLAN may come in.
    pub mesh_iface: String,
    /// The gateway bridge and its subnet.
    pub gw_bridge: String,
    pub gw_subnet: Ipv4Network,
}

impl HostRules {
    /// The `nft -f` script: (re)creates both tables whole, so applying it twice
    /// gives the same rules, and a failure changes nothing.
    pub fn script(&self) -> String {
        let HostRules {
            mesh_iface,
            gw_bridge,
            gw_subnet,
        } = self;
        format!(
            "table ip {TABLE}
delete table ip {TABLE}
table ip {TABLE} {{
    chain raw_prerouting {{
        type filter hook prerouting priority raw; policy accept;
        udp dport {VXLAN_PORT} notrack comment \"overlay datagrams need no connection tracking\"
    }}
    chain raw_output {{
        type filter hook output priority raw; policy accept;
        udp dport {VXLAN_PORT} notrack
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        udp dport {VXLAN_PORT} iifname != \"{mesh_iface}\" counter drop comment \"overlay frames only from the mesh\"
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname \"{mesh_iface}\" counter drop comment \"the mesh carries this host's own traffic only\"
        oifname \"{mesh_iface}\" counter drop
        oifname \"{gw_bridge}\" ct state established,related accept
        oifname \"{gw_bridge}\" counter drop comment \"nothing new into containers from outside\"
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {gw_subnet} oifname != \"{gw_bridge}\" masquerade
    }}
}}
table bridge {TABLE}
delete table bridge {TABLE}
table bridge {TABLE} {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname \"gw-*\" oifname \"gw-*\" counter drop comment \"containers do not meet on the gateway bridge\"
    }}
}}
"
        )
    }
}

/// Applies the rules in one `nft` transaction, and turns IPv4 forwarding on
/// (containers leave through the host).
pub fn apply(rules: &HostRules) -> Result<()> {
    run_nft(&rules.script()).context("cannot apply swarmnet's nftables rules")?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("cannot turn on IPv4 forwarding (net.ipv4.ip_forward)")
}

/// Removes swarmnet's tables (on `swarm leave`); absent tables are fine.
pub fn remove() -> Result<()> {
    let script = format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable bridge {TABLE}\ndelete table bridge {TABLE}\n"
    );
    run_nft(&script).context("cannot remove swarmnet's nftables rules")
}

fn run_nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft: install the nftables package")?;
    child
        .stdin
        .take()
        .context("nft has no stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules {
            mesh_iface: "swarmnet0".into(),
            gw_bridge: crate::model::GW_BRIDGE.into(),
            gw_subnet: "172.18.0.0/16".parse().unwrap(),
        }
    }

    #[test]
    fn the_script_replaces_whole_tables() {
        let script = rules().script();
        assert!(script.starts_with("table ip swarmnet\ndelete table ip swarmnet\n"));
        assert!(script.contains("udp dport 4789 iifname != \"swarmnet0\" counter drop"));
        assert!(script.contains("ip saddr 172.18.0.0/16 oifname != \"swarmnet_gwbr\" masquerade"));
        assert!(script.contains("iifname \"gw-*\" oifname \"gw-*\" counter drop"));
    }

    /// Applies the rules with the real nft in a namespace of its own, twice,
    /// and reads them back.
    #[test]
    fn nft_accepts_the_rules_and_applying_twice_is_the_same() {
        if !crate::test_support::root_or_skip() {
            return;
        }
        let ns = format!("sn-fw-{}", std::process::id());
        let ip = |args: &[&str]| Command::new("ip").args(args).status().unwrap().success();
        assert!(ip(&["netns", "add", &ns]));
        struct Guard(String);
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _guard = Guard(ns.clone());
        let nft = |stdin: &str| {
            let mut child = Command::new("ip")
                .args(["netns", "exec", &ns, "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let script = rules().script();
        nft(&script);
        nft(&script);
        let listed = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert_eq!(listed.matches("table ip swarmnet").count(), 1, "{listed}");
        assert_eq!(listed.matches("masquerade").count(), 1, "{listed}");
        assert!(listed.contains("table bridge swarmnet"), "{listed}");
    }
}
