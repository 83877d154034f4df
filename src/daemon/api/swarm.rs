//! `/swarm`: inspect, init, join, leave, and update (join-token rotation).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::http::{json, ok_empty, Answer, JsonBody, Query};
use crate::api::models::{
    JoinTokens, Swarm, SwarmInitRequest, SwarmJoinRequest, SwarmSpec, SwarmSpecCaConfig,
    SwarmSpecDispatcher, SwarmSpecEncryptionConfig, SwarmSpecOrchestration, SwarmSpecRaft,
};
use crate::daemon::membership::{InitOptions, JoinOptions};
use crate::daemon::Daemon;
use crate::model::ApiError;
use crate::proto::{ClusterRequest, SwarmView};

/// The settings Docker reports for a default swarm; swarmnet's behave the same
/// (5 s heartbeats, 90-day certificates) or do not apply (Raft).
pub fn default_spec() -> SwarmSpec {
    SwarmSpec {
        name: Some("default".into()),
        labels: Some(Default::default()),
        orchestration: Some(SwarmSpecOrchestration {
            task_history_retention_limit: Some(5),
        }),
        raft: Some(SwarmSpecRaft {
            snapshot_interval: Some(10000),
            keep_old_snapshots: Some(0),
            log_entries_for_slow_followers: Some(500),
            election_tick: Some(10),
            heartbeat_tick: Some(1),
        }),
        dispatcher: Some(SwarmSpecDispatcher {
            heartbeat_period: Some(5_000_000_000),
        }),
        ca_config: Some(SwarmSpecCaConfig {
            node_cert_expiry: Some(7_776_000_000_000_000),
            ..Default::default()
        }),
        encryption_config: Some(SwarmSpecEncryptionConfig {
            auto_lock_managers: Some(false),
        }),
        task_defaults: Some(Default::default()),
    }
}

fn swarm_doc(view: &SwarmView) -> Swarm {
    let c = super::system::cluster_info(view);
    Swarm {
        id: c.id,
        version: c.version,
        created_at: c.created_at,
        updated_at: c.updated_at,
        spec: c.spec,
        tls_info: c.tls_info,
        root_rotation_in_progress: c.root_rotation_in_progress,
        data_path_port: c.data_path_port,
        default_addr_pool: c.default_addr_pool,
        subnet_size: c.subnet_size,
        join_tokens: Some(JoinTokens {
            worker: Some(view.worker_token.clone()),
            manager: Some(view.manager_token.clone()),
        }),
    }
}

/// `GET /swarm` (managers only, as Docker).
pub async fn inspect(State(d): State<Arc<Daemon>>) -> Answer<Response> {
    let view: SwarmView = d.cluster_as(ClusterRequest::SwarmInspect).await?;
    json(swarm_doc(&view))
}

/// The init options of a request: one default address pool at most.
fn init_options(req: SwarmInitRequest) -> Result<InitOptions, ApiError> {
    let pools = req.default_addr_pool.unwrap_or_default();
    if pools.len() > 1 {
        return Err(ApiError::InvalidArgument(format!(
            "{} default address pools given ({}): swarmnet takes one",
            pools.len(),
            pools.join(", ")
        )));
    }
    let mask = match req.subnet_size {
        None | Some(0) => None,
        Some(n) => Some(u8::try_from(n).ok().filter(|n| *n <= 32).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "invalid default address pool mask length {n}: give 1 to 32"
            ))
        })?),
    };
    let advertise_addr = req
        .advertise_addr
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::InvalidArgument(
            "advertise address must be specified: give --advertise-addr with this host's address"
                .into(),
        )
        })?;
    Ok(InitOptions {
        advertise_addr,
        listen_addr: req.listen_addr.filter(|a| !a.is_empty()),
        default_addr_pool: pools.into_iter().next(),
        default_addr_pool_mask_length: mask,
    })
}

