//! The host's nftables rules, built as data and applied in one atomic batch
//! (`nft -f -`): containers' way out through the gateway bridge (masquerade,
//! replies only coming back, no traffic between containers on it), and the
//! VXLAN port closed to everything but the WireGuard interface, so no one on
//! the underlay can inject frames into an overlay. Docker leaves 4789 open on
//! unencrypted overlays; here every overlay frame must come out of the mesh.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
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

/// `program`, to run inside the network namespace `netns` if given.
pub(super) fn command_in(program: &str, netns: Option<&Path>) -> Result<Command> {
    let mut cmd = Command::new(program);
    if let Some(path) = netns {
        let namespace = crate::netlink::netns::open(path)?;
        // SAFETY: the hook only calls setns, async-signal-safe, on a file
        // opened before the fork.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)?;
                Ok(())
            });
        }
    }
    Ok(cmd)
}

fn run_nft(script: &str) -> Result<()> {
    run_nft_in(None, script)
}

/// Runs `nft -f -` with `script`, inside the network namespace `netns` if
/// given (the child enters it before exec; this thread never does).
pub(super) fn run_nft_in(netns: Option<&Path>, script: &str) -> Result<()> {
    let mut cmd = command_in("nft", netns)?;
    let mut child = cmd
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
        bail!("{}", refusal(script, &String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// nft's first error in one line, naming the table, the chain and the rule of
/// `script` it points at, instead of nft's echo of the line with carets under it.
fn refusal(script: &str, stderr: &str) -> String {
    let located = stderr.lines().find_map(|line| {
        let (place, message) = line.split_once(": Error: ")?;
        let number: usize = place.rsplit(':').nth(1)?.parse().ok()?;
        Some((number.checked_sub(1)?, message.trim()))
    });
    let Some((index, message)) = located else {
        let first = stderr.lines().map(str::trim).find(|l| !l.is_empty());
        return format!("nft failed: {}", first.unwrap_or("it gave no reason"));
    };
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    let Some(rule) = lines.get(index) else {
        return format!("nft failed: {message}");
    };
    let (mut table, mut chain) = (None, None);
    for line in &lines[..index] {
        let opens = |keyword: &str| Some(line.strip_prefix(keyword)?.strip_suffix('{')?.trim());
        if let Some(name) = opens("table ") {
            (table, chain) = (Some(name), None);
        } else if let Some(name) = opens("chain ") {
            chain = Some(name);
        } else if *line == "}" && chain.take().is_none() {
            table = None;
        }
    }
    let place = match (table, chain) {
        (Some(table), Some(chain)) => format!("in table {table}, chain {chain}"),
        (Some(table), None) => format!("in table {table}"),
        _ => "outside any table".to_string(),
    };
    format!("nft refused a rule {place}: {message}: {rule}")
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

    #[test]
    fn an_nft_failure_is_one_line_naming_table_chain_and_rule() {
        let script = rules().script();
        let line_of = |rule: &str| script.lines().position(|l| l.trim() == rule).unwrap() + 1;
        let at = line_of("oifname \"swarmnet0\" counter drop");
        let stderr = format!(
            "/dev/stdin:{at}:9-36: Error: Could not process rule: No such file or directory
        oifname \"swarmnet0\" counter drop
        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
"
        );
        assert_eq!(
            refusal(&script, &stderr),
            "nft refused a rule in table ip swarmnet, chain forward: \
             Could not process rule: No such file or directory: oifname \"swarmnet0\" counter drop"
        );
        let delete = line_of("delete table bridge swarmnet");
        let stderr = format!("/dev/stdin:{delete}:1-6: Error: No such file or directory\n");
        assert_eq!(
            refusal(&script, &stderr),
            "nft refused a rule outside any table: No such file or directory: delete table bridge swarmnet"
        );
        let bridge = script
            .lines()
            .position(|l| l.contains("iifname \"gw-*\""))
            .unwrap()
            + 1;
        let stderr =
            format!("/dev/stdin:{bridge}:9-12: Error: syntax error, unexpected drop\n  x\n  ^\n");
        assert!(
            refusal(&script, &stderr).starts_with(
                "nft refused a rule in table bridge swarmnet, chain forward: syntax error"
            ),
            "{}",
            refusal(&script, &stderr)
        );
        assert_eq!(
            refusal(
                &script,
                "netlink: Error: cache initialization failed: Operation not permitted\n"
            ),
            "nft failed: netlink: Error: cache initialization failed: Operation not permitted"
        );
        assert_eq!(refusal(&script, "\n"), "nft failed: it gave no reason");
    }

    /// Applies the rules with the real nft in a namespace of its own, twice,
    /// and reads them back.
    #[test]
    #[ignore = "needs root"]
    fn nft_accepts_the_rules_and_applying_twice_is_the_same() {
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
