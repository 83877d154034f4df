//! swarmnet: Docker Swarm's networking for a group of Linux hosts, encrypted by
//! WireGuard. One binary: the root daemon, the CLI, and the local machine lab.

mod agent;
mod api;
mod cli;
mod daemon;
mod dns;
mod machine;
mod manager;
mod mesh;
mod model;
mod netlink;
mod nft;
mod overlay;
mod procs;
mod proto;
mod runtime;
mod whoami;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "swarmnet",
    version,
    about = "Docker Swarm's networking, encrypted by WireGuard"
)]
struct Args {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long, global = true, env = "SWARMNET_HOST", default_value = cli::DEFAULT_HOST)]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the root daemon (one per host).
    Daemon(daemon::DaemonArgs),
    #[command(flatten)]
    Client(cli::Command),
    /// Manage local machines: hosts in network namespaces on this box.
    Machine {
        #[command(subcommand)]
        cmd: machine::MachineCmd,
    },
    /// A tiny HTTP server that says who answered (as traefik/whoami).
    Whoami(whoami::WhoamiArgs),
    /// The per-container shim the daemon starts (internal).
    #[command(name = "runtime-shim", hide = true)]
    RuntimeShim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Runs the command; returns the exit code.
fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Daemon(daemon) => daemon::run(daemon, &cli::socket_path(&args.host)?),
        Command::Client(command) => cli::run(&args.host, command),
        Command::Machine { cmd } => machine::run(cmd),
        Command::Whoami(whoami) => whoami::run(whoami),
        Command::RuntimeShim { args } => runtime::shim_main(args),
    }
}

/// The arguments, or exit: help and version as clap prints them, a usage
/// error as one line (clap's first paragraph) and exit code 2.
fn args() -> Args {
    use clap::error::ErrorKind;
    match Args::try_parse() {
        Ok(args) => args,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            std::process::exit(2);
        }
    }
}

/// A usage error's first paragraph on one line.
fn one_line(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let code = match run(args()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", cli::error_sentence(&err));
            1
        }
    };
    std::process::exit(code);
}
