//! `swarmnet daemon`: the root daemon, one per host, and the wiring of the
//! rest. It serves the Docker Engine API on its Unix socket (`api`), runs
//! this node's swarm membership (the manager API on the leader, the agent
//! everywhere), its containers, optional Prometheus metrics, and shuts down
//! cleanly on SIGTERM.

mod addrs;
mod api;
mod attach;
pub mod containers;
mod enroll;
mod execs;
mod host;
pub mod metrics;
mod namespaces;
mod networking;
mod state;
mod swarm;

#[cfg(test)]
mod join_test;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use crate::manager::tls;
use crate::model::{ApiError, NodeRole};
use crate::overlay::Overlay;
use crate::proto::client::ManagerConn;
use crate::proto::{ClusterRequest, ManagerRequest, Reply};
use containers::Containers;
use execs::Execs;
use metrics::Metrics;
use namespaces::Namespaces;
use networking::{local_use, NETNS_DIR};
use state::SwarmState;
use swarm::{NetDeps, Swarm};

/// Options of `swarmnet daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where the daemon keeps its state.
    #[arg(long, default_value = "/var/lib/swarmnet", env = "SWARMNET_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Serve Prometheus metrics on this address (off by default), e.g. 127.0.0.1:9323.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// UDP port of the WireGuard mesh.
    #[arg(long, default_value_t = 51820)]
    pub wg_port: u16,
}

/// How long `swarm leave` waits to tell the manager before leaving anyway.
const LEAVE_NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The daemon's shared state.
pub struct Daemon {
    state_dir: PathBuf,
    wg_port: u16,
    metrics: Arc<Metrics>,
    swarm: Mutex<Option<Swarm>>,
    containers: Arc<Containers>,
    namespaces: Arc<Namespaces>,
    execs: Execs,
    net: NetDeps,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(args: DaemonArgs, socket: &Path) -> anyhow::Result<i32> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("swarmnet daemon needs root: run it with sudo");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWARMNET_LOG")
                .unwrap_or_else(|_| "info,netlink_packet_route=error".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, socket))?;
    Ok(0)
}

async fn serve(args: DaemonArgs, socket: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)?;
    private_dir(&args.state_dir)?;
    let listener = bind_socket(socket).await?;
    let containers = Arc::new(Containers::new(&args.state_dir));
    networking::sweep_strays(&containers);
    let namespaces = Arc::new(Namespaces::new(&args.state_dir));
    let net = NetDeps {
        overlay: Arc::new(Overlay::new(NETNS_DIR.into())),
        lock: Arc::new(Mutex::new(())),
        // Read by the agent under the network lock; namespaces that are
        // gone are forgotten first, so their endpoints are given back.
        local: {
            let (containers, namespaces) = (containers.clone(), namespaces.clone());
            Arc::new(move || {
                namespaces.prune();
                local_use(&containers.all(), &namespaces.all())
            })
        },
    };
    let daemon = Arc::new(Daemon {
        state_dir: args.state_dir.clone(),
        wg_port: args.wg_port,
        metrics: Arc::new(Metrics::default()),
        swarm: Mutex::new(None),
        containers,
        namespaces,
        execs: Execs::default(),
        net,
    });
    match SwarmState::load(&daemon.state_dir) {
        Ok(Some(state)) => {
            let started = Swarm::start(
                &daemon.state_dir,
                state,
                daemon.metrics.clone(),
                daemon.net.clone(),
            );
            match started.await {
                Ok(swarm) => *daemon.swarm.lock().await = Some(swarm),
                Err(e) => tracing::error!(
                    "cannot rejoin the swarm from {}: {e:#}",
                    daemon.state_dir.display()
                ),
            }
        }
        Ok(None) => tracing::info!("not in a swarm; waiting for swarm init or join"),
        Err(e) => tracing::error!(
            "cannot read the swarm state in {}: {e:#}",
            daemon.state_dir.display()
        ),
    }
    if let Some(addr) = args.metrics_addr {
        let metrics_listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
        let d = daemon.clone();
        tokio::spawn(metrics::serve(metrics_listener, move || d.render_metrics()));
        tracing::info!(%addr, "metrics served");
    }
    tracing::info!(socket = %socket.display(), "swarmnet daemon ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (fatal_tx, mut fatal_rx) = tokio::sync::oneshot::channel();
    let watched = daemon.clone();
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            fault = fatal_store(&watched) => { let _ = fatal_tx.send(fault); }
        }
    };
    api::serve(listener, daemon.clone(), stop).await;
    tracing::info!("shutting down");
    if let Some(swarm) = daemon.swarm.lock().await.take() {
        swarm.stop().await;
    }
    let _ = std::fs::remove_file(socket);
    if let Ok(path) = fatal_rx.try_recv() {
        anyhow::bail!("the manager's store at {path} could not be reopened after an I/O error; exiting so that the service manager restarts the daemon");
    }
    Ok(())
}

