//! What a daemon that died part-way through a start can leave in a
//! container's directory: a shim (shim.json) and a container process
//! (pid.json) that no record may own yet. The start-up sweep adopts the
//! process into a record, or stops both by their recorded identity (pid +
//! start time, never a name), with every other process in their namespace.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;

use super::files::{read_process, Layout};
use super::process::kill_namespace_members;
use super::Process;
use crate::netlink::netns;

/// How long a sweep gives a live shim to report its container's process.
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a SIGKILLed shim may take to be gone.
const SHIM_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The container process the shim of `dir` reported, if it still runs. A
/// shim still alive that has not reported yet gets `REPORT_TIMEOUT` to do so.
pub fn live_process(dir: &Path) -> Option<Process> {
    let layout = Layout(dir);
    let deadline = Instant::now() + REPORT_TIMEOUT;
    loop {
        // Read before pid.json: a shim that reported and ended is not waited for.
        let shim_alive = recorded(&layout.shim_json()).is_some_and(|s| s.alive());
        if let Some(process) = recorded(&layout.pid_json()) {
            return process.alive().then_some(process);
        }
        if !shim_alive || Instant::now() > deadline {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

/// Stops what `dir` says runs for a container no record owns: its shim
/// first (so it records nothing more), then its process, then every other
/// process in `namespace` (a container's namespace file) when given. Returns
/// how many processes were stopped.
pub fn stop_leftovers(dir: &Path, namespace: Option<&Path>) -> Result<usize> {
    let layout = Layout(dir);
    let mut stopped = 0;
    if let Some(shim) = recorded(&layout.shim_json()).filter(Process::alive) {
        if shim.signal(Signal::SIGKILL)? {
            stopped += 1;
            shim.gone_within(SHIM_KILL_TIMEOUT);
        }
    }
    if let Some(process) = recorded(&layout.pid_json()).filter(Process::alive) {
        process.stop(Duration::ZERO)?;
        stopped += 1;
    }
    if let Some(path) = namespace {
        stopped += kill_namespace(path)?;
    }
    Ok(stopped)
}

/// SIGKILLs every process in the network namespace bound at `path`, and
/// returns how many there were; a path that is not a namespace has none.
pub fn kill_namespace(path: &Path) -> Result<usize> {
    if !netns::is_namespace(path) {
        return Ok(0);
    }
    kill_namespace_members(&netns::open(path)?)
}

/// The process recorded at `path`; an unreadable record counts as none.
fn recorded(path: &Path) -> Option<Process> {
    read_process(path).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::files::write_process;

    #[test]
    fn a_reported_process_is_live_only_while_it_is_the_same_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(live_process(dir.path()), None, "nothing was reported");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let process = Process::of(child.id() as i32).unwrap();
        write_process(&Layout(dir.path()).pid_json(), &process).unwrap();
        assert_eq!(live_process(dir.path()), Some(process));
        let recycled = Process {
            start_time: process.start_time + 1,
            ..process
        };
        write_process(&Layout(dir.path()).pid_json(), &recycled).unwrap();
        assert_eq!(live_process(dir.path()), None, "a recycled pid is not it");
        child.kill().unwrap();
        child.wait().unwrap();
        write_process(&Layout(dir.path()).pid_json(), &process).unwrap();
        assert_eq!(live_process(dir.path()), None, "it has ended");
        assert_eq!(stop_leftovers(dir.path(), None).unwrap(), 0);
        assert_eq!(kill_namespace(dir.path()).unwrap(), 0, "not a namespace");
    }
}
