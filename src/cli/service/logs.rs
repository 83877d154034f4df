//! `service logs SERVICE|TASK`: the daemon's multiplexed log stream, each
//! line already prefixed with Docker's context (`web.1.abc123def456@vm2 |`),
//! copied onto stdout and stderr.

use hyper::Method;

use super::super::client::{path, segment, Client};
use super::super::container::stream::copy_body;
use crate::api::models::{Service, Task};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs.
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show extra details provided to logs.
    #[arg(long)]
    pub details: bool,
    /// Do not include task IDs in output.
    #[arg(long)]
    pub no_task_ids: bool,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not neatly format logs.
    #[arg(long)]
    pub raw: bool,
    /// The service or task.
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

/// The query of the logs request: Docker's parameters (`details` only with
/// `--details`: without it the daemon writes the context itself), and
/// `raw`, `no-task-ids` and `no-trunc` for the daemon, which shapes that context.
fn query(args: &LogsArgs) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", args.tail.clone()),
    ];
    let flags = [
        ("follow", args.follow),
        ("timestamps", args.timestamps),
        ("details", args.details),
        ("raw", args.raw),
        ("no-task-ids", args.no_task_ids),
        ("no-trunc", args.no_trunc),
    ];
    query.extend(
        flags
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| (k, "1".to_string())),
    );
    query.extend(args.since.iter().map(|s| ("since", s.clone())));
    query
}

/// The logs path of a service, or else of a task, by that name or ID.
fn logs_path(client: &Client, target: &str) -> anyhow::Result<String> {
    let name = segment(target);
    match client.get::<Service>(&format!("/services/{name}")) {
        Ok(service) => return Ok(format!("/services/{}/logs", service.id.unwrap_or_default())),
        Err(e) if !super::is_not_found(&e) => return Err(e),
        Err(_) => {}
    }
    match client.get::<Task>(&format!("/tasks/{name}")) {
        Ok(task) => Ok(format!("/tasks/{}/logs", task.id.unwrap_or_default())),
        Err(e) if super::is_not_found(&e) => anyhow::bail!("no such task or service: {target}"),
        Err(e) => Err(e),
    }
}

/// `service logs`: until the stream ends (with `-f`, until the service goes or Ctrl-C).
pub fn run(client: &Client, args: LogsArgs) -> anyhow::Result<i32> {
    let base = logs_path(client, &args.target)?;
    let query = query(&args);
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = path(&base, &pairs);
    client.block_on(async {
        let response = client.send(Method::GET, &url, None::<&()>, &[]).await?;
        copy_body(response).await
    })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        logs: LogsArgs,
    }

    fn query_of(argv: &[&str]) -> String {
        let args = Cli::try_parse_from(std::iter::once("logs").chain(argv.iter().copied()))
            .unwrap()
            .logs;
        let query = query(&args);
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        path("/services/x/logs", &pairs)
    }

    #[test]
    fn flags_become_the_query() {
        assert_eq!(
            query_of(&["web"]),
            "/services/x/logs?stdout=1&stderr=1&tail=all"
        );
        assert_eq!(
            query_of(&["-f", "-n", "5", "-t", "--raw", "--no-task-ids", "--no-trunc", "web"]),
            "/services/x/logs?stdout=1&stderr=1&tail=5&follow=1&timestamps=1&raw=1&no-task-ids=1&no-trunc=1"
        );
    }
}
