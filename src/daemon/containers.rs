//! Standalone containers on this host: a registry kept under
//! `<state dir>/containers/<id>/`, started and stopped through the runtime
//! (a shim per container, so containers outlive daemon restarts). A created
//! container (Docker's `create` before `start`) is only held in memory: its
//! name is taken and its directory made, but nothing is plumbed or recorded
//! until it starts, so a daemon restart forgets it and sweeps its directory
//! (`created.rs`). A start records the container before its process runs, so
//! the start-up sweep (`sweep.rs`) finds whatever a crash left. Stopping and
//! removal are in `stop.rs`; a task container's health check in `health.rs`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

mod created;
mod health;
mod stop;
mod sweep;

pub use created::Prepared;
pub use health::HealthMonitors;

use crate::manager::now_secs;
use crate::model::ApiError;
use crate::runtime::{self, ContainerSpec, Process};

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
    /// When its process was last started (0 in records older than this field: `created`).
    #[serde(default)]
    pub started: u64,
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
    /// `KEY=VALUE` pairs for its environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// The service task it runs, if it is one.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Its hostname when not its name (a task's `--hostname`).
    #[serde(default)]
    pub hostname: Option<String>,
}

impl Container {
    /// The hostname its process sees: its own, or its name.
    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }
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

/// What a container asks of one network; the first is its eth0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetRequest {
    pub network: String,
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
}

/// Where a container is in its life, as Docker's `State.Status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
}

/// A container with its live state, as `container ls` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// A created container's has no process (pid 0), namespace or endpoints.
    pub container: Container,
    pub state: RunState,
    pub exit_code: Option<i32>,
    pub finished_at: Option<u64>,
    pub log_path: PathBuf,
    /// The networks a created container will join when started.
    pub asked: Vec<NetRequest>,
    /// A task container's health, when its service has a health check.
    pub health: Option<crate::model::TaskHealth>,
}

impl ContainerView {
    /// Its health as Docker states it: none without a check, and unhealthy
    /// once it no longer runs (Docker marks it so when its checks stop).
    pub fn health_status(&self) -> Option<crate::model::HealthStatus> {
        let h = self.health.as_ref()?;
        Some(match self.state {
            RunState::Running => h.status,
            _ => crate::model::HealthStatus::Unhealthy,
        })
    }
}

/// A container recorded on disk or only created.
enum Entry {
    Recorded(Container),
    Created(Prepared),
}

impl Entry {
    fn id(&self) -> &str {
        match self {
            Entry::Recorded(c) => &c.id,
            Entry::Created(p) => &p.id,
        }
    }
    fn name(&self) -> &str {
        match self {
            Entry::Recorded(c) => &c.name,
            Entry::Created(p) => &p.name,
        }
    }
    fn created(&self) -> u64 {
        match self {
            Entry::Recorded(c) => c.created,
            Entry::Created(p) => p.created,
        }
    }
}

/// The containers of this host.
pub struct Containers {
    root: PathBuf,
    created: Mutex<Vec<Prepared>>,
}