/// Resolves with the store's path once the local manager's store could not be
/// reopened: nothing can be written until the daemon restarts.
async fn fatal_store(daemon: &Daemon) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Some(health) = daemon.store_health().await.filter(|h| h.fatal) {
            return health.fault.map(|f| f.path).unwrap_or_default();
        }
    }
}

/// Keys and the CA live under the state directory: only root may enter it.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Binds the CLI socket, refusing to steal it from a running daemon.
async fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            anyhow::bail!(
                "another swarmnet daemon is already running on {}; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Runs blocking work (processes, files) off the async workers.
async fn blocking(work: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(e)))
}

/// What `swarm init` asks for.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    pub advertise_addr: String,
    pub listen_addr: Option<String>,
    pub default_addr_pool: Option<String>,
    pub default_addr_pool_mask_length: Option<u8>,
}

/// What `swarm join` asks for.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    pub token: String,
    pub remote: String,
    pub advertise_addr: Option<String>,
}

/// This node's place in its swarm, as `docker info` shows it.
#[derive(Debug, Clone)]
pub struct Membership {
    pub node_id: String,
    pub role: NodeRole,
    pub advertise_addr: std::net::SocketAddr,
    pub manager_addr: std::net::SocketAddr,
    pub tunnel_addr: std::net::Ipv4Addr,
}

impl Daemon {
    /// `swarm init`: returns the new node's ID.
    async fn swarm_init(&self, opts: InitOptions) -> Result<String, ApiError> {
        let mut slot = self.swarm.lock().await;
        if slot.is_some() {
            return Err(ApiError::already_in_swarm());
        }
        let state = enroll::init(
            &self.state_dir,
            &opts.advertise_addr,
            opts.listen_addr.as_deref(),
            (
                opts.default_addr_pool.as_deref(),
                opts.default_addr_pool_mask_length,
            ),
            self.wg_port,
        )?;
        let started = self.start(state).await?;
        let node_id = started.state.config.node_id.clone();
        *slot = Some(started);
        Ok(node_id)
    }

    /// `swarm join`: returns the role the token gave.
    async fn swarm_join(&self, opts: JoinOptions) -> Result<NodeRole, ApiError> {
        let mut slot = self.swarm.lock().await;
        if slot.is_some() {
            return Err(ApiError::already_in_swarm());
        }
        let state = enroll::join(
            &self.state_dir,
            &opts.token,
            &opts.remote,
            opts.advertise_addr.as_deref(),
            self.wg_port,
        )
        .await?;
        let role = state.config.role;
        *slot = Some(self.start(state).await?);
        Ok(role)
    }

    /// This node's membership, or None outside a swarm.
    async fn membership(&self) -> Option<Membership> {
        let slot = self.swarm.lock().await;
        slot.as_ref().map(|s| Membership {
            node_id: s.state.config.node_id.clone(),
            role: s.state.config.role,
            advertise_addr: s.state.config.advertise_addr,
            manager_addr: s.state.config.manager_addr,
            tunnel_addr: s.state.config.tunnel_addr,
        })
    }

