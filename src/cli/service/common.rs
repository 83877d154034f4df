//! The flags `service create` and `service update` share (Docker's
//! `addServiceFlags`): restart policy, update and rollback configs,
//! entrypoint, stop grace period, endpoint mode, replicas, detach and quiet,
//! and the edits they make to a spec, from swarm's defaults where unset;
//! the health check flags (`health.rs`), which create and update apply apart.

use super::flags::{self, parse_duration, parse_replicas};
use super::health::HealthFlags;
use crate::api::models::{
    ServiceSpec, ServiceSpecRollbackConfig, ServiceSpecUpdateConfig, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

/// Swarm's default restart delay and update monitor period (5 s).
const FIVE_SECONDS: i64 = 5_000_000_000;

/// The flags `service create` and `service update` share (Docker's `addServiceFlags`).
#[derive(Debug, Default, clap::Args)]
pub struct ServiceFlags {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Number of tasks.
    #[arg(long, value_parser = parse_replicas, allow_hyphen_values = true)]
    pub replicas: Option<u64>,
    /// Maximum number of tasks per node (default 0 = unlimited).
    #[arg(long)]
    pub replicas_max_per_node: Option<u64>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long, value_name = "COMMAND")]
    pub entrypoint: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stop_grace_period: Option<i64>,
    /// Endpoint mode (vip or dnsrr).
    #[arg(long, value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any").
    #[arg(long, value_parser = ["none", "on-failure", "any"])]
    pub restart_condition: Option<String>,
    /// Delay between restart attempts (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub restart_delay: Option<i64>,
    /// Maximum number of restarts before giving up.
    #[arg(long)]
    pub restart_max_attempts: Option<u64>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub restart_window: Option<i64>,
    /// Maximum number of tasks updated simultaneously (0 to update all at once).
    #[arg(long)]
    pub update_parallelism: Option<u64>,
    /// Delay between updates (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub update_delay: Option<i64>,
    /// Action on update failure ("pause", "continue", "rollback").
    #[arg(long, value_parser = ["pause", "continue", "rollback"])]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub update_monitor: Option<i64>,
    /// Failure rate to tolerate during an update.
    #[arg(long)]
    pub update_max_failure_ratio: Option<f64>,
    /// Update order ("start-first", "stop-first").
    #[arg(long, value_parser = ["start-first", "stop-first"])]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once).
    #[arg(long)]
    pub rollback_parallelism: Option<u64>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub rollback_delay: Option<i64>,
    /// Action on rollback failure ("pause", "continue").
    #[arg(long, value_parser = ["pause", "continue"])]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub rollback_monitor: Option<i64>,
    /// Failure rate to tolerate during a rollback.
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<f64>,
    /// Rollback order ("start-first", "stop-first").
    #[arg(long, value_parser = ["start-first", "stop-first"])]
    pub rollback_order: Option<String>,
    #[command(flatten)]
    pub health: HealthFlags,
}

/// What the `--update-*` (or `--rollback-*`) flags set.
struct ConfigEdit<'a> {
    parallelism: Option<u64>,
    delay: Option<i64>,
    failure_action: Option<&'a str>,
    monitor: Option<i64>,
    max_failure_ratio: Option<f64>,
    order: Option<&'a str>,
}

/// An update config with the flags that were given applied, starting from
/// swarm's defaults when there was none (Docker's `updateConfigFromDefaults`);
/// untouched without such flags.
macro_rules! edit_config {
    ($name:ident, $config:ident) => {
        fn $name(current: Option<$config>, edit: &ConfigEdit) -> anyhow::Result<Option<$config>> {
            let given = edit.parallelism.is_some()
                || edit.delay.is_some()
                || edit.failure_action.is_some()
                || edit.monitor.is_some()
                || edit.max_failure_ratio.is_some()
                || edit.order.is_some();
            if !given {
                return Ok(current);
            }
            let mut c = current.unwrap_or_else(|| $config {
                parallelism: Some(1),
                failure_action: "pause".parse().ok(),
                monitor: Some(FIVE_SECONDS),
                max_failure_ratio: Some(0.0),
                order: "stop-first".parse().ok(),
                ..Default::default()
            });
            c.parallelism = edit.parallelism.map(|p| p as i64).or(c.parallelism);
            c.delay = edit.delay.or(c.delay);
            c.monitor = edit.monitor.or(c.monitor);
            c.max_failure_ratio = edit.max_failure_ratio.or(c.max_failure_ratio);
            if let Some(action) = edit.failure_action {
                c.failure_action = Some(action.parse().map_err(anyhow::Error::msg)?);
            }
            if let Some(order) = edit.order {
                c.order = Some(order.parse().map_err(anyhow::Error::msg)?);
            }
            Ok(Some(c))
        }
    };
}

