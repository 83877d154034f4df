//! Overlays on two machines: networks with the same subnet stay apart, a
//! namespace made with `ip netns add` joins a network, and containers outlive
//! a SIGKILLed daemon with the same addresses and nothing duplicated.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::harness::*;

const MANAGER: &str = "192.168.99.100";
const WAIT: Duration = Duration::from_secs(20);

fn sn(lab: &Lab, machine: &str, args: &[&str]) -> String {
    stdout(&ok(&lab.sn(machine, args)))
}

fn serve(lab: &Lab, machine: &str, name: &str, network: &str) {
    sn(
        lab,
        machine,
        &[
            "container",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--",
            bin(),
            "whoami",
            "--port",
            "3000",
        ],
    );
}

fn exec(lab: &Lab, machine: &str, name: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["container", "exec", name, "--"];
    args.extend_from_slice(cmd);
    lab.sn(machine, &args)
}

/// One ping from the namespace `ns` (made with `ip netns add`) on vm1.
fn ns_ping(lab: &Lab, ns: &str, ip: &str) -> Output {
    lab.ssh(
        "vm1",
        &["ip", "netns", "exec", ns, "ping", "-c1", "-W2", ip],
    )
}

/// The hostname whoami at `ip` answers with, fetched from inside `from`.
fn hostname_at(lab: &Lab, machine: &str, from: &str, ip: &str) -> Result<String, String> {
    let out = exec(
        lab,
        machine,
        from,
        &["curl", "-sf", "-m", "3", &format!("http://{ip}:3000/")],
    );
    if !out.status.success() {
        return Err(stderr(&out));
    }
    let body = stdout(&out);
    body.lines()
        .next()
        .and_then(|l| l.strip_prefix("Hostname: "))
        .map(String::from)
        .ok_or(body)
}

/// What the machine has that must not be duplicated: namespaces and veth ends.
fn plumbing(lab: &Lab, machine: &str) -> (String, usize) {
    let netns = stdout(&ok(&lab.ssh(machine, &["ls", "/run/swarmnet/netns"])));
    let sandboxes: Vec<String> = netns
        .lines()
        .filter(|n| n.starts_with("1-"))
        .map(|n| format!("/run/swarmnet/netns/{n}"))
        .collect();
    let veths: usize = sandboxes
        .iter()
        .map(|s| {
            let links = stdout(&ok(&lab.ssh(
                machine,
                &[
                    "nsenter",
                    &format!("--net={s}"),
                    "ip",
                    "-o",
                    "link",
                    "show",
                    "type",
                    "veth",
                ],
            )));
            links.lines().count()
        })
        .sum();
    (netns, veths)
}

