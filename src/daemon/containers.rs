//! Standalone containers on this host: a registry kept under
//! `<state dir>/containers/<id>/`, started and stopped through the runtime
//! (a shim per container, so containers outlive daemon restarts).

use std::net::Ipv4Addr;
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
    /// Its network namespace (a bind mount that outlives the process).
    #[serde(default)]
    pub netns: PathBuf,
    /// Its endpoints on overlay networks, eth0 first.
    #[serde(default)]
    pub networks: Vec<NetAttachment>,
    /// Its way out through the gateway bridge, when it is on a network.
    #[serde(default)]
    pub egress: Option<Egress>,
}

/// One network interface of a container (or namespace) on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetAttachment {
    pub network_id: String,
    pub network_name: String,
    pub endpoint_id: String,
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub mtu: u32,
    pub aliases: Vec<String>,
}

/// A container's interface on the host's gateway bridge (Docker's docker_gwbridge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    pub ifname: String,
    pub ip: Ipv4Addr,
}

/// A container whose name is taken and directory made, not started yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: String,
    pub name: String,
    pub cmd: Vec<String>,
    dir: PathBuf,
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
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Every recorded container, newest first, without reading its state.
    pub fn all(&self) -> Vec<Container> {
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

    /// First step of `container run`: checks the command and the name, and
    /// makes the container's directory. The caller serializes runs and removals.
    pub fn prepare(&self, name: Option<String>, cmd: Vec<String>) -> Result<Prepared, ApiError> {
        if cmd.is_empty() {
            return Err(ApiError::InvalidArgument(
                "no command given: swarmnet container run -d --name NAME -- CMD ARGS...".into(),
            ));
        }
        runtime::check_command(&cmd[0]).map_err(|e| ApiError::InvalidArgument(format!("{e:#}")))?;
        let id = new_id();
        let name = name.unwrap_or_else(|| format!("c-{}", &id[..12]));
        check_name("container", &name)?;
        if let Some(other) = self.all().into_iter().find(|c| c.name == name) {
            return Err(ApiError::FailedPrecondition(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let dir = self.dir(&id);
        std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
        Ok(Prepared { id, name, cmd, dir })
    }

    /// Gives up a prepared container (its directory goes).
    pub fn discard(&self, prepared: Prepared) {
        let _ = std::fs::remove_dir_all(&prepared.dir);
    }

    /// Last step of `container run`: starts the process in its plumbed
    /// namespace and records the container. On failure nothing is recorded.
    pub fn start(
        &self,
        prepared: &Prepared,
        netns: PathBuf,
        networks: Vec<NetAttachment>,
        egress: Option<Egress>,
    ) -> Result<ContainerView, ApiError> {
        let spec = ContainerSpec {
            id: prepared.id.clone(),
            name: prepared.name.clone(),
            cmd: prepared.cmd.clone(),
            dir: prepared.dir.clone(),
            netns: Some(netns.clone()),
            addresses: networks.iter().map(|n| n.ip).collect(),
        };
        let process = runtime::start(&spec).map_err(|e| {
            ApiError::InvalidArgument(format!("cannot start container {}: {e:#}", prepared.name))
        })?;
        let container = Container {
            id: prepared.id.clone(),
            name: prepared.name.clone(),
            cmd: prepared.cmd.clone(),
            created: now_secs(),
            process,
            netns,
            networks,
            egress,
        };
        if let Err(e) = self.record(&container) {
            let _ = process.stop(KILL_GRACE);
            return Err(e);
        }
        tracing::info!(container = %container.name, id = %container.id, pid = process.pid, "container started");
        Ok(self.view(container))
    }

    fn record(&self, container: &Container) -> Result<(), ApiError> {
        let dir = self.dir(&container.id);
        let bytes = serde_json::to_vec_pretty(container).map_err(ApiError::internal)?;
        let tmp = dir.join("config.json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, dir.join(CONFIG)))
            .map_err(|e| {
                ApiError::Internal(format!("cannot record container {}: {e}", container.name))
            })
    }

    /// Removes the directories of containers that were never recorded (a
    /// crash between `prepare` and `start`); returns how many went.
    pub fn remove_unrecorded(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|dir| dir.is_dir() && !dir.join(CONFIG).exists())
            .filter(|dir| std::fs::remove_dir_all(dir).is_ok())
            .count()
    }

    /// The gateway-bridge addresses the containers here hold.
    pub fn egress_addresses(&self) -> Vec<Ipv4Addr> {
        self.all()
            .into_iter()
            .filter_map(|c| c.egress.map(|e| e.ip))
            .collect()
    }

    /// First step of `container rm [-f]`: a running container needs force,
    /// as in Docker; it is stopped. Returns the container to unplug and forget.
    pub fn stop_for_removal(&self, name: &str, force: bool) -> Result<Container, ApiError> {
        let view = self.find(name)?;
        let c = view.container;
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
        Ok(c)
    }

    /// Last step of `container rm`: its files go.
    pub fn forget(&self, c: &Container) -> Result<(), ApiError> {
        std::fs::remove_dir_all(self.dir(&c.id)).map_err(|e| {
            ApiError::Internal(format!(
                "cannot remove the files of container {}: {e}",
                c.name
            ))
        })?;
        tracing::info!(container = %c.name, id = %c.id, "container removed");
        Ok(())
    }
}