    async fn start(&self, state: SwarmState) -> Result<Swarm, ApiError> {
        let started = Swarm::start(
            &self.state_dir,
            state,
            self.metrics.clone(),
            self.net.clone(),
        );
        match started.await {
            Ok(swarm) => Ok(swarm),
            Err(e) => {
                let _ = state::remove(&self.state_dir);
                Err(ApiError::Internal(format!("{e:#}")))
            }
        }
    }

    async fn leave(&self, force: bool) -> Reply {
        let mut slot = self.swarm.lock().await;
        let Some(swarm) = slot.as_ref() else {
            return Err(ApiError::FailedPrecondition(
                "This node is not part of a swarm".into(),
            ));
        };
        if swarm.state.config.role == NodeRole::Manager && !force {
            return Err(ApiError::FailedPrecondition(
                "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".into(),
            ));
        }
        if swarm.manager.is_none() {
            let tls = tls::client_config(
                &swarm.state.ca_pem,
                &swarm.state.cert_pem,
                &swarm.state.key_pem,
            )
            .map_err(ApiError::internal)?;
            let told = async {
                ManagerConn::connect(swarm.state.config.manager_addr, tls)
                    .await?
                    .ask(crate::proto::Leave)
                    .await
            };
            // Docker leaves even when the manager is gone; do not wait long for it.
            match tokio::time::timeout(LEAVE_NOTICE_TIMEOUT, told).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not tell the manager this node is leaving")
                }
                Err(_) => tracing::warn!("the manager did not answer the leave notice in time"),
            }
        }
        let swarm = slot.take().expect("checked above");
        swarm.stop().await;
        // While a sandbox is left (containers still on its network), its VXLAN
        // socket listens: the rule that keeps the underlay out must stay.
        if self.net.overlay.sandboxes().is_empty() {
            if let Err(e) = crate::nft::firewall::remove() {
                tracing::warn!("{e:#}");
            }
        }
        state::remove(&self.state_dir).map_err(ApiError::internal)?;
        Ok(serde_json::Value::Null)
    }

    async fn cluster(&self, call: ClusterRequest) -> Reply {
        let (state, manager) = {
            let slot = self.swarm.lock().await;
            let Some(swarm) = slot.as_ref() else {
                return Err(ApiError::not_in_swarm());
            };
            (swarm.state.clone(), swarm.manager.clone())
        };
        if state.config.role != NodeRole::Manager {
            return Err(ApiError::not_a_manager());
        }
        if let Some(manager) = manager {
            return manager.cluster_call(call, manager.self_id());
        }
        let tls = tls::client_config(&state.ca_pem, &state.cert_pem, &state.key_pem)
            .map_err(ApiError::internal)?;
        ManagerConn::connect(state.config.manager_addr, tls)
            .await?
            .call(&ManagerRequest::Cluster(call))
            .await
    }

    /// A manager-only call, its answer read as `T`.
    async fn cluster_as<T: serde::de::DeserializeOwned>(
        &self,
        call: ClusterRequest,
    ) -> Result<T, ApiError> {
        let value = self.cluster(call).await?;
        serde_json::from_value(value).map_err(ApiError::internal)
    }

    fn render_metrics(&self) -> String {
        let Ok(slot) = self.swarm.try_lock() else {
            return self.metrics.render(None, &[], None);
        };
        let wg = slot.as_ref().map(|s| s.agent.stats());
        let manager = slot.as_ref().and_then(|s| s.manager.as_ref());
        let nodes = manager.map(|m| m.status_counts()).unwrap_or_default();
        let store = manager.map(|m| m.store_health());
        self.metrics.render(wg.as_ref(), &nodes, store.as_ref())
    }

    /// The local manager's store health, if this node is the leader.
    async fn store_health(&self) -> Option<crate::manager::store::StoreHealth> {
        let slot = self.swarm.lock().await;
        let manager = slot.as_ref()?.manager.as_ref()?;
        Some(manager.store_health())
    }
}
