//! Created containers (Docker's `create` before `start`): the name taken and
//! the directory made, the request kept in memory until `start` records it.

use std::path::PathBuf;

use super::{Containers, NetRequest};
use crate::manager::now_secs;
use crate::model::{check_name, ApiError};
use crate::runtime;

/// A created container: its name taken and its directory made, not started
/// yet. Kept in memory only: a daemon restart forgets it and sweeps its directory.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub name: String,
    pub cmd: Vec<String>,
    pub created: u64,
    pub networks: Vec<NetRequest>,
    /// `KEY=VALUE` pairs for its environment.
    pub env: Vec<String>,
    /// The service task it runs, if it is one.
    pub task_id: Option<String>,
    /// Its hostname when not its name.
    pub hostname: Option<String>,
    pub(super) dir: PathBuf,
}

impl Containers {
    /// `container create`: checks the command and the name, makes the
    /// container's directory and keeps it as created until it is started.
    pub fn prepare(
        &self,
        name: Option<String>,
        cmd: Vec<String>,
        networks: Vec<NetRequest>,
    ) -> Result<Prepared, ApiError> {
        if cmd.is_empty() {
            return Err(ApiError::InvalidArgument(
                "no command given: swarmnet container run -d --name NAME host CMD ARGS...".into(),
            ));
        }
        runtime::check_command(&cmd[0]).map_err(|e| ApiError::InvalidArgument(format!("{e:#}")))?;
        let id = super::new_id();
        let name = name.unwrap_or_else(|| format!("c-{}", &id[..12]));
        check_name("container", &name)?;
        let mut created = self.created();
        let taken = self
            .all()
            .into_iter()
            .map(|c| (c.name, c.id))
            .chain(created.iter().map(|p| (p.name.clone(), p.id.clone())))
            .find(|(n, _)| *n == name);
        if let Some((_, other)) = taken {
            return Err(ApiError::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let prepared = Prepared {
            id,
            name,
            cmd,
            created: now_secs(),
            networks,
            env: Vec::new(),
            task_id: None,
            hostname: None,
            dir,
        };
        created.push(prepared.clone());
        Ok(prepared)
    }

    /// The created container with this ID, if it is still only created.
    pub fn prepared(&self, id: &str) -> Option<Prepared> {
        self.created().iter().find(|p| p.id == id).cloned()
    }

    /// Adds a network to a created container's request.
    pub fn ask_network(&self, id: &str, req: NetRequest) -> Result<(), ApiError> {
        let mut created = self.created();
        let Some(p) = created.iter_mut().find(|p| p.id == id) else {
            return Err(ApiError::NotFound(format!("No such container: {id}")));
        };
        if p.networks.iter().any(|n| n.network == req.network) {
            return Err(ApiError::FailedPrecondition(format!(
                "container {} is already attached to network {}",
                p.name, req.network
            )));
        }
        p.networks.push(req);
        Ok(())
    }

    /// Removes a network from a created container's request; false if it had not asked for it.
    pub fn unask_network(&self, id: &str, network: &str) -> bool {
        let mut created = self.created();
        let Some(p) = created.iter_mut().find(|p| p.id == id) else {
            return false;
        };
        let before = p.networks.len();
        p.networks.retain(|n| n.network != network);
        p.networks.len() != before
    }

    /// Removes a created container: it is forgotten and its directory goes.
    pub fn discard(&self, id: &str) {
        let mut created = self.created();
        if let Some(at) = created.iter().position(|p| p.id == id) {
            let p = created.remove(at);
            let _ = std::fs::remove_dir_all(&p.dir);
            tracing::info!(container = %p.name, id = %p.id, "created container removed");
        }
    }
}
