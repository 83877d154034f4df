//! Wakes the task runner the moment a task container ends: one waiter per
//! running task container awaits its process's pidfd, then its shim's, so
//! the exit code is recorded by the time the runner looks
//! (`runtime::ended`). A pidfd works for any process, not only a child, so
//! the containers a daemon finds after a restart are waited on too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::runtime::{self, Process};

/// The waiters, by container ID, and the wake-up they share.
#[derive(Default)]
pub(super) struct TaskExits {
    waiters: HashMap<String, Waiter>,
    ended: Arc<Notify>,
}

/// One container's waiter; dropping it stops it and closes its pidfds.
struct Waiter {
    process: Process,
    task: JoinHandle<()>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running task container: its ID, its directory, its main process.
pub(super) type Running = (String, PathBuf, Process);

impl TaskExits {
    /// Waits on exactly the containers in `running`: a new one (or a new
    /// process under a known ID) gets a waiter, one no longer listed loses it.
    pub(super) fn follow(&mut self, running: Vec<Running>) {
        self.waiters.retain(|id, waiter| {
            running
                .iter()
                .any(|(i, _, process)| i == id && *process == waiter.process)
        });
        for (id, dir, process) in running {
            if self.waiters.contains_key(&id) {
                continue;
            }
            let ended = self.ended.clone();
            let container = id.clone();
            let task = tokio::spawn(async move {
                match runtime::ended(&dir, process).await {
                    Ok(()) => ended.notify_one(),
                    Err(e) => tracing::warn!(
                        %container,
                        "cannot wait for the task container to end (its end is noticed by the next poll): {e:#}"
                    ),
                }
            });
            self.waiters.insert(id, Waiter { process, task });
        }
    }

    /// Resolves when a container waited on has ended; an end that came
    /// while nobody awaited this is kept for the next call.
    pub(super) async fn ended(&self) {
        self.ended.notified().await
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    /// The pidfds this process holds on `pid` (their fdinfo names it).
    fn pidfds_on(pid: u32) -> usize {
        let pid_line = format!("Pid:\t{pid}\n");
        std::fs::read_dir("/proc/self/fdinfo")
            .unwrap()
            .filter_map(|fd| std::fs::read_to_string(fd.ok()?.path()).ok())
            .filter(|info| info.contains(&pid_line))
            .count()
    }

    async fn eventually_no_pidfd_on(pid: u32) {
        for _ in 0..100 {
            if pidfds_on(pid) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a pidfd on process {pid} is left open");
    }

    /// A killed process wakes the runner at once; a container that goes
    /// away takes its waiter and its pidfd with it, and one still running
    /// wakes nobody.
    #[tokio::test]
    async fn an_ended_container_wakes_the_runner_and_a_forgotten_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, mut second) = (
            Command::new("sleep").arg("30").spawn().unwrap(),
            Command::new("sleep").arg("30").spawn().unwrap(),
        );
        let running = |child: &std::process::Child, id: &str| {
            let pid = child.id() as i32;
            let process = Process {
                pid,
                start_time: crate::procs::stat(pid).unwrap().start,
            };
            (id.to_string(), dir.path().to_path_buf(), process)
        };
        let mut exits = TaskExits::default();
        exits.follow(vec![running(&first, "a"), running(&second, "b")]);
        let pending = Duration::from_millis(300);
        assert!(timeout(pending, exits.ended()).await.is_err());
        assert_eq!(pidfds_on(second.id()), 1, "its waiter holds a pidfd");

        first.kill().unwrap();
        timeout(Duration::from_secs(5), exits.ended())
            .await
            .expect("a killed process wakes the runner");
        first.wait().unwrap();
        exits.follow(vec![running(&second, "b")]);
        assert_eq!(exits.waiters.len(), 1);
        exits.follow(Vec::new());
        assert!(exits.waiters.is_empty());
        eventually_no_pidfd_on(second.id()).await;
        second.kill().unwrap();
        assert!(
            timeout(pending, exits.ended()).await.is_err(),
            "a container no longer followed wakes nobody"
        );
        second.wait().unwrap();
    }
}