edit_config!(edit_update_config, ServiceSpecUpdateConfig);
edit_config!(edit_rollback_config, ServiceSpecRollbackConfig);

impl ServiceFlags {
    /// Applies the shared flags to a spec, as both `create` and Docker's
    /// `updateService` do: restart policy, update and rollback configs,
    /// entrypoint, stop grace period and endpoint mode.
    pub fn apply(&self, spec: &mut ServiceSpec) -> anyhow::Result<()> {
        let task = spec.task_template.get_or_insert_with(Default::default);
        let container = task.container_spec.get_or_insert_with(Default::default);
        if let Some(entrypoint) = &self.entrypoint {
            container.command = Some(flags::split_words(entrypoint).map_err(anyhow::Error::msg)?);
        }
        container.stop_grace_period = self.stop_grace_period.or(container.stop_grace_period);
        if let Some(max) = self.replicas_max_per_node {
            let placement = task.placement.get_or_insert_with(Default::default);
            placement.max_replicas = Some(i64::try_from(max).unwrap_or(i64::MAX));
        }
        task.restart_policy = self.restart(task.restart_policy.take())?;
        let update = ConfigEdit {
            parallelism: self.update_parallelism,
            delay: self.update_delay,
            failure_action: self.update_failure_action.as_deref(),
            monitor: self.update_monitor,
            max_failure_ratio: self.update_max_failure_ratio,
            order: self.update_order.as_deref(),
        };
        spec.update_config = edit_update_config(spec.update_config.take(), &update)?;
        let rollback = ConfigEdit {
            parallelism: self.rollback_parallelism,
            delay: self.rollback_delay,
            failure_action: self.rollback_failure_action.as_deref(),
            monitor: self.rollback_monitor,
            max_failure_ratio: self.rollback_max_failure_ratio,
            order: self.rollback_order.as_deref(),
        };
        spec.rollback_config = edit_rollback_config(spec.rollback_config.take(), &rollback)?;
        if let Some(mode) = &self.endpoint_mode {
            let endpoint = spec.endpoint_spec.get_or_insert_with(Default::default);
            endpoint.mode = Some(mode.parse().map_err(anyhow::Error::msg)?);
        }
        Ok(())
    }

    /// The restart policy with the `--restart-*` flags applied, from swarm's
    /// default (any, 5 s, no limit) when there was none.
    fn restart(
        &self,
        current: Option<TaskSpecRestartPolicy>,
    ) -> anyhow::Result<Option<TaskSpecRestartPolicy>> {
        let given = self.restart_condition.is_some()
            || self.restart_delay.is_some()
            || self.restart_max_attempts.is_some()
            || self.restart_window.is_some();
        if !given {
            return Ok(current);
        }
        let mut policy = current.unwrap_or(TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
            delay: Some(FIVE_SECONDS),
            max_attempts: Some(0),
            window: None,
        });
        if let Some(condition) = &self.restart_condition {
            policy.condition = Some(condition.parse().map_err(anyhow::Error::msg)?);
        }
        policy.delay = self.restart_delay.or(policy.delay);
        policy.max_attempts = self
            .restart_max_attempts
            .map(|n| n as i64)
            .or(policy.max_attempts);
        policy.window = self.restart_window.or(policy.window);
        Ok(Some(policy))
    }
}