/// `POST /swarm/init`: answers the new node's ID.
pub async fn init(
    State(d): State<Arc<Daemon>>,
    JsonBody(req): JsonBody<SwarmInitRequest>,
) -> Answer<Response> {
    let node_id = d.swarm_init(init_options(req)?).await?;
    json(node_id)
}

fn join_options(req: SwarmJoinRequest) -> Result<JoinOptions, ApiError> {
    let remotes = req.remote_addrs.unwrap_or_default();
    let remote = remotes.into_iter().next().ok_or_else(|| {
        ApiError::InvalidArgument(
            "a manager's address is needed to join: give it as HOST:PORT, e.g. 192.168.99.100:2377"
                .into(),
        )
    })?;
    Ok(JoinOptions {
        token: req.join_token.unwrap_or_default(),
        remote,
        advertise_addr: req.advertise_addr.filter(|a| !a.is_empty()),
    })
}

/// `POST /swarm/join`.
pub async fn join(
    State(d): State<Arc<Daemon>>,
    JsonBody(req): JsonBody<SwarmJoinRequest>,
) -> Answer<Response> {
    d.swarm_join(join_options(req)?).await?;
    ok_empty()
}

/// `POST /swarm/leave?force=`.
pub async fn leave(State(d): State<Arc<Daemon>>, q: Query) -> Answer<Response> {
    d.leave(q.flag("force")).await?;
    ok_empty()
}

/// `POST /swarm/update?version=&rotateWorkerToken=&rotateManagerToken=`:
/// token rotation; the spec itself is fixed.
pub async fn update(
    State(d): State<Arc<Daemon>>,
    q: Query,
    JsonBody(_spec): JsonBody<SwarmSpec>,
) -> Answer<Response> {
    let version = q.number::<u64>("version")?.ok_or_else(|| {
        ApiError::InvalidArgument(
            "invalid swarm version '': give the version read from GET /swarm".into(),
        )
    })?;
    if q.flag("rotateManagerUnlockKey") {
        return Err(ApiError::InvalidArgument(
            "autolock is not supported: swarmnet managers keep no unlock key".into(),
        )
        .into());
    }
    let _: SwarmView = d
        .cluster_as(ClusterRequest::SwarmUpdate {
            version,
            rotate_worker_token: q.flag("rotateWorkerToken"),
            rotate_manager_token: q.flag("rotateManagerToken"),
        })
        .await?;
    ok_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_requests_map_to_options_or_a_sentence() {
        let req = SwarmInitRequest {
            advertise_addr: Some("192.168.99.100".into()),
            listen_addr: Some("0.0.0.0:2377".into()),
            default_addr_pool: Some(vec!["10.10.0.0/16".into()]),
            subnet_size: Some(26),
            ..Default::default()
        };
        let o = init_options(req).unwrap();
        assert_eq!(o.advertise_addr, "192.168.99.100");
        assert_eq!(o.default_addr_pool.as_deref(), Some("10.10.0.0/16"));
        assert_eq!(o.default_addr_pool_mask_length, Some(26));
        let two = SwarmInitRequest {
            advertise_addr: Some("192.168.99.100".into()),
            default_addr_pool: Some(vec!["10.1.0.0/16".into(), "10.2.0.0/16".into()]),
            ..Default::default()
        };
        assert!(init_options(two)
            .unwrap_err()
            .to_string()
            .contains("takes one"));
        let none = SwarmInitRequest::default();
        assert!(init_options(none)
            .unwrap_err()
            .to_string()
            .contains("advertise address"));
    }

    #[test]
    fn join_requests_need_a_manager() {
        let req = SwarmJoinRequest {
            remote_addrs: Some(vec!["192.168.99.100:2377".into()]),
            join_token: Some("SWMTKN-1-x".into()),
            ..Default::default()
        };
        let o = join_options(req).unwrap();
        assert_eq!(o.remote, "192.168.99.100:2377");
        assert!(join_options(SwarmJoinRequest::default()).is_err());
    }
}
