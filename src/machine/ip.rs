//! The lab's network driver: iproute2 (`ip -batch -`) run inside a namespace
//! entered in the child's `pre_exec`. Builders return the command lines so the
//! plan is plain data.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::procs::{Namespaces, NsKind, ProcId};
use super::state::{Machine, UNDERLAY_PREFIX};

/// The underlay bridge, private to the lab namespace.
const BRIDGE: &str = "br0";
const MTU: u32 = 1500;

/// Commands for the lab namespace: an up bridge without addresses.
pub fn lab_setup() -> Vec<String> {
    vec![
        format!("link add {BRIDGE} type bridge"),
        format!("link set {BRIDGE} up"),
    ]
}

/// Commands for the lab namespace: the machine's veth, its peer moved straight
/// into the machine (named by its holder's pid), the lab end on the bridge.
pub fn leg_setup(machine: &Machine) -> Vec<String> {
    let leg = machine.leg();
    let holder = machine.holder.pid;
    vec![
        format!("link add {leg} mtu {MTU} type veth peer name eth0 mtu {MTU} netns {holder}"),
        format!("link set {leg} master {BRIDGE}"),
        format!("link set {leg} up"),
    ]
}

/// Commands for the machine namespace: lo and eth0 up, the underlay address.
pub fn machine_setup(machine: &Machine) -> Vec<String> {
    let address = machine.address();
    vec![
        "link set lo up".to_string(),
        format!("addr add {address}/{UNDERLAY_PREFIX} dev eth0"),
        "link set eth0 up".to_string(),
    ]
}

/// Runs `commands` with `ip -batch -` inside the namespaces of `owner`.
pub fn run(owner: &ProcId, commands: &[String]) -> Result<()> {
    let ns = Namespaces::of(owner, &[NsKind::Net])?;
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ns.enter_on_exec(&mut cmd, false, None)?;
    let mut child = cmd
        .spawn()
        .context("could not run ip (is iproute2 installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.join("\n").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("ip failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Deletes the machine's leg (and so its eth0) in the lab namespace; a leg
/// already gone is fine.
pub fn delete_leg(lab_holder: &ProcId, machine: &Machine) -> Result<()> {
    match run(lab_holder, &[format!("link del {}", machine.leg())]) {
        Err(err) if err.to_string().contains("Cannot find device") => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leg_and_machine_commands() {
        let machine = Machine {
            name: "vm2".into(),
            host: 101,
            holder: ProcId {
                pid: 4242,
                start: 9,
            },
            daemon: None,
            daemon_argv: Vec::new(),
        };
        assert_eq!(
            leg_setup(&machine)[0],
            "link add m1 mtu 1500 type veth peer name eth0 mtu 1500 netns 4242"
        );
        assert_eq!(
            machine_setup(&machine)[1],
            "addr add 192.168.99.101/24 dev eth0"
        );
    }
}
