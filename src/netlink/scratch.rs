//! A scratch directory for root tests that make namespaces in it, cleaned up
//! (namespaces unmounted, mount points undone) on drop, panics included.

use std::path::Path;

use nix::mount::{umount2, MntFlags};

use super::netns::{is_namespace, remove};

/// A temp directory for tests that make namespaces in it: on drop (panics
/// included) every namespace file under it is removed and every directory
/// that became a mount point is unmounted, before the files are deleted.
pub(crate) struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// `/tmp/sn-<tag>-<pid>-XXXXXX`: unique to the run and the test.
    pub(crate) fn new(tag: &str) -> ScratchDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("sn-{tag}-{}-", std::process::id()))
            .tempdir()
            .expect("making a temp dir");
        ScratchDir { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        fn walk(dir: &Path, dirs: &mut Vec<std::path::PathBuf>) {
            dirs.push(dir.to_owned());
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, dirs);
                } else if is_namespace(&path) {
                    let _ = remove(&path);
                }
            }
        }
        let mut dirs = Vec::new();
        walk(self.dir.path(), &mut dirs);
        for dir in dirs.iter().rev() {
            for _ in 0..8 {
                if umount2(dir.as_path(), MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
    }
}
