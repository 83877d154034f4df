//! `/containers/{id}/exec` and `/exec/{id}`: a command run in a running
//! container's namespaces. Started with `Upgrade: tcp`, the connection is
//! hijacked (101): the command's output goes out multiplexed as logs are,
//! the client's input goes to its stdin until the client half-closes, and
//! the connection closes when the command ends, its exit code recorded
//! first. Without the upgrade, the output is the body of a 200.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::http::{json, stream_response, Answer, JsonBody};
use super::logs::{frame, hijack_response, RAW_STREAM, STDERR, STDOUT};
use crate::api::models::{
    ExecConfig, ExecInspectResponse, ExecStartConfig, IdResponse, ProcessConfig,
};
use crate::daemon::containers::RunState;
use crate::daemon::execs::{Exec, ExecState};
use crate::daemon::Daemon;
use crate::model::ApiError;
use crate::runtime::{self, ExecSpec};

/// How long output is still read after the command ends (a child it left may hold its pipes).
const DRAIN: Duration = Duration::from_secs(2);

/// Refuses what swarmnet cannot give an exec, with a sentence each.
fn check_config(cfg: &ExecConfig) -> Result<(), ApiError> {
    if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::InvalidArgument(
            "No exec command specified".into(),
        ));
    }
    if cfg.tty == Some(true) {
        return Err(ApiError::InvalidArgument(
            "a TTY is not supported: swarmnet runs exec without a terminal, so leave out -t".into(),
        ));
    }
    if cfg.user.as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(ApiError::InvalidArgument(
            "exec as another user is not supported: commands run as the daemon's user, so leave out -u".into(),
        ));
    }
    Ok(())
}

/// `POST /containers/{id}/exec` with an ExecConfig: answers the new exec's ID (201).
pub async fn create(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    JsonBody(cfg): JsonBody<ExecConfig>,
) -> Answer<Response> {
    check_config(&cfg)?;
    let view = d.containers.find(&id)?;
    if view.state != RunState::Running {
        return Err(
            ApiError::Conflict(format!("Container {} is not running", view.container.id)).into(),
        );
    }
    let spec = ExecSpec {
        cmd: cfg.cmd.unwrap_or_default(),
        env: cfg.env.unwrap_or_default(),
        working_dir: cfg.working_dir.filter(|w| !w.is_empty()),
        hostname: view.container.hostname().to_string(),
    };
    let attach = [cfg.attach_stdin, cfg.attach_stdout, cfg.attach_stderr].map(|a| a == Some(true));
    let exec_id = crate::daemon::containers::new_id();
    d.execs
        .add(Exec::new(exec_id.clone(), view.container.id, spec, attach))?;
    Ok((StatusCode::CREATED, axum::Json(IdResponse { id: exec_id })).into_response())
}

