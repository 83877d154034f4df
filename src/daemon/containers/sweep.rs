//! The start-up sweep of the container directories, before any request:
//! a recorded container whose process a crash left unrecorded adopts it; a
//! directory no record owns loses its shim, its process and every process in
//! its namespace (stopped by recorded identity, never by name), then goes.

use std::path::{Path, PathBuf};

use super::{Container, Containers, CONFIG};
use crate::manager::now_secs;
use crate::runtime;

/// What the sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Records that took in the process a crash left unrecorded.
    pub adopted: usize,
    /// Processes stopped because no record owned them.
    pub stopped: usize,
    /// Directories removed because no record owned them.
    pub removed: usize,
}

impl Containers {
    /// Sweeps every container directory; `netns_dir` holds the containers'
    /// namespaces, each named by the first 12 digits of its ID.
    pub fn sweep(&self, netns_dir: &Path) -> Swept {
        let mut swept = Swept::default();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return swept;
        };
        let dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|dir| dir.is_dir())
            .collect();
        for dir in dirs {
            match read_record(&dir) {
                Some(c) => self.adopt(c, &dir, &mut swept),
                None if dir.join(CONFIG).exists() => {
                    tracing::warn!(dir = %dir.display(), "a container record cannot be read; leaving its directory alone")
                }
                None => self.remove_unowned(&dir, netns_dir, &mut swept),
            }
        }
        swept
    }

    /// A recorded container whose recorded process is gone takes in the one
    /// its shim reported since (a crash between starting it and recording
    /// it); a shim that reports none is stopped.
    fn adopt(&self, mut c: Container, dir: &Path, swept: &mut Swept) {
        if c.process.alive() {
            return;
        }
        match runtime::live_process(dir) {
            Some(process) => {
                c.process = process;
                c.started = now_secs();
                match self.record(&c) {
                    Ok(()) => {
                        swept.adopted += 1;
                        tracing::info!(container = %c.name, pid = process.pid, "recorded the process a crash left unrecorded");
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            None => match runtime::stop_leftovers(dir, None) {
                Ok(n) => swept.stopped += n,
                Err(e) => {
                    tracing::warn!(container = %c.name, "cannot stop the shim of a container that did not start: {e:#}")
                }
            },
        }
    }

    /// A directory no record owns: what runs for it stops, then it goes.
    fn remove_unowned(&self, dir: &Path, netns_dir: &Path, swept: &mut Swept) {
        let netns = dir
            .file_name()
            .map(|id| id.to_string_lossy())
            .filter(|id| id.len() >= 12)
            .map(|id| netns_dir.join(&id[..12]));
        match runtime::stop_leftovers(dir, netns.as_deref()) {
            Ok(n) => swept.stopped += n,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot stop what runs for a container no record owns; leaving its directory: {e:#}");
                return;
            }
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => swept.removed += 1,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot remove the directory of a container no record owns: {e}")
            }
        }
    }
}

fn read_record(dir: &Path) -> Option<Container> {
    serde_json::from_slice(&std::fs::read(dir.join(CONFIG)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_without_a_record_go_and_recorded_ones_stay() {
        let state = tempfile::tempdir().unwrap();
        let containers = Containers::new(state.path());
        let stray = containers.root.join("0123456789abcdef");
        std::fs::create_dir_all(&stray).unwrap();
        let kept = containers
            .prepare(Some("kept".into()), vec!["true".into()], Vec::new())
            .unwrap();
        let mut c = containers
            .view(super::super::Entry::Created(kept))
            .container;
        c.netns = state.path().join("netns").join(&c.id[..12]);
        containers.record(&c).unwrap();
        let swept = containers.sweep(&state.path().join("netns"));
        assert_eq!(
            swept,
            Swept {
                adopted: 0,
                stopped: 0,
                removed: 1
            }
        );
        assert!(!stray.exists(), "the unrecorded directory went");
        assert_eq!(containers.all().len(), 1, "the recorded one stays");
    }
}
