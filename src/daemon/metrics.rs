//! Prometheus metrics (`--metrics-addr`, as dockerd's option): WireGuard peer
//! counters and drops, nodes by status, API requests by outcome, refused
//! joins by reason.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::manager::api::ApiCounters;
use crate::manager::store::StoreHealth;
use crate::mesh::{DeviceStats, PeerStats};
use crate::model::RequestCounts;

/// The counters the daemon renders, each owned by the layer that counts.
#[derive(Default)]
pub struct Metrics {
    /// The manager's API: requests and refused joins (counted by `manager::api`).
    pub manager: Arc<ApiCounters>,
    /// The Docker Engine API on the daemon's socket.
    pub engine: Arc<RequestCounts>,
}

impl Metrics {
    /// The exposition text.
    /// `store` is the manager's store's health (managers only).
    pub fn render(
        &self,
        wg: Option<&DeviceStats>,
        nodes: &[(String, u64)],
        store: Option<&StoreHealth>,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP swarmnet_api_requests_total API requests by API and outcome.\n# TYPE swarmnet_api_requests_total counter\n");
        let apis: [(&str, &RequestCounts); 2] = [
            ("engine", &self.engine),
            ("manager", &self.manager.requests),
        ];
        for (api, counts) in apis {
            for (outcome, n) in counts.snapshot() {
                let _ = writeln!(
                    out,
                    "swarmnet_api_requests_total{{api=\"{api}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP swarmnet_join_failures_total Refused joins to this manager by reason.\n# TYPE swarmnet_join_failures_total counter\n");
        for (reason, n) in self.manager.join_failures.snapshot() {
            let _ = writeln!(
                out,
                "swarmnet_join_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP swarmnet_nodes Nodes of the swarm by status (managers only).\n# TYPE swarmnet_nodes gauge\n");
        for (status, n) in nodes {
            let _ = writeln!(out, "swarmnet_nodes{{status=\"{status}\"}} {n}");
        }
        if let Some(store) = store {
            render_store(&mut out, store);
        }
        if let Some(wg) = wg {
            render_wireguard(&mut out, wg);
        }
        out
    }
}

fn render_store(out: &mut String, store: &StoreHealth) {
    let _ = writeln!(
        out,
        "# HELP swarmnet_store_io_errors_total I/O errors of the manager's store.\n# TYPE swarmnet_store_io_errors_total counter\nswarmnet_store_io_errors_total {}",
        store.io_errors
    );
    let _ = writeln!(
        out,
        "# HELP swarmnet_store_faulted 1 while the manager's store cannot write (until a write succeeds again).\n# TYPE swarmnet_store_faulted gauge\nswarmnet_store_faulted {}",
        u8::from(store.fault.is_some() || store.fatal)
    );
}

/// One per-peer metric family; `value` returns None to leave a peer out.
fn peer_family(
    out: &mut String,
    wg: &DeviceStats,
    (name, kind, help): (&str, &str, &str),
    value: impl Fn(&PeerStats) -> Option<String>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for p in &wg.peers {
        if let Some(v) = value(p) {
            let _ = writeln!(out, "{name}{{{}}} {v}", peer_labels(p));
        }
    }
}

fn render_wireguard(out: &mut String, wg: &DeviceStats) {
    peer_family(
        out,
        wg,
        (
            "swarmnet_wireguard_peer_receive_bytes_total",
            "counter",
            "Bytes received from a peer.",
        ),
        |p| Some(p.rx_bytes.to_string()),
    );
    peer_family(
        out,
        wg,
        (
            "swarmnet_wireguard_peer_transmit_bytes_total",
            "counter",
            "Bytes sent to a peer.",
        ),
        |p| Some(p.tx_bytes.to_string()),
    );
    peer_family(
        out,
        wg,
        (
            "swarmnet_wireguard_peer_last_handshake_age_seconds",
            "gauge",
            "Seconds since the last handshake with a peer (absent before the first).",
        ),
        |p| {
            let age = SystemTime::now().duration_since(p.last_handshake?).ok()?;
            Some(format!("{:.3}", age.as_secs_f64()))
        },
    );
    out.push_str("# HELP swarmnet_wireguard_dropped_packets_total Packets dropped by the WireGuard loop, by reason.\n# TYPE swarmnet_wireguard_dropped_packets_total counter\n");
    for (reason, n) in &wg.dropped {
        let _ = writeln!(
            out,
            "swarmnet_wireguard_dropped_packets_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

fn peer_labels(p: &PeerStats) -> String {
    use base64::Engine;
    format!(
        "public_key=\"{}\",tunnel_addr=\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(p.public_key),
        p.tunnel_addr
    )
}

/// Serves `GET /metrics` with whatever `render` returns.
pub async fn serve(listener: TcpListener, render: impl Fn() -> String + Send + Sync + 'static) {
    let render = std::sync::Arc::new(render);
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            while len < buf.len() {
                match conn.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..len]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" {
                ("200 OK", render())
            } else {
                (
                    "404 Not Found",
                    "not found: metrics are at /metrics\n".to_string(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_by_outcome_and_nodes() {
        let m = Metrics::default();
        m.engine.count(None);
        m.engine.count(None);
        m.manager
            .requests
            .count(Some(&crate::model::ApiError::NotFound("x".into())));
        m.manager.join_failures.count("token");
        let store = StoreHealth {
            fault: Some(crate::manager::store::StoreFault {
                path: "/var/lib/swarmnet/swarm/swarm.redb".into(),
                cause: "No space left on device (os error 28)".into(),
            }),
            io_errors: 3,
            fatal: false,
        };
        let text = m.render(None, &[("ready".into(), 2)], Some(&store));
        assert!(
            text.contains("\nswarmnet_store_io_errors_total 3\n"),
            "{text}"
        );
        assert!(text.contains("\nswarmnet_store_faulted 1\n"), "{text}");
        assert!(text.contains("swarmnet_api_requests_total{api=\"engine\",outcome=\"ok\"} 2"));
        assert!(
            text.contains("swarmnet_api_requests_total{api=\"manager\",outcome=\"not_found\"} 1")
        );
        assert!(text.contains("swarmnet_nodes{status=\"ready\"} 2"));
        assert!(text.contains("swarmnet_join_failures_total{reason=\"token\"} 1"));
    }
}
