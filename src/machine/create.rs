//! `machine create`: the lab (on first use), the machine's holder and dirs, its
//! leg on the underlay, its daemon. A guard undoes everything on failure.

use std::fs;

use anyhow::{bail, Context, Result};

use super::daemon;
use super::holder;
use super::ip;
use super::procs::ProcId;
use super::rm::{self, Teardown};
use super::state::{self, Lab, Machine};

/// Undoes a create that did not finish (on error or panic).
struct Guard<'a> {
    lab: &'a Lab,
    name: &'a str,
    made_lab: bool,
    made_dir: bool,
    machine: Option<Machine>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut teardown = Teardown::new(true);
        if self.made_dir {
            rm::teardown_machine(self.lab, self.name, self.machine.as_ref(), &mut teardown);
        }
        if self.made_lab {
            rm::remove_lab(self.lab, &mut teardown);
        }
        for err in teardown.errors {
            eprintln!("Error: while undoing the create of {}: {err:#}", self.name);
        }
    }
}

/// A taken name, and the two ways on.
fn already_exists(name: &str) -> String {
    format!("machine {name} already exists: pick another name, or remove it first with `swarmnet machine rm {name}`")
}

pub fn create(lab: &Lab, name: &str, daemon_args: &[String]) -> Result<i32> {
    state::validate_name(name)?;
    let daemon_argv = daemon::argv(daemon_args)?;
    if lab.machine(name).dir.exists() {
        bail!(already_exists(name));
    }
    let _lock = lab.lock()?;
    let paths = lab.machine(name);
    if paths.dir.exists() {
        bail!(already_exists(name));
    }
    let mut guard = Guard {
        lab,
        name,
        made_lab: false,
        made_dir: false,
        machine: None,
        armed: true,
    };
    let lab_holder = ensure_lab(lab, &mut guard)?;
    let host = state::next_host(&lab.used_hosts()?)
        .with_context(|| format!("lab {} has no free address left", lab.name))?;
    eprintln!("Creating machine {name} ({})...", state::address(host));
    fs::create_dir_all("/var/lib/swarmnet").context("could not create /var/lib/swarmnet")?;
    guard.made_dir = true;
    for dir in [&paths.run, &paths.lib] {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    }
    fs::write(&paths.resolv_conf, state::resolv_conf(name))
        .with_context(|| format!("could not write {}", paths.resolv_conf.display()))?;
    let (_holder_child, holder) = holder::spawn(lab, Some(name))?;
    let mut machine = Machine {
        name: name.to_string(),
        host,
        holder,
        daemon: None,
        daemon_argv,
    };
    guard.machine = Some(machine.clone());
    lab.save(&machine)?;
    ip::leg_setup(&lab_holder, &machine)
        .with_context(|| format!("could not plug machine {name} into the lab"))?;
    ip::machine_setup(&machine)
        .with_context(|| format!("could not set up the network of machine {name}"))?;
    eprintln!("Starting daemon...");
    let (mut child, daemon) = daemon::start(lab, &machine)?;
    machine.daemon = Some(daemon);
    guard.machine = Some(machine.clone());
    lab.save(&machine)?;
    daemon::wait_ready(lab, &machine, &mut child)?;
    guard.armed = false;
    println!("{name}");
    Ok(0)
}

/// The lab's holder, starting the lab (namespace and bridge) if needed.
fn ensure_lab(lab: &Lab, guard: &mut Guard) -> Result<ProcId> {
    if lab.holder()?.is_some() {
        return rm::lab_holder(lab)?.with_context(|| {
            format!(
                "lab {} is broken (its namespace is gone): remove it with \
                 `swarmnet machine rm --all -f`",
                lab.name
            )
        });
    }
    guard.made_lab = true;
    let (_child, holder) = holder::spawn(lab, None).context("could not create the lab")?;
    lab.save_holder(holder)?;
    ip::lab_setup(&holder)
        .with_context(|| format!("could not create the bridge of lab {}", lab.name))?;
    Ok(holder)
}
