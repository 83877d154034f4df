//! swarmnet: Docker Swarm's networking for a group of Linux hosts, encrypted by
//! WireGuard. One binary: the root daemon, the CLI, and the local machine lab.

mod agent;
mod api;
mod cli;
mod daemon;
mod machine;
mod manager;
mod model;
mod procs;
mod proto;
#[cfg(test)]
mod test_support;
mod whoami;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", cli::error_sentence(&err));
            1
        }
    };
    std::process::exit(code);
}
