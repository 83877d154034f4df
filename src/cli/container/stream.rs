//! The streams of `container logs` and `container exec`: Docker's
//! multiplexed framing read back onto this process's stdout and stderr, and
//! exec's hijacked connection (the daemon's output in, this stdin out).

use std::io::{Read, Write};

use http_body_util::BodyExt;
use hyper::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::client::{path, Client, Streaming};
use crate::api::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, IdResponse};

/// Splits a multiplexed stream into its frames as bytes arrive: each an
/// 8-byte header (stream, three zeros, big-endian length), then the payload.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// The whole frames `bytes` completes, as (stream, payload).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(header) = self.buf.get(..8) {
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if self.buf.len() < 8 + len {
                break;
            }
            let stream = header[0];
            let payload = self.buf[8..8 + len].to_vec();
            self.buf.drain(..8 + len);
            frames.push((stream, payload));
        }
        frames
    }

    /// Writes what `bytes` completes to stdout (stream 0 or 1) and stderr (2).
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for (stream, payload) in self.push(bytes) {
            match stream {
                2 => {
                    std::io::stderr().write_all(&payload)?;
                    std::io::stderr().flush()?;
                }
                _ => {
                    std::io::stdout().write_all(&payload)?;
                    std::io::stdout().flush()?;
                }
            }
        }
        Ok(())
    }
}

/// Copies a multiplexed body onto stdout and stderr until it ends.
pub async fn copy_body(response: Streaming) -> anyhow::Result<()> {
    let mut body = response.into_body();
    let mut demux = Demux::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow::anyhow!("the daemon's stream was cut off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            demux.write(data)?;
        }
    }
    Ok(())
}

/// `container logs [-f]`: the log so far, then (following) until the container ends.
pub async fn logs(client: &Client, container: &str, follow: bool) -> anyhow::Result<()> {
    let mut query = vec![("stdout", "1"), ("stderr", "1")];
    if follow {
        query.push(("follow", "1"));
    }
    let url = path(&format!("/containers/{container}/logs"), &query);
    let response = client.send(Method::GET, &url, None::<&()>, &[]).await?;
    copy_body(response).await
}

/// `container exec CONTAINER CMD...`: runs it through the exec API with
/// this process's stdin, stdout and stderr; returns its exit code.
pub async fn exec(client: &Client, container: &str, cmd: Vec<String>) -> anyhow::Result<i32> {
    let config = ExecConfig {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(cmd),
        ..Default::default()
    };
    let created = client
        .send(
            Method::POST,
            &format!("/containers/{container}/exec"),
            Some(&config),
            &[],
        )
        .await?;
    let bytes = created.into_body().collect().await?.to_bytes();
    let IdResponse { id } = serde_json::from_slice(&bytes)?;
    let start = ExecStartConfig {
        detach: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let upgrade = [("Connection", "Upgrade"), ("Upgrade", "tcp")];
    let response = client
        .send(
            Method::POST,
            &format!("/exec/{id}/start"),
            Some(&start),
            &upgrade,
        )
        .await?;
    if response.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
        hijacked(response).await?;
    } else {
        copy_body(response).await?;
    }
    let bytes = client
        .send(Method::GET, &format!("/exec/{id}/json"), None::<&()>, &[])
        .await?
        .into_body()
        .collect()
        .await?
        .to_bytes();
    let inspected: ExecInspectResponse = serde_json::from_slice(&bytes)?;
    Ok(inspected.exit_code.unwrap_or(0) as i32)
}

/// The hijacked exec connection: output until the daemon closes it, this
/// process's stdin sent meanwhile and half-closed at its end.
async fn hijacked(response: Streaming) -> anyhow::Result<()> {
    let upgraded = hyper::upgrade::on(response).await?;
    let (mut from_daemon, mut to_daemon) = tokio::io::split(TokioIo::new(upgraded));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    // A thread, not a task: a read of a terminal cannot be cancelled, and
    // this process exits without waiting for it.
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if tx.blocking_send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // Never ends on its own: the daemon closing the output ends the exec.
    let input = async move {
        while let Some(chunk) = rx.recv().await {
            if to_daemon.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_daemon.shutdown().await;
        std::future::pending::<std::convert::Infallible>().await
    };
    let output = async move {
        let mut demux = Demux::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = from_daemon.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(());
            }
            demux.write(&buf[..n])?;
        }
    };
    tokio::select! {
        done = output => done,
        never = input => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_as_they_arrive() {
        let mut d = Demux::default();
        let stream = [
            &[1u8, 0, 0, 0, 0, 0, 0, 3][..],
            b"hi\n",
            &[2, 0, 0, 0, 0, 0, 0, 4],
            b"err\n",
        ]
        .concat();
        assert!(d.push(&stream[..5]).is_empty(), "half a header");
        assert!(d.push(&stream[5..10]).is_empty(), "part of the payload");
        let rest = d.push(&stream[10..]);
        assert_eq!(rest, vec![(1, b"hi\n".to_vec()), (2, b"err\n".to_vec())]);
        assert!(d.push(&[]).is_empty());
    }
}
