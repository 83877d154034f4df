//! `swarmnet whoami`: a tiny HTTP server for demos and tests that answers as
//! the traefik/whoami image does (hostname, addresses, the request echoed).

mod go;
mod reply;
mod request;
mod server;
mod target;

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

#[derive(clap::Args, Debug)]
pub struct WhoamiArgs {
    /// TCP port to listen on.
    #[arg(long, env = "WHOAMI_PORT_NUMBER", default_value_t = 80)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// A name printed first on each page ("Name: ..."), as traefik/whoami's.
    #[arg(long, env = "WHOAMI_NAME")]
    name: Option<String>,
}

/// Serves until SIGTERM or SIGINT, then exits 0.
pub fn run(args: WhoamiArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} (pick a free --port; ports below 1024 need root)")
        })?;
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        eprintln!("whoami listening on {}", listener.local_addr()?);
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        server::serve(
            listener,
            args.name.filter(|name| !name.is_empty()),
            shutdown,
        )
        .await;
        Ok(0)
    })
}
