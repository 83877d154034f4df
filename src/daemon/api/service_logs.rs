//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: every task's
//! output, read on its own node (this one from disk, others over the
//! node-to-node call), line by line, each line with where it came from. With
//! `details=true` (the docker CLI's way) a line starts with Docker's log
//! details (`com.docker.swarm.node.id=...,...task.id=... `) and the client
//! names them; without, it starts with the name ready-made, as docker prints
//! it: `web.1.abc123def456@vm2    | `.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::http::{stream_response, Answer, Query};
use super::logs::{frames, tail_lines, RAW_STREAM, STDERR, STDOUT};
use super::nodes::NodeList;
use crate::daemon::peers::{self, LogRequest};
use crate::daemon::tasklogs::log_stream;
use crate::daemon::Daemon;
use crate::model::{ApiError, NodeView, Service, Task};
use crate::proto::ClusterRequest;

/// How each line of a task is marked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    prefix: Vec<u8>,
}

/// How lines are marked: Docker's details for its client, or the name as
/// `docker service logs` prints it, shaped by its `--raw`, `--no-task-ids`
/// and `--no-trunc` (which the swarmnet CLI passes on as query flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    details: bool,
    raw: bool,
    no_task_ids: bool,
    no_trunc: bool,
}

impl Marks {
    fn of(q: &Query) -> Marks {
        Marks {
            details: q.flag("details"),
            raw: q.flag("raw"),
            no_task_ids: q.flag("no-task-ids"),
            no_trunc: q.flag("no-trunc"),
        }
    }
}

impl Source {
    fn of(task: &Task, hostname: &str, marks: Marks) -> Source {
        let node = task.node_id.as_deref().unwrap_or_default();
        let prefix = if marks.details {
            format!(
                "com.docker.swarm.node.id={node},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                task.service_id, task.id
            )
        } else if marks.raw {
            String::new()
        } else {
            let id = match marks.no_trunc {
                true => &task.id[..],
                false => &task.id[..task.id.len().min(12)],
            };
            let mut name = match task.slot {
                0 => format!("{}.{node}", task.service_name),
                slot => format!("{}.{slot}", task.service_name),
            };
            if !marks.no_task_ids {
                name = format!("{name}.{id}");
            }
            format!("{name}@{hostname}    | ")
        };
        Source {
            prefix: prefix.into_bytes(),
        }
    }
}

/// Cuts a byte stream into lines, each with the source's prefix, framed as
/// stdout; a last line without its newline is sent when the stream ends.
fn prefixed_lines(
    source: Source,
    raw: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let raw = Box::pin(raw);
    futures::stream::unfold(
        (raw, BytesMut::new(), false),
        move |(mut raw, mut pending, done)| {
            let prefix = source.prefix.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(at) = pending.iter().position(|b| *b == b'\n') {
                        let line = pending.split_to(at + 1);
                        let out = frames(STDOUT, &[&prefix[..], &line[..]].concat());
                        return Some((Ok(out), (raw, pending, false)));
                    }
                    match raw.next().await {
                        Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                        Some(Err(e)) => return Some((Err(e), (raw, pending, true))),
                        None if pending.is_empty() => return None,
                        None => {
                            let line = [&prefix[..], &pending[..], b"\n"].concat();
                            return Some((Ok(frames(STDOUT, &line)), (raw, BytesMut::new(), true)));
                        }
                    }
                }
            }
        },
    )
}

/// `GET /services/{id}/logs?stdout=&stderr=&follow=&tail=&details=`.
pub async fn service(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let service: Service = d
        .cluster_as(ClusterRequest::ServiceInspect { service: id })
        .await?;
    let tasks: Vec<Task> = d.cluster_as(ClusterRequest::TaskLs).await?;
    let mut tasks: Vec<Task> = tasks
        .into_iter()
        .filter(|t| t.service_id == service.id)
        .collect();
    tasks.sort_by_key(|t| (t.slot, t.created_at_ms));
    stream(d, tasks, &q).await
}

/// `GET /tasks/{id}/logs`.
pub async fn task(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let task: Task = d
        .cluster_as(ClusterRequest::TaskInspect { task: id })
        .await?;
    stream(d, vec![task], &q).await
}