/// A new container or exec ID: 64 hex digits, as Docker's.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Containers {
    pub fn new(state_dir: &Path) -> Containers {
        Containers {
            root: state_dir.join("containers"),
            created: Mutex::new(Vec::new()),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// A container's directory (its exit code and log are there).
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir(id)
    }

    fn created(&self) -> std::sync::MutexGuard<'_, Vec<Prepared>> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The recorded containers and the created ones, newest first; a created
    /// one being recorded by `start` is listed once, as created until its
    /// process has started.
    fn entries(&self) -> Vec<Entry> {
        let created = self.created().clone();
        let starting = |c: &Container| c.process.pid == 0 && created.iter().any(|p| p.id == c.id);
        let recorded: Vec<Container> = self.all().into_iter().filter(|c| !starting(c)).collect();
        let created: Vec<Prepared> = created
            .into_iter()
            .filter(|p| !recorded.iter().any(|c| c.id == p.id))
            .collect();
        let mut list: Vec<Entry> = recorded.into_iter().map(Entry::Recorded).collect();
        list.extend(created.into_iter().map(Entry::Created));
        list.sort_by(|a, b| b.created().cmp(&a.created()).then(a.name().cmp(b.name())));
        list
    }

    fn view(&self, entry: Entry) -> ContainerView {
        let c = match entry {
            Entry::Recorded(c) => c,
            Entry::Created(p) => {
                return ContainerView {
                    log_path: runtime::log_path(&p.dir),
                    container: Container {
                        id: p.id,
                        name: p.name,
                        cmd: p.cmd,
                        created: p.created,
                        started: 0,
                        process: Process {
                            pid: 0,
                            start_time: 0,
                        },
                        netns: PathBuf::new(),
                        networks: Vec::new(),
                        egress: None,
                        env: p.env,
                        task_id: p.task_id,
                        hostname: p.hostname,
                    },
                    state: RunState::Created,
                    exit_code: None,
                    finished_at: None,
                    asked: p.networks,
                    health: None,
                }
            }
        };
        let dir = self.dir(&c.id);
        let running = c.process.alive();
        ContainerView {
            exit_code: if running {
                None
            } else {
                runtime::exit_code(&dir)
            },
            finished_at: if running {
                None
            } else {
                runtime::finished_at(&dir).map(unix)
            },
            log_path: runtime::log_path(&dir),
            state: if running {
                RunState::Running
            } else {
                RunState::Exited
            },
            asked: Vec::new(),
            health: self.health(&c.id),
            container: c,
        }
    }

    /// Every container (`all`) or the running ones, newest first.
    pub fn list(&self, all: bool) -> Vec<ContainerView> {
        self.entries()
            .into_iter()
            .map(|e| self.view(e))
            .filter(|v| all || v.state == RunState::Running)
            .collect()
    }

    /// Finds a container by name, full ID or unique ID prefix, as Docker does.
    pub fn find(&self, name: &str) -> Result<ContainerView, ApiError> {
        let mut all = self.entries();
        let name = name.strip_prefix('/').unwrap_or(name);
        let found = crate::model::find(
            &all,
            name,
            "container",
            |e| e.id(),
            |e| e.name(),
            || ApiError::NotFound(format!("No such container: {name}")),
        )?;
        let id = found.id().to_string();
        let at = all.iter().position(|e| e.id() == id).unwrap_or_default();
        Ok(self.view(all.swap_remove(at)))
    }

    /// Records a created container, then starts its process in its plumbed
    /// namespace and records that; it is then no longer only created. On
    /// failure its record goes and it stays created.
    pub fn start(
        &self,
        prepared: &Prepared,
        netns: PathBuf,
        networks: Vec<NetAttachment>,
        egress: Option<Egress>,
    ) -> Result<ContainerView, ApiError> {
        let mut container = Container {
            id: prepared.id.clone(),
            name: prepared.name.clone(),
            cmd: prepared.cmd.clone(),
            created: prepared.created,
            started: 0,
            process: Process {
                pid: 0,
                start_time: 0,
            },
            netns,
            networks,
            egress,
            env: prepared.env.clone(),
            task_id: prepared.task_id.clone(),
            hostname: prepared.hostname.clone(),
        };
        self.record(&container)?;
        match self.launch(&mut container) {
            Ok(view) => {
                self.created().retain(|p| p.id != prepared.id);
                Ok(view)
            }
            Err(e) => {
                if let Err(gone) = std::fs::remove_file(self.dir(&container.id).join(CONFIG)) {
                    tracing::warn!(container = %container.name, "cannot remove the record of a container that did not start: {gone}");
                }
                Err(e)
            }
        }
    }

    /// Starts an exited container again, in the namespace it kept.
    pub fn restart(&self, mut container: Container) -> Result<ContainerView, ApiError> {
        self.launch(&mut container)
    }

    fn launch(&self, container: &mut Container) -> Result<ContainerView, ApiError> {
        let spec = ContainerSpec {
            id: container.id.clone(),
            name: container.name.clone(),
            hostname: container.hostname().to_string(),
            cmd: container.cmd.clone(),
            dir: self.dir(&container.id),
            netns: Some(container.netns.clone()),
            addresses: container.networks.iter().map(|n| n.ip).collect(),
            env: container.env.clone(),
        };
        let process = runtime::start(&spec).map_err(|e| {
            ApiError::InvalidArgument(format!("cannot start container {}: {e:#}", container.name))
        })?;
        container.process = process;
        container.started = now_secs();
        if let Err(e) = self.record(container) {
            let _ = process.stop(KILL_GRACE);
            return Err(e);
        }
        tracing::info!(container = %container.name, id = %container.id, pid = process.pid, "container started");
        Ok(self.view(Entry::Recorded(container.clone())))
    }

    /// Records a container's new state (its networks after a connect).
    pub fn record(&self, container: &Container) -> Result<(), ApiError> {
        let dir = self.dir(&container.id);
        let bytes = serde_json::to_vec_pretty(container).map_err(ApiError::internal)?;
        let tmp = dir.join("config.json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, dir.join(CONFIG)))
            .map_err(|e| {
                ApiError::Internal(format!("cannot record container {}: {e}", container.name))
            })
    }

    /// The gateway-bridge addresses the containers here hold.
    pub fn egress_addresses(&self) -> Vec<Ipv4Addr> {
        self.all()
            .into_iter()
            .filter_map(|c| c.egress.map(|e| e.ip))
            .collect()
    }
}
