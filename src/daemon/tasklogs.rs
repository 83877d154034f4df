//! A container's log as raw bytes: its last lines, then (when followed)
//! what it writes until its process ends. `container logs`, `service logs`
//! and the node-to-node log call all read it this way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::containers::{Containers, RunState};

/// How often a followed log is read for more.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// The most read at once.
const CHUNK: u64 = 128 * 1024;

/// The last `n` lines of `log` (the last may lack its newline).
pub fn tail(log: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    &log[start..]
}

/// What the log holds past `offset` (at most `CHUNK` bytes).
pub async fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if file.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = (&mut file).take(CHUNK).read_to_end(&mut buf).await;
    buf
}

/// The container's log: the last `tail` lines (or all), then, with
/// `follow`, what comes until the container has ended and all it wrote is sent.
pub fn log_stream(
    containers: Arc<Containers>,
    id: String,
    tail_lines: Option<usize>,
    follow: bool,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    let head = {
        let (containers, id) = (containers.clone(), id.clone());
        async move {
            let view = containers.find(&id).ok();
            let log = match &view {
                Some(v) => tokio::fs::read(&v.log_path).await.unwrap_or_default(),
                None => Vec::new(),
            };
            let past = match tail_lines {
                Some(n) => tail(&log, n),
                None => &log,
            };
            let ended = view.is_none_or(|v| v.state == RunState::Exited);
            let rest = (follow && !ended).then_some(log.len() as u64);
            (Bytes::copy_from_slice(past), rest)
        }
    };
    futures::stream::once(head).flat_map(move |(past, rest)| {
        let first = futures::stream::once(async move { Ok(past) });
        let rest = rest.map(|offset| follow_from(containers.clone(), id.clone(), offset));
        first.chain(futures::stream::iter(rest).flatten())
    })
}

/// What the container writes from `offset` on, until it has ended and all it
/// wrote is sent.
pub fn follow_from(
    containers: Arc<Containers>,
    id: String,
    offset: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(Some(offset), move |at| {
        let (containers, id) = (containers.clone(), id.clone());
        async move {
            let mut offset = at?;
            loop {
                // Read after the state: output written before the end is all sent.
                let (ended, path) = match containers.find(&id) {
                    Ok(v) => (v.state == RunState::Exited, Some(v.log_path)),
                    Err(_) => (true, None),
                };
                let more = match &path {
                    Some(path) => read_from(path, offset).await,
                    None => Vec::new(),
                };
                if !more.is_empty() {
                    offset += more.len() as u64;
                    return Some((Ok(Bytes::from(more)), Some(offset)));
                }
                if ended {
                    return None;
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
    }
}
