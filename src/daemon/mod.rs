//! `swarmnet daemon`: the root daemon, one per host, and the wiring of the
//! rest. It serves the Docker Engine API on its Unix socket (`api`), runs
//! this node's swarm membership (the manager API on the leader, the agent
//! everywhere), its containers, optional Prometheus metrics, and shuts down
//! cleanly on SIGTERM.

mod addrs;
mod api;
mod attach;
pub mod containers;
mod dns;
mod enroll;
mod execs;
mod host;
mod listeners;
mod membership;
pub mod metrics;
mod namespaces;
mod networking;
mod peers;
mod state;
mod swarm;
mod task_exits;
mod tasklogs;
mod tasks;

#[cfg(test)]
mod join_test;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use crate::dns::{Resolver, View};
use crate::model::ApiError;
use crate::nft::balancer::Balancer;
use crate::overlay::Overlay;
use crate::proto::Reply;
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
    /// An engine label, `key=value` (repeatable), for `engine.labels.KEY` constraints.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = engine_label)]
    pub labels: Vec<(String, String)>,
}

/// One `--label key=value`.
fn engine_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid label {s:?}: use key=value")),
    }
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

/// Where the host's resolvers are, for the names that are not the swarm's.
const RESOLV_CONF: &str = "/etc/resolv.conf";

async fn serve(args: DaemonArgs, socket: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)?;
    private_dir(&args.state_dir)?;
    let listener = bind_socket(socket).await?;
    let containers = Arc::new(Containers::new(&args.state_dir));
    networking::sweep_strays(&containers);
    let namespaces = Arc::new(Namespaces::new(&args.state_dir));
    let (task_sink, task_feed) = tasks::feed();
    let resolver = Arc::new(Resolver::start(RESOLV_CONF.into())?);
    let net = NetDeps {
        resolver: resolver.clone(),
        balancer: Balancer::start(),
        engine_labels: args.labels.iter().cloned().collect(),
        tasks: task_sink,
        containers: containers.clone(),
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
    // First: the containers that outlived the last daemon ask from now on.
    daemon.serve_dns_again().await;
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
    if daemon.swarm.lock().await.is_none() {
        resolver.set_view(View::empty());
    }
    tokio::spawn(daemon.clone().run_tasks(task_feed));
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
        // As dockerd without live-restore: the tasks stop with the daemon,
        // and the manager places them elsewhere once this node is Down.
        daemon.stop_all_tasks(Some(&swarm.net)).await;
        swarm.stop().await;
        daemon.stop_all_tasks(None).await;
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

impl Daemon {
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
