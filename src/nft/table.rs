//! A swarmnet table as data, replaced in one `nft -f` transaction while its
//! conntrack timeout policy stays. Every TCP flow swarmnet DNATs, or routes
//! back by its mark, takes the `swarmnet_tcp` policy on its first packet, so
//! an idle connection lives as long as the policy says, whatever the
//! namespace's `nf_conntrack_tcp_timeout_established`. Deleting the object
//! (as deleting the table on every change would) hands every flow that
//! carries it back to the sysctl at its next packet; so a change replaces
//! the table's chains, never the table, and only a table no longer needed
//! is deleted.

use std::fmt::Write;

/// The conntrack timeout policy's name, in each table that uses it.
pub const CT_TIMEOUT: &str = "swarmnet_tcp";

/// How long (seconds) an established TCP flow may stay idle: 5 days, the
/// kernel's own default, pinned so that a namespace whose sysctl is
/// shortened does not cut connections through the mesh or a VIP (Docker's
/// IPVS cuts them at 900 s, moby#31208). Not longer: a peer that vanished
/// without a FIN or RST still leaves its entry within days. The other TCP
/// states take nft's defaults, which are the kernel's (SYN_SENT 120 s,
/// TIME_WAIT 120 s, ...). The kernel keeps an existing object as it is, so
/// a new policy needs a new name.
pub const ESTABLISHED_IDLE_SECS: u32 = 432_000;

/// The statement that gives a TCP flow the policy (on other protocols it
/// does nothing). The kernel takes it on a flow's first packet only, and
/// only after conntrack has seen the packet (a hook priority above raw's:
/// mangle, the nat hooks, filter); at raw priority it is ignored.
pub const SET_CT_TIMEOUT: &str = "ct timeout set \"swarmnet_tcp\"";

/// A base chain: its name and its `type ... hook ... priority ...;` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub name: &'static str,
    pub spec: &'static str,
}

impl Hook {
    /// This chain with `rules` (one statement each, without indentation).
    pub fn with(self, rules: Vec<String>) -> Chain {
        Chain { hook: self, rules }
    }
}

/// A base chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub hook: Hook,
    pub rules: Vec<String>,
}

/// An `ip` table and every chain it may hold, whichever it holds now: a
/// change deletes them all and adds those it needs.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub hooks: &'static [Hook],
}

impl Table {
    /// The script that deletes the table (a no-op when it is not there).
    pub fn deleted(&self) -> String {
        let name = self.name;
        format!("table ip {name}\ndelete table ip {name}\n")
    }

    /// The `nft -f` script that leaves the table holding the timeout policy
    /// and exactly the chains among `chains` that have rules: applied twice,
    /// the same rules; failing, nothing changed. With no rules at all, the
    /// table is deleted. The policy object is added only when missing, so
    /// the flows that carry it keep it.
    pub fn script(&self, chains: &[Chain]) -> String {
        let chains: Vec<&Chain> = chains.iter().filter(|c| !c.rules.is_empty()).collect();
        if chains.is_empty() {
            return self.deleted();
        }
        let name = self.name;
        let mut script = format!(
            "table ip {name} {{
    ct timeout {CT_TIMEOUT} {{
        protocol tcp; l3proto ip;
        policy = {{ established: {ESTABLISHED_IDLE_SECS} }}
    }}
"
        );
        // Every chain it may hold is declared (a no-op when there) so that
        // each can be deleted, with its rules, whatever the last apply left.
        for hook in self.hooks {
            let _ = writeln!(script, "    chain {} {{\n    }}", hook.name);
        }
        script.push_str("}\n");
        for hook in self.hooks {
            let _ = writeln!(script, "delete chain ip {name} {}", hook.name);
        }
        let _ = writeln!(script, "table ip {name} {{");
        for chain in chains {
            debug_assert!(
                self.hooks.contains(&chain.hook),
                "{} is not among {name}'s chains: its rules would pile up",
                chain.hook.name
            );
            let _ = writeln!(script, "    chain {} {{", chain.hook.name);
            let _ = writeln!(script, "        {} policy accept;", chain.hook.spec);
            for rule in &chain.rules {
                let _ = writeln!(script, "        {rule}");
            }
            script.push_str("    }\n");
        }
        script.push_str("}\n");
        script
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: Hook = Hook {
        name: "out",
        spec: "type nat hook output priority -100;",
    };
    const IN: Hook = Hook {
        name: "in",
        spec: "type filter hook prerouting priority mangle;",
    };
    const T: Table = Table {
        name: "t",
        hooks: &[OUT, IN],
    };

    #[test]
    fn a_change_replaces_every_chain_and_keeps_the_timeout_policy() {
        let script = T.script(&[OUT.with(vec!["ip daddr 10.0.0.1 dnat to 10.0.0.2".into()])]);
        assert_eq!(
            script,
            "table ip t {
    ct timeout swarmnet_tcp {
        protocol tcp; l3proto ip;
        policy = { established: 432000 }
    }
    chain out {
    }
    chain in {
    }
}
delete chain ip t out
delete chain ip t in
table ip t {
    chain out {
        type nat hook output priority -100; policy accept;
        ip daddr 10.0.0.1 dnat to 10.0.0.2
    }
}
"
        );
        assert!(
            !script.contains("delete table"),
            "the policy outlives a change"
        );
    }

    #[test]
    fn a_chain_without_rules_is_left_out_and_no_rules_delete_the_table() {
        let script = T.script(&[OUT.with(Vec::new()), IN.with(vec!["accept".into()])]);
        assert!(!script.contains("type nat"), "{script}");
        assert!(script.contains(
            "type filter hook prerouting priority mangle; policy accept;\n        accept\n"
        ));
        assert_eq!(
            T.script(&[OUT.with(Vec::new())]),
            "table ip t\ndelete table ip t\n"
        );
        assert_eq!(T.script(&[]), T.deleted());
    }

    #[test]
    fn the_statement_names_the_policy() {
        assert_eq!(SET_CT_TIMEOUT, format!("ct timeout set \"{CT_TIMEOUT}\""));
    }
}
