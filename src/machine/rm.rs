//! Removing machines and labs: stop the daemon, stop every process left in the
//! machine's namespaces, delete its leg, end its holder, remove its dir. Without
//! force the first error stops the removal; with force every step runs and all
//! errors are reported at the end.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::daemon::{self, StopSignal};
use super::holder;
use super::ip;
use super::procs::{Namespaces, NsKind, ProcId};
use super::state::{Lab, Machine, STATE_ROOT};
use super::sweep;

/// Errors collected along a teardown.
pub struct Teardown {
    force: bool,
    pub errors: Vec<anyhow::Error>,
}

impl Teardown {
    pub fn new(force: bool) -> Teardown {
        Teardown {
            force,
            errors: Vec::new(),
        }
    }

    /// Records a step's error; false when the teardown must stop here.
    fn step(&mut self, result: Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(err) => {
                self.errors.push(err);
                self.force
            }
        }
    }
}

/// `machine rm`: the named machines, or with `all` every machine and the lab.
pub fn rm(lab: &Lab, names: &[String], all: bool, force: bool) -> Result<i32> {
    let names = if all { lab.names()? } else { names.to_vec() };
    if !force {
        for name in &names {
            lab.load(name)?;
        }
    }
    let _lock = lab.dir.exists().then(|| lab.lock()).transpose()?;
    let mut teardown = Teardown::new(force);
    for name in &names {
        let before = teardown.errors.len();
        let go_on = match lab.load(name) {
            Ok(machine) => teardown_machine(lab, name, Some(&machine), &mut teardown),
            Err(err) if lab.machine(name).dir.exists() => {
                teardown.step(Err(err)) && teardown_machine(lab, name, None, &mut teardown)
            }
            Err(err) => teardown.step(Err(err)),
        };
        if teardown.errors.len() == before {
            println!("{name}");
        }
        if !go_on {
            break;
        }
    }
    if all && (force || teardown.errors.is_empty()) {
        remove_lab(lab, &mut teardown);
    }
    let mut errors = teardown.errors;
    match errors.len() {
        0 => Ok(0),
        1 => Err(errors.remove(0)),
        _ => {
            for err in &errors {
                eprintln!("Error: {err:#}");
            }
            Ok(1)
        }
    }
}

/// Tears one machine down; false when a failure must stop the caller.
pub fn teardown_machine(
    lab: &Lab,
    name: &str,
    machine: Option<&Machine>,
    t: &mut Teardown,
) -> bool {
    if let Some(machine) = machine {
        let pinned = pin(lab, machine);
        let stopped = t.step(daemon::stop(machine, StopSignal::Term));
        if !stopped || !t.step(pinned.and_then(|pinned| end_machine(lab, machine, pinned))) {
            return false;
        }
    }
    let dir = lab.machine(name).dir;
    t.step(remove_dir(&dir))
}

/// The machine's namespaces and private /run, held through its holder, or
/// through its daemon if the holder was killed; None if both are gone.
fn pin(lab: &Lab, machine: &Machine) -> Result<Option<(Namespaces, Option<String>)>> {
    let owner = if holder::is_holder(&machine.holder, &lab.name, Some(&machine.name)) {
        Some(machine.holder)
    } else {
        machine.daemon.filter(ProcId::alive)
    };
    let Some(owner) = owner else {
        return Ok(None);
    };
    let ns = Namespaces::of(&owner, &NsKind::MACHINE)?;
    Ok(Some((ns, sweep::bound_at(&owner, "/run"))))
}

/// Stops what runs in the machine, deletes its leg, ends its holder.
fn end_machine(
    lab: &Lab,
    machine: &Machine,
    pinned: Option<(Namespaces, Option<String>)>,
) -> Result<()> {
    let name = &machine.name;
    if let Some((ns, run)) = pinned {
        sweep::kill_inside(&ns, &[machine.holder.pid], run.as_deref())
            .with_context(|| format!("could not stop the processes of machine {name}"))?;
    }
    if let Some(lab_holder) = lab_holder(lab)? {
        ip::delete_leg(&lab_holder, machine)
            .with_context(|| format!("could not delete the leg of machine {name}"))?;
    }
    holder::kill(&machine.holder, &lab.name, Some(name))
        .with_context(|| format!("could not end the namespaces of machine {name}"))
}

/// The lab's holder, if it still runs.
pub fn lab_holder(lab: &Lab) -> Result<Option<ProcId>> {
    Ok(lab
        .holder()?
        .filter(|id| holder::is_holder(id, &lab.name, None)))
}

/// Ends every holder left in the lab (machines first, found by command line,
/// so leftovers without a record go too), then removes the lab's state.
pub fn remove_lab(lab: &Lab, t: &mut Teardown) {
    let mut holders = holder::find(&lab.name);
    holders.sort_by_key(|(_, name)| name.is_none());
    for (id, name) in holders {
        let kinds: &[NsKind] = match name {
            Some(_) => &NsKind::MACHINE,
            None => &[NsKind::Net],
        };
        let what = name
            .as_deref()
            .map_or(format!("lab {}", lab.name), |n| format!("machine {n}"));
        let run = sweep::bound_at(&id, "/run").filter(|_| name.is_some());
        let ended = Namespaces::of(&id, kinds)
            .and_then(|ns| sweep::kill_inside(&ns, &[id.pid], run.as_deref()))
            .and_then(|()| holder::kill(&id, &lab.name, name.as_deref()))
            .with_context(|| format!("could not end the namespaces of {what}"));
        if !t.step(ended) {
            return;
        }
    }
    if t.step(remove_dir(&lab.dir)) {
        // Fails while other labs exist, which is fine.
        let _ = fs::remove_dir(STATE_ROOT);
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("could not remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}
