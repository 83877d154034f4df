//! A task container's health check: a probe run inside the container's
//! namespaces (as `exec` runs a command) every interval, killed at the
//! timeout, and the state the results lead to (`TaskHealth::record`), kept
//! in `health.json` in the container's directory, where `inspect` and `ps`
//! read it and the task runner reports it.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use super::{Container, Containers};
use crate::model::{
    health_output, now_millis, ApiError, HealthConfig, HealthResult, HealthStatus, TaskHealth,
};
use crate::runtime::{self, ExecSpec, Process};

const HEALTH: &str = "health.json";

impl Containers {
    /// A container's health, once its check has begun.
    pub fn health(&self, id: &str) -> Option<TaskHealth> {
        let bytes = std::fs::read(self.dir(id).join(HEALTH)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn record_health(&self, id: &str, health: &TaskHealth) -> Result<(), ApiError> {
        let dir = self.dir(id);
        let bytes = serde_json::to_vec(health).map_err(ApiError::internal)?;
        let tmp = dir.join("health.json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, dir.join(HEALTH)))
            .map_err(|e| ApiError::Internal(format!("cannot record the health of {id}: {e}")))
    }
}

/// The health checks running, by container ID; dropped, they stop.
#[derive(Default)]
pub struct HealthMonitors(HashMap<String, tokio::task::AbortHandle>);

impl HealthMonitors {
    /// Runs a check for each `(container ID, config)` wanted, and no other.
    pub fn follow(&mut self, containers: &Arc<Containers>, wanted: Vec<(&str, &HealthConfig)>) {
        let wanted: HashMap<&str, &HealthConfig> = wanted.into_iter().collect();
        self.0.retain(|id, handle| {
            let keep = wanted.contains_key(id.as_str());
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, config) in wanted {
            if self.0.contains_key(id) {
                continue;
            }
            let Ok(view) = containers.find(id) else {
                continue;
            };
            let run = monitor(containers.clone(), view.container, config.clone());
            self.0
                .insert(id.to_string(), tokio::spawn(run).abort_handle());
        }
    }

    pub fn clear(&mut self) {
        for (_, handle) in self.0.drain() {
            handle.abort();
        }
    }
}

impl Drop for HealthMonitors {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Checks `container` with `config` until its process ends: starting (or
/// where a daemon restart left it), then a probe every interval. Failures
/// in the start period are counted from the container's start.
async fn monitor(containers: Arc<Containers>, container: Container, config: HealthConfig) {
    let started_ms = container.started.saturating_mul(1000);
    let mut health = containers.health(&container.id).unwrap_or_default();
    let save = |health: &TaskHealth| {
        if let Err(e) = containers.record_health(&container.id, health) {
            tracing::warn!(container = %container.name, "{e}");
        }
    };
    save(&health);
    loop {
        tokio::time::sleep(config.interval()).await;
        if !container.process.alive() {
            return;
        }
        let result = probe(&container, &config).await;
        if !container.process.alive() {
            return;
        }
        let before = health.status;
        if result.exit_code != 0 {
            tracing::debug!(container = %container.name, code = result.exit_code, output = %result.output.trim_end(), "health check failed");
        }
        health.record(result, &config, started_ms);
        if health.status != before {
            let level = health.status.as_str();
            match health.status {
                HealthStatus::Unhealthy => {
                    tracing::warn!(container = %container.name, streak = health.failing_streak, "task is {level}")
                }
                _ => tracing::info!(container = %container.name, "task is {level}"),
            }
        }
        save(&health);
    }
}

/// One run of the check, timed.
async fn probe(container: &Container, config: &HealthConfig) -> HealthResult {
    let start_ms = now_millis();
    let spec = ExecSpec {
        cmd: config.probe().unwrap_or_default(),
        env: container.env.clone(),
        working_dir: None,
        hostname: container.hostname().to_string(),
    };
    let (exit_code, output) = run(&container.process, &spec, config.timeout()).await;
    HealthResult {
        start_ms,
        end_ms: now_millis(),
        exit_code,
        output,
    }
}

/// The probe's exit code and output (stdout, then stderr); a probe that
/// cannot run or outlives `timeout` (killed) is -1, with why, as Docker has it.
async fn run(process: &Process, spec: &ExecSpec, timeout: Duration) -> (i32, String) {
    let mut command = match runtime::exec_command(process, spec) {
        Ok(command) => command,
        Err(e) => return (-1, format!("{e:#}")),
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = runtime::spawn_failure_code(&e).unwrap_or(-1);
            return (code, format!("cannot run {:?}: {e}", spec.cmd.join(" ")));
        }
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let mut text = out.stdout;
            text.extend_from_slice(&out.stderr);
            (runtime::exit_code_of(out.status), health_output(&text))
        }
        Ok(Err(e)) => (-1, format!("cannot wait for the health check: {e}")),
        Err(_) => (-1, format!("Health check exceeded timeout ({timeout:?})")),
    }
}