#[test]
#[ignore = "needs root"]
fn overlapping_networks_namespaces_and_daemon_restarts() {
    let lab = Lab::new();
    lab.machines(&["vm1", "vm2"]);
    lab.swarm("vm1", MANAGER, &["vm2"]);
    for (name, mtu) in [("green", "mtu=1370"), ("amber", "mtu=1300")] {
        sn(
            &lab,
            "vm1",
            &[
                "network",
                "create",
                "--attachable",
                "--subnet",
                "10.40.0.0/24",
                "--opt",
                "allow-overlap",
                "--opt",
                mtu,
                name,
            ],
        );
    }
    // The same two addresses on both networks, on opposite hosts.
    serve(&lab, "vm1", "g1", "green");
    serve(&lab, "vm2", "a1", "amber");
    serve(&lab, "vm2", "g2", "green");
    serve(&lab, "vm1", "a2", "amber");
    let g2 = eventually("g1 reaches g2 on green", WAIT, || {
        hostname_at(&lab, "vm1", "g1", "10.40.0.3")
    });
    assert_eq!(g2, "g2", "10.40.0.3 on green is g2");
    let a2 = eventually("a1 reaches a2 on amber", WAIT, || {
        hostname_at(&lab, "vm2", "a1", "10.40.0.3")
    });
    assert_eq!(a2, "a2", "10.40.0.3 on amber is a2, not green's g2");
    assert_eq!(hostname_at(&lab, "vm2", "g2", "10.40.0.2").unwrap(), "g1");
    // --opt mtu sets the MTU of the network's interfaces.
    let mtu = stdout(&ok(&exec(
        &lab,
        "vm2",
        "a1",
        &["cat", "/sys/class/net/eth0/mtu"],
    )));
    assert_eq!(mtu.trim(), "1300");

    // A namespace made by another tool joins green and reaches g2 on the other host.
    let ns = format!("{}-ns", lab.name);
    let path = format!("/run/netns/{ns}");
    ok(&lab.ssh("vm1", &["ip", "netns", "add", &ns]));
    let attached = sn(
        &lab,
        "vm1",
        &["container", "attach", "--network", "green", &path],
    );
    assert_eq!(attached.trim(), "10.40.0.4/24 eth0");
    eventually("the namespace reaches g2", WAIT, || {
        let out = ns_ping(&lab, &ns, "10.40.0.3");
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| stdout(&out))
    });
    fails_with(
        &lab.sn("vm1", &["container", "attach", "--network", "green", &path]),
        "already attached to network green",
    );
    // Again by the network's short ID: refused, and the live interface stays.
    let id = sn(
        &lab,
        "vm1",
        &["network", "inspect", "--format", "{{.Id}}", "green"],
    )
    .trim()
    .chars()
    .take(12)
    .collect::<String>();
    fails_with(
        &lab.sn("vm1", &["container", "attach", "--network", &id, &path]),
        "already attached to network green",
    );
    let out = ns_ping(&lab, &ns, "10.40.0.3");
    assert!(
        out.status.success(),
        "the first attachment still works: {}",
        stdout(&out)
    );
    // Detached by the short ID too, as attach takes it.
    sn(
        &lab,
        "vm1",
        &["container", "detach", "--network", &id, &path],
    );
    let links = stdout(&ok(
        &lab.ssh("vm1", &["ip", "netns", "exec", &ns, "ip", "-o", "link"])
    ));
    assert!(
        !links.contains("eth0"),
        "detach takes the interface away: {links}"
    );
    ok(&lab.ssh("vm1", &["ip", "netns", "del", &ns]));
    // A namespace deleted while attached: its endpoint is given back.
    let gone = format!("{}-gone", lab.name);
    ok(&lab.ssh("vm1", &["ip", "netns", "add", &gone]));
    sn(
        &lab,
        "vm1",
        &[
            "container",
            "attach",
            "--network",
            "green",
            &format!("/run/netns/{gone}"),
        ],
    );
    ok(&lab.ssh("vm1", &["ip", "netns", "del", &gone]));
    eventually("the deleted namespace's endpoint goes", WAIT, || {
        let doc = sn(&lab, "vm1", &["network", "inspect", "green"]);
        (!doc.contains(&gone)).then_some(()).ok_or(doc)
    });

    // SIGKILL both daemons: containers keep running and keep their addresses,
    // traffic resumes within 5 s of the daemons being back, nothing doubles.
    let before = [plumbing(&lab, "vm1"), plumbing(&lab, "vm2")];
    // What a crash between making a container and recording it leaves: a
    // namespace and a directory; the restarted daemon sweeps both.
    let stray = "/run/swarmnet/netns/0000000stray";
    ok(&lab.ssh("vm2", &["touch", stray]));
    ok(&lab.ssh("vm2", &["unshare", &format!("--net={stray}"), "true"]));
    ok(&lab.ssh(
        "vm2",
        &["mkdir", "-p", "/var/lib/swarmnet/containers/stray"],
    ));
    let running = |lab: &Lab| {
        sn(
            lab,
            "vm2",
            &["container", "ls", "--format", "{{.ID}} {{.Networks}}"],
        )
    };
    let before_running = running(&lab);
    for machine in ["vm1", "vm2"] {
        ok(&lab.run(&["machine", "restart", "--signal", "KILL", machine]));
    }
    let back = Instant::now();
    eventually("cross-host traffic resumes", Duration::from_secs(5), || {
        hostname_at(&lab, "vm1", "g1", "10.40.0.3")
    });
    eprintln!(
        "traffic resumed {:?} after the daemons were back",
        back.elapsed()
    );
    assert_eq!(
        running(&lab),
        before_running,
        "the same containers still run, on the same networks"
    );
    assert_eq!(hostname_at(&lab, "vm2", "a1", "10.40.0.3").unwrap(), "a2");
    let after = [plumbing(&lab, "vm1"), plumbing(&lab, "vm2")];
    assert_eq!(
        after, before,
        "no namespace or veth was made twice, the stray one went"
    );
    let left = lab.ssh("vm2", &["ls", "/var/lib/swarmnet/containers/stray"]);
    assert!(
        !left.status.success(),
        "the unrecorded container's directory went"
    );
}
