//! Stopping containers: `kill` signals one, `rm` stops it (with force) and forgets its files.

use nix::sys::signal::Signal;

use super::{Container, ContainerView, Containers, RunState, KILL_GRACE};

/// How long `rm` waits for a stopped container's shim to write its last files.
const SHIM_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
use crate::model::ApiError;
use crate::runtime;

impl Containers {
    /// `container kill`: signals a running container's process, in Docker's words when it is not running.
    pub fn kill(&self, name: &str, signal: Signal) -> Result<(), ApiError> {
        let view = self.find(name)?;
        let c = &view.container;
        let not_running = || {
            ApiError::Conflict(format!(
                "Cannot kill container: {name}: Container {} is not running",
                c.id
            ))
        };
        if view.state != RunState::Running {
            return Err(not_running());
        }
        match runtime::signal(&c.process, signal) {
            Ok(true) => Ok(()),
            Ok(false) => Err(not_running()),
            Err(e) => Err(ApiError::Internal(format!(
                "cannot kill container {}: {e:#}",
                c.name
            ))),
        }
    }

    /// First step of `container rm [-f]`: a running container needs force,
    /// as in Docker; it is stopped. Returns the container to unplug and forget.
    pub fn stop_for_removal(
        &self,
        view: ContainerView,
        force: bool,
    ) -> Result<Container, ApiError> {
        let c = view.container;
        if view.state == RunState::Running {
            if !force {
                return Err(ApiError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            c.process.stop(KILL_GRACE).map_err(|e| {
                ApiError::Internal(format!("cannot stop container {}: {e:#}", c.name))
            })?;
        }
        Ok(c)
    }

    /// Last step of `container rm`: its files go.
    pub fn forget(&self, c: &Container) -> Result<(), ApiError> {
        let dir = self.dir(&c.id);
        if !runtime::wait_for_shim(&dir, SHIM_GRACE) {
            tracing::warn!(container = %c.name, "its shim is still running; removing its files anyway");
        }
        std::fs::remove_dir_all(&dir).map_err(|e| {
            ApiError::Internal(format!(
                "cannot remove the files of container {}: {e}",
                c.name
            ))
        })?;
        tracing::info!(container = %c.name, id = %c.id, "container removed");
        Ok(())
    }
}
