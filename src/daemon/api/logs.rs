//! `GET /containers/{id}/logs` in Docker's multiplexed framing (the
//! container has no TTY): every chunk behind an 8-byte header, the stream
//! (1 stdout, 2 stderr), three zero bytes and the length as a big-endian u32.
//! The shim writes the container's stdout and stderr to one file, so its
//! log is framed all as stdout. `follow` streams until the container ends.
//! `POST /containers/{id}/attach` streams the same from now on, over the
//! hijacked connection (as `docker run` without `-d` attaches before start).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::http::{stream_response, Answer, Query};
use crate::daemon::containers::RunState;
use crate::daemon::tasklogs::{follow_from, tail};
use crate::daemon::Daemon;
use crate::model::ApiError;

/// The content type of a multiplexed stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The largest payload of one frame.
const FRAME_MAX: usize = 32 * 1024;

/// One frame: the header, then `payload`.
pub fn frame(stream: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.put_slice(&[stream, 0, 0, 0]);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// Frames `data` as `stream`, in frames of at most [`FRAME_MAX`] bytes.
pub fn frames(stream: u8, data: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    for chunk in data.chunks(FRAME_MAX) {
        out.put_slice(&frame(stream, chunk));
    }
    out.freeze()
}

/// `tail`: "all" (or absent) or a number of lines.
pub fn tail_lines(q: &Query) -> Result<Option<usize>, ApiError> {
    match q.get("tail") {
        None | Some("all") => Ok(None),
        Some(_) => q.number("tail"),
    }
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=`.
pub async fn logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
) -> Answer<Response> {
    let view = d.containers.find(&id)?;
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::InvalidArgument(
            "Bad parameters: you must choose at least one stream".into(),
        )
        .into());
    }
    let lines = tail_lines(&q)?;
    let log = tokio::fs::read(&view.log_path).await.unwrap_or_default();
    let offset = log.len() as u64;
    let past = match lines {
        Some(n) => tail(&log, n),
        None => &log,
    };
    let first = if stdout {
        frames(STDOUT, past)
    } else {
        Bytes::new()
    };
    let follow = q.flag("follow") && view.state != RunState::Exited;
    let body = match follow {
        false => Body::from(first),
        true => {
            let rest = follow_log(d, view.container.id, offset, stdout);
            let head = futures::stream::once(async move { Ok::<_, std::io::Error>(first) });
            Body::from_stream(head.chain(rest))
        }
    };
    Ok(stream_response(RAW_STREAM, body))
}

/// `POST /containers/{id}/attach?stream=&stdout=&stderr=`: the output from
/// now until the container ends; hijacked (101) when asked with `Upgrade: tcp`.
/// There is no stdin to attach: a container's is always /dev/null.
pub async fn attach(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    q: Query,
    mut req: Request,
) -> Answer<Response> {
    let view = d.containers.find(&id)?;
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"tcp"));
    let offset = tokio::fs::metadata(&view.log_path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let stream = match q.flag("stream") {
        true => follow_log(d, view.container.id, offset, q.flag("stdout")).boxed(),
        false => futures::stream::empty().boxed(),
    };
    if !upgrade {
        return Ok(stream_response(RAW_STREAM, Body::from_stream(stream)));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut stream = stream;
        while let Some(Ok(bytes)) = stream.next().await {
            if io.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = io.shutdown().await;
    });
    hijack_response()
}

/// `101 UPGRADED` to a raw stream, as dockerd answers a hijack.
pub fn hijack_response() -> Answer<Response> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, RAW_STREAM)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e).into())
}

/// The log from `offset` on, framed, until the container has ended and all it wrote is sent.
pub fn follow_log(
    d: Arc<Daemon>,
    id: String,
    offset: u64,
    stdout: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    follow_from(d.containers.clone(), id, offset).map(move |chunk| {
        chunk.map(|bytes| match stdout {
            true => frames(STDOUT, &bytes),
            false => Bytes::new(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_dockers_header() {
        assert_eq!(
            &frame(STDOUT, b"hi\n")[..],
            &[1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(&frame(STDERR, b"")[..], &[2, 0, 0, 0, 0, 0, 0, 0]);
        let big = vec![b'x'; FRAME_MAX + 1];
        let out = frames(STDOUT, &big);
        assert_eq!(out.len(), big.len() + 16, "two frames");
        assert_eq!(&out[4..8], &(FRAME_MAX as u32).to_be_bytes());
        assert_eq!(
            &out[8 + FRAME_MAX..8 + FRAME_MAX + 8],
            &[1, 0, 0, 0, 0, 0, 0, 1]
        );
        assert!(frames(STDOUT, b"").is_empty());
    }

    #[test]
    fn tail_counts_all_or_a_number() {
        let q = Query::from_pairs(&[("tail", "all")]);
        assert_eq!(tail_lines(&q).unwrap(), None);
        let q = Query::from_pairs(&[("tail", "x")]);
        assert!(tail_lines(&q).is_err());
    }
}
