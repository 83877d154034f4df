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
use tokio::sync::watch;

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

/// Serves until SIGTERM or SIGINT, then shuts down gracefully (no new
/// connections; the requests in flight are answered) and exits 0. A second
/// signal ends it at once, cutting what is still open.
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
        let (count, signals) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                count.send_modify(|n| *n += 1);
            }
        });
        let signalled = |times: u32| {
            let mut signals = signals.clone();
            async move {
                let _ = signals.wait_for(|n| *n >= times).await;
            }
        };
        let shutdown = async {
            signalled(1).await;
            say("whoami shutting down: no new connections; answering the requests in flight");
        };
        let name = args.name.filter(|name| !name.is_empty());
        tokio::select! {
            () = server::serve(listener, name, shutdown) => {}
            () = signalled(2) => say("whoami: a second signal; ending without waiting"),
        }
        Ok(0)
    })
}

/// A line on stderr that cannot fail the shutdown it reports (stderr may be
/// a closed pipe).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