/// `POST /exec/{id}/start` with an ExecStartConfig.
pub async fn start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    mut req: Request,
) -> Answer<Response> {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let JsonBody(cfg) = JsonBody::<ExecStartConfig>::from_request(req, &()).await?;
    if cfg.tty == Some(true) {
        return Err(ApiError::InvalidArgument(
            "a TTY is not supported: swarmnet runs exec without a terminal, so leave out -t".into(),
        )
        .into());
    }
    let exec = d.execs.get(&id)?;
    let view = d.containers.find(&exec.container_id)?;
    if view.state != RunState::Running {
        return Err(
            ApiError::Conflict(format!("Container {} is not running", view.container.id)).into(),
        );
    }
    let exec = d.execs.begin(&id)?;
    let detach = cfg.detach == Some(true);
    let stdin = exec.attach_stdin && on_upgrade.is_some() && !detach;
    let piped = |on: bool| {
        if on && !detach {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut command = runtime::exec_command(&view.container.process, &exec.spec).map_err(|e| {
        ApiError::Conflict(format!(
            "Container {} is not running: {e:#}",
            view.container.id
        ))
    })?;
    command
        .stdin(piped(stdin))
        .stdout(piped(exec.attach_stdout))
        .stderr(piped(exec.attach_stderr));
    let child = match tokio::process::Command::from(command).spawn() {
        Ok(child) => Some(child),
        Err(e) => match runtime::spawn_failure_code(&e) {
            Some(code) => {
                d.execs.finish(&id, code);
                None
            }
            None => {
                d.execs.finish(&id, 126);
                return Err(ApiError::Internal(format!("cannot start the exec: {e}")).into());
            }
        },
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut child_stdin = None;
    if let Some(mut child) = child {
        child_stdin = child.stdin.take();
        tokio::spawn(supervise(d.clone(), id.clone(), child, tx));
    }
    if detach {
        return Ok(StatusCode::OK.into_response());
    }
    let Some(on_upgrade) = on_upgrade else {
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        return Ok(stream_response(RAW_STREAM, Body::from_stream(body)));
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => hijacked(TokioIo::new(upgraded), rx, child_stdin).await,
            Err(e) => tracing::debug!(exec = %id, "the exec's connection was not upgraded: {e}"),
        }
    });
    hijack_response()
}

/// Waits for the command, with its output framed into `tx`; records the exit
/// code before the last sender goes, so the stream ends after it is known.
async fn supervise(
    d: Arc<Daemon>,
    id: String,
    mut child: tokio::process::Child,
    tx: mpsc::Sender<Bytes>,
) {
    if let Some(pid) = child.id() {
        d.execs.set_pid(&id, pid);
    }
    let stdout = child
        .stdout
        .take()
        .map(|out| forward(out, STDOUT, tx.clone()));
    let stderr = child
        .stderr
        .take()
        .map(|err| forward(err, STDERR, tx.clone()));
    let mut readers = tokio::spawn(async move {
        let out = async {
            if let Some(out) = stdout {
                out.await;
            }
        };
        let err = async {
            if let Some(err) = stderr {
                err.await;
            }
        };
        tokio::join!(out, err);
    });
    let code = match child.wait().await {
        Ok(status) => runtime::exit_code_of(status),
        Err(e) => {
            tracing::warn!(exec = %id, "cannot wait for the exec: {e}");
            -1
        }
    };
    if tokio::time::timeout(DRAIN, &mut readers).await.is_err() {
        readers.abort();
    }
    d.execs.finish(&id, code);
    drop(tx);
}

/// Frames what `from` writes as `stream` until it ends or nobody listens.
async fn forward(mut from: impl AsyncRead + Unpin, stream: u8, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(stream, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The hijacked connection: frames out, the client's input in, closed when the command ends.
async fn hijacked(
    io: TokioIo<hyper::upgrade::Upgraded>,
    mut rx: mpsc::Receiver<Bytes>,
    child_stdin: Option<tokio::process::ChildStdin>,
) {
    let (mut from_client, mut to_client) = tokio::io::split(io);
    let input = tokio::spawn(async move {
        if let Some(mut to_child) = child_stdin {
            let _ = tokio::io::copy(&mut from_client, &mut to_child).await;
            let _ = to_child.shutdown().await;
        }
    });
    while let Some(bytes) = rx.recv().await {
        if to_client.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = to_client.shutdown().await;
    input.abort();
}

/// `GET /exec/{id}/json`.
pub async fn inspect(State(d): State<Arc<Daemon>>, Path(id): Path<String>) -> Answer<Response> {
    json(exec_doc(&d.execs.get(&id)?))
}

/// An exec in Docker's shape; its exit code is null until it ends.
fn exec_doc(e: &Exec) -> ExecInspectResponse {
    let (running, exit_code, pid) = match e.state {
        ExecState::Created => (false, None, 0),
        ExecState::Running { pid } => (true, None, pid),
        ExecState::Exited { code } => (false, Some(code.into()), 0),
    };
    ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(String::new()),
        id: Some(e.id.clone()),
        running: Some(running),
        exit_code,
        process_config: Some(ProcessConfig {
            privileged: Some(false),
            user: Some(String::new()),
            tty: Some(false),
            entrypoint: e.spec.cmd.first().cloned(),
            arguments: Some(e.spec.cmd.get(1..).unwrap_or_default().to_vec()),
        }),
        open_stdin: Some(e.attach_stdin),
        open_stderr: Some(e.attach_stderr),
        open_stdout: Some(e.attach_stdout),
        container_id: Some(e.container_id.clone()),
        pid: Some(pid.into()),
    }
}