async fn stream(d: Arc<Daemon>, tasks: Vec<Task>, q: &Query) -> Answer<Response> {
    if !q.flag("stdout") && !q.flag("stderr") {
        return Err(ApiError::InvalidArgument(
            "Bad parameters: you must choose at least one stream".into(),
        )
        .into());
    }
    let tail = tail_lines(q)?;
    let (follow, marks) = (q.flag("follow"), Marks::of(q));
    let nodes: NodeList = d.cluster_as(ClusterRequest::NodeLs).await?;
    let nodes: HashMap<String, NodeView> = nodes
        .nodes
        .into_iter()
        .map(|v| (v.node.id.clone(), v))
        .collect();
    let (self_id, peer_tls) = d.node_identity().await?;
    let mut streams: Vec<BoxStream<'static, std::io::Result<Bytes>>> = Vec::new();
    for task in tasks {
        let Some(node) = task.node_id.as_ref().and_then(|n| nodes.get(n)) else {
            continue;
        };
        if task.status.container_id.is_none() {
            continue;
        }
        let source = Source::of(&task, &node.node.hostname, marks);
        let req = LogRequest {
            task_id: task.id.clone(),
            tail,
            follow,
        };
        let raw: BoxStream<'static, std::io::Result<Bytes>> = if node.node.id == self_id {
            match d
                .containers
                .all()
                .into_iter()
                .find(|c| c.task_id.as_ref() == Some(&task.id))
            {
                Some(c) => log_stream(d.containers.clone(), c.id, tail, follow).boxed(),
                None => continue,
            }
        } else {
            match peers::task_log(node.node.tunnel_addr, peer_tls.clone(), req).await {
                Ok(s) => s.boxed(),
                Err(e) => {
                    let line = format!("error from node {}: {e}\n", node.node.hostname);
                    let frame = frames(STDERR, line.as_bytes());
                    streams.push(futures::stream::once(async move { Ok(frame) }).boxed());
                    continue;
                }
            }
        };
        streams.push(prefixed_lines(source, raw).boxed());
    }
    let body = match follow {
        true => Body::from_stream(futures::stream::select_all(streams)),
        false => Body::from_stream(futures::stream::iter(streams).flatten()),
    };
    Ok(stream_response(RAW_STREAM, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskState, TaskStatus, TaskTemplate};

    fn task(slot: u64) -> Task {
        Task {
            id: "kq2v4q9l8s3sabcdefghijklm".into(),
            service_id: "svc1".into(),
            service_name: "web".into(),
            slot,
            node_id: Some("node1".into()),
            spec: TaskTemplate::default(),
            spec_version: 1,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::Running, 1, "started"),
            networks: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
            version: 1,
        }
    }

    async fn collect(source: Source, chunks: &[&str]) -> Vec<u8> {
        let raw = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::copy_from_slice(c.as_bytes())))
                .collect::<Vec<_>>(),
        );
        let framed: Vec<Bytes> = prefixed_lines(source, raw)
            .map(|b| b.unwrap())
            .collect()
            .await;
        // Drop the 8-byte headers: one frame per line.
        framed.iter().flat_map(|f| f[8..].to_vec()).collect()
    }

    #[tokio::test]
    async fn lines_carry_their_task_and_node_as_docker_prints_them() {
        let plain = Marks::default();
        let source = Source::of(&task(1), "vm2", plain);
        let out = collect(source, &["hel", "lo\nwor", "ld\nlast"]).await;
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web.1.kq2v4q9l8s3s@vm2    | hello\nweb.1.kq2v4q9l8s3s@vm2    | world\nweb.1.kq2v4q9l8s3s@vm2    | last\n"
        );
        let global = Source::of(&task(0), "vm3", plain);
        assert!(String::from_utf8(global.prefix)
            .unwrap()
            .starts_with("web.node1.kq2v4q9l8s3s@vm3"));
        let no_ids = Marks {
            no_task_ids: true,
            ..plain
        };
        assert_eq!(
            Source::of(&task(1), "vm2", no_ids).prefix,
            b"web.1@vm2    | "
        );
        let raw = Marks { raw: true, ..plain };
        assert!(Source::of(&task(1), "vm2", raw).prefix.is_empty());
        let full = Marks {
            no_trunc: true,
            ..plain
        };
        assert!(String::from_utf8(Source::of(&task(1), "vm2", full).prefix)
            .unwrap()
            .starts_with("web.1.kq2v4q9l8s3sabcdefghijklm@vm2"));
        let details = Marks {
            details: true,
            ..plain
        };
        let details = Source::of(&task(2), "vm2", details);
        let out = collect(details, &["x\n"]).await;
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "com.docker.swarm.node.id=node1,com.docker.swarm.service.id=svc1,com.docker.swarm.task.id=kq2v4q9l8s3sabcdefghijklm x\n"
        );
    }
}
