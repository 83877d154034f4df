//! `/_ping`, `/version` and `/info`: who serves the API, and the Swarm
//! section of `docker info`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::http::{json, Answer};
use crate::api::models::{
    ClusterInfo, LocalNodeState, ObjectVersion, PeerNode, SwarmInfo, SwarmSpec, SystemInfo,
    SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};
use crate::api::{rfc3339, InfoDoc, API_VERSION, MIN_API_VERSION};
use crate::daemon::Daemon;
use crate::model::NodeRole;
use crate::proto::{ClusterRequest, SwarmView};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `GET|HEAD /_ping`: "OK", with the headers clients negotiate from.
pub async fn ping(State(d): State<Arc<Daemon>>) -> Response {
    let swarm = match d.membership().await {
        None => "inactive",
        Some(m) if m.role == NodeRole::Manager => "active/manager",
        Some(_) => "active/worker",
    };
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("API-Version", API_VERSION),
        ("OSType", "linux"),
        ("Docker-Experimental", "false"),
        ("Swarm", swarm),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (headers, "OK").into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Docker's name for this machine's architecture.
pub(super) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `GET /version`: the server is swarmnet.
pub async fn version() -> Answer<Response> {
    json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "swarmnet".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: VERSION.into(),
            details: Some(
                [
                    ("ApiVersion", API_VERSION.to_string()),
                    ("MinAPIVersion", MIN_API_VERSION.to_string()),
                    ("Os", "linux".to_string()),
                    ("Arch", arch().to_string()),
                    ("KernelVersion", kernel_version()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ),
        }]),
        version: Some(VERSION.into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        os: Some("linux".into()),
        arch: Some(arch().into()),
        kernel_version: Some(kernel_version()),
        build_time: Some(String::new()),
        experimental: Some(false),
    })
}

/// The Swarm section of `docker info`, as Docker fills it for a manager, a
/// worker, or a node outside a swarm.
async fn swarm_info(d: &Daemon) -> (SwarmInfo, Option<String>) {
    let Some(m) = d.membership().await else {
        return (
            SwarmInfo {
                local_node_state: Some(LocalNodeState::INACTIVE),
                control_available: Some(false),
                ..Default::default()
            },
            None,
        );
    };
    let mut info = SwarmInfo {
        node_id: Some(m.node_id.clone()),
        node_addr: Some(m.advertise_addr.ip().to_string()),
        local_node_state: Some(LocalNodeState::ACTIVE),
        control_available: Some(m.role == NodeRole::Manager),
        error: Some(String::new()),
        remote_managers: Some(vec![PeerNode {
            node_id: None,
            addr: Some(m.manager_addr.to_string()),
        }]),
        ..Default::default()
    };
    if m.role == NodeRole::Manager {
        if let Ok(view) = d
            .cluster_as::<SwarmView>(ClusterRequest::SwarmInspect)
            .await
        {
            info.nodes = Some(view.nodes as i64);
            info.managers = Some(view.managers as i64);
            info.remote_managers = Some(
                view.manager_addrs
                    .iter()
                    .map(|(id, addr)| PeerNode {
                        node_id: Some(id.clone()),
                        addr: Some(addr.to_string()),
                    })
                    .collect(),
            );
            info.cluster = Some(cluster_info(&view));
        }
    }
    (info, Some(m.tunnel_addr.to_string()))
}

/// The cluster part of `docker info` and `GET /swarm`.
pub fn cluster_info(view: &SwarmView) -> ClusterInfo {
    ClusterInfo {
        id: Some(view.id.clone()),
        version: Some(ObjectVersion {
            index: Some(view.version),
        }),
        created_at: Some(rfc3339(view.created_at)),
        updated_at: Some(rfc3339(view.updated_at)),
        spec: Some(SwarmSpec {
            name: Some("default".into()),
            ..super::swarm::default_spec()
        }),
        root_rotation_in_progress: Some(false),
        data_path_port: Some(4789),
        default_addr_pool: Some(vec![view.default_addr_pool.clone()]),
        subnet_size: Some(u32::from(view.subnet_size)),
        ..Default::default()
    }
}

/// `GET /info`.
pub async fn info(State(d): State<Arc<Daemon>>) -> Answer<Response> {
    let containers = d.containers.list(true);
    let running = containers
        .iter()
        .filter(|c| c.state == crate::daemon::containers::RunState::Running)
        .count() as i64;
    let (swarm, tunnel_addr) = swarm_info(&d).await;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let warnings = store_warnings(d.store_health().await);
    json(InfoDoc {
        info: SystemInfo {
            id: Some(String::new()),
            containers: Some(containers.len() as i64),
            containers_running: Some(running),
            containers_paused: Some(0),
            containers_stopped: Some(containers.len() as i64 - running),
            images: Some(1),
            driver: Some("none".into()),
            name: Some(hostname()),
            server_version: Some(VERSION.into()),
            operating_system: Some("swarmnet".into()),
            os_type: Some("linux".into()),
            architecture: Some(std::env::consts::ARCH.into()),
            kernel_version: Some(kernel_version()),
            ncpu: Some(ncpu),
            mem_total: Some(mem_total()),
            docker_root_dir: Some(d.state_dir.display().to_string()),
            swarm: Some(swarm),
            warnings: Some(warnings),
            ..Default::default()
        },
        tunnel_addr,
    })
}

/// `docker info`'s warnings for the manager's store: its I/O fault, with the
/// path and the cause, until a write succeeds again.
fn store_warnings(health: Option<crate::manager::store::StoreHealth>) -> Vec<String> {
    let Some(health) = health else {
        return Vec::new();
    };
    let mut warnings: Vec<String> = health
        .fault
        .iter()
        .map(|fault| format!("WARNING: {fault}"))
        .collect();
    if health.fatal {
        warnings.push(
            "WARNING: the manager's store could not be reopened; the daemon is exiting so that it restarts"
                .into(),
        );
    }
    warnings
}

/// Total memory in bytes, from /proc/meminfo.
fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::store::{StoreFault, StoreHealth};

    #[test]
    fn a_store_fault_is_a_warning_with_its_path_and_cause() {
        assert!(store_warnings(None).is_empty());
        assert!(store_warnings(Some(StoreHealth::default())).is_empty());
        let health = StoreHealth {
            fault: Some(StoreFault {
                path: "/var/lib/swarmnet/swarm/swarm.redb".into(),
                cause: "No space left on device (os error 28)".into(),
            }),
            io_errors: 1,
            fatal: false,
        };
        assert_eq!(
            store_warnings(Some(health)),
            ["WARNING: the manager's store at /var/lib/swarmnet/swarm/swarm.redb failed to write: No space left on device (os error 28); free space on its disk"]
        );
    }
}
