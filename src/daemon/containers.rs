//! Standalone containers on this host: a registry kept under
//! `<state dir>/containers/<id>/`, started and stopped through the runtime
//! (a shim per container, so containers outlive daemon restarts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::agent::runtime::{self, ContainerSpec, Process};
use crate::manager::now_secs;
use crate::model::{check_name, ApiError};

const CONFIG: &str = "config.json";
/// How long `rm -f` waits after SIGTERM before SIGKILL (Docker's stop default is 10 s; rm -f kills at once).
const KILL_GRACE: Duration = Duration::from_millis(0);

/// A container as the daemon records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub cmd: Vec<String>,
    pub created: u64,
    pub process: Process,
}

/// A container with its live state, as `container ls` and `inspect` show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerView {
    #[serde(flatten)]
    pub container: Container,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub log_path: PathBuf,
}

/// The containers of this host.
pub struct Containers {
    root: PathBuf,
    /// Held by run and rm, so two runs cannot both take a name.
    changes: std::sync::Mutex<()>,
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Containers {
    pub fn new(state_dir: &Path) -> Containers {
        Containers {
            root: state_dir.join("containers"),
            changes: std::sync::Mutex::new(()),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn all(&self) -> Vec<Container> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut list: Vec<Container> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join(CONFIG)).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        list.sort_by(|a: &Container, b: &Container| {
            b.created.cmp(&a.created).then(a.name.cmp(&b.name))
        });
        list
    }

    fn view(&self, c: Container) -> ContainerView {
        let dir = self.dir(&c.id);
        let running = c.process.alive();
        ContainerView {
            exit_code: if running {
                None
            } else {
                runtime::exit_code(&dir)
            },
            log_path: runtime::log_path(&dir),
            running,
            container: c,
        }
    }

    /// Every container (`all`) or the running ones, newest first.
    pub fn list(&self, all: bool) -> Vec<ContainerView> {
        self.all()
            .into_iter()
            .map(|c| self.view(c))
            .filter(|v| all || v.running)
            .collect()
    }

    /// Finds a container by name, full ID or unique ID prefix, as Docker does.
    pub fn find(&self, name: &str) -> Result<ContainerView, ApiError> {
        let all = self.all();
        let name = name.strip_prefix('/').unwrap_or(name);
        let found = crate::model::find(
            &all,
            name,
            "container",
            |c| &c.id,
            |c| &c.name,
            || ApiError::NotFound(format!("No such container: {name}")),
        )?;
        Ok(self.view(found.clone()))
    }

    /// `container run -d`: checks the name, then starts the container through its shim.
    pub fn run(&self, name: Option<String>, cmd: Vec<String>) -> Result<ContainerView, ApiError> {
        if cmd.is_empty() {
            return Err(ApiError::InvalidArgument(
                "no command given: swarmnet container run -d --name NAME -- CMD ARGS...".into(),
            ));
        }
        let id = new_id();
        let name = name.unwrap_or_else(|| format!("c-{}", &id[..12]));
        check_name("container", &name)?;
        let _guard = self.changes.lock().expect("containers lock");
        if let Some(other) = self.all().into_iter().find(|c| c.name == name) {
            return Err(ApiError::FailedPrecondition(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        let spec = ContainerSpec {
            id: id.clone(),
            name: name.clone(),
            cmd: cmd.clone(),
            dir: dir.clone(),
        };
        let process = match runtime::start(&spec) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(ApiError::InvalidArgument(format!(
                    "cannot start container {name}: {e:#}"
                )));
            }
        };
        let container = Container {
            id,
            name,
            cmd,
            created: now_secs(),
            process,
        };
        let bytes = serde_json::to_vec_pretty(&container).map_err(ApiError::internal)?;
        let tmp = dir.join("config.json.tmp");
        if let Err(e) =
            std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, dir.join(CONFIG)))
        {
            let _ = process.stop(KILL_GRACE);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::Internal(format!(
                "cannot record container {}: {e}",
                container.name
            )));
        }
        tracing::info!(container = %container.name, id = %container.id, pid = process.pid, "container started");
        Ok(self.view(container))
    }

    /// `container rm [-f]`: a running container needs force, as in Docker.
    pub fn remove(&self, name: &str, force: bool) -> Result<String, ApiError> {
        let _guard = self.changes.lock().expect("containers lock");
        let view = self.find(name)?;
        let c = &view.container;
        if view.running {
            if !force {
                return Err(ApiError::FailedPrecondition(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            c.process.stop(KILL_GRACE).map_err(|e| {
                ApiError::Internal(format!("cannot stop container {}: {e:#}", c.name))
            })?;
        }
        std::fs::remove_dir_all(self.dir(&c.id)).map_err(|e| {
            ApiError::Internal(format!(
                "cannot remove the files of container {}: {e}",
                c.name
            ))
        })?;
        tracing::info!(container = %c.name, id = %c.id, "container removed");
        Ok(name.to_string())
    }
}
