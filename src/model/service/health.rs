//! Health checks (`--health-cmd`): what a service's tasks are checked with,
//! and the state their results lead to, as Docker keeps it in a
//! container's `State.Health`. Pure: the node runs the probes and feeds
//! each result to [`TaskHealth::record`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::ApiError;

/// Docker's default time between checks, and for one check to run (30 s).
pub const DEFAULT_HEALTH_INTERVAL_NS: u64 = 30_000_000_000;
/// Docker's default number of failures in a row that make a task unhealthy.
pub const DEFAULT_HEALTH_RETRIES: u64 = 3;
/// How many results Docker keeps (`State.Health.Log`).
pub const HEALTH_LOG_LENGTH: usize = 5;
/// How much of a probe's output Docker keeps, in bytes.
pub const HEALTH_OUTPUT_LIMIT: usize = 4096;
/// The shortest duration swarmkit accepts (0 is the default).
const MIN_DURATION_NS: u64 = 1_000_000;

/// `--health-*`: Docker's `HealthConfig`. Durations are in nanoseconds, as
/// Docker's API gives them (swarmkit refuses those under 1 ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["CMD-SHELL", command]`, `["CMD", program, args...]` or `["NONE"]`;
    /// empty inherits the image's check, and the host image has none.
    pub test: Vec<String>,
    /// 0: Docker's default (30 s).
    pub interval_ns: u64,
    /// 0: Docker's default (30 s).
    pub timeout_ns: u64,
    /// Failures in this time after the start do not count, until a check passes.
    pub start_period_ns: u64,
    /// 0: Docker's default (3).
    pub retries: u64,
}

impl HealthConfig {
    /// What a probe runs inside the task's container (a shell command runs
    /// as `/bin/sh -c`, as Docker runs it); none when there is no check.
    pub fn probe(&self) -> Option<Vec<String>> {
        let (kind, rest) = self.test.split_first()?;
        if rest.is_empty() {
            return None;
        }
        match kind.as_str() {
            "CMD" => Some(rest.to_vec()),
            "CMD-SHELL" => Some(
                ["/bin/sh", "-c"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(rest.iter().cloned())
                    .collect(),
            ),
            _ => None,
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_nanos(or_default(self.interval_ns, DEFAULT_HEALTH_INTERVAL_NS))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(or_default(self.timeout_ns, DEFAULT_HEALTH_INTERVAL_NS))
    }

    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period_ns)
    }

    pub fn retries(&self) -> u64 {
        or_default(self.retries, DEFAULT_HEALTH_RETRIES)
    }

    /// Checks the test's form and the durations, in swarmkit's words where it has them.
    pub fn check(&self) -> Result<(), ApiError> {
        if let Some((kind, rest)) = self.test.split_first() {
            match kind.as_str() {
                "NONE" => {}
                "CMD" | "CMD-SHELL" if rest.is_empty() || rest[0].is_empty() => {
                    return Err(ApiError::InvalidArgument(format!(
                        "ContainerSpec: Healthcheck.Test {kind} has no command: give one after it, as --health-cmd 'curl -f localhost:3000' does"
                    )))
                }
                "CMD" | "CMD-SHELL" => {}
                other => {
                    return Err(ApiError::InvalidArgument(format!(
                        "ContainerSpec: unknown health check type {other:?} in Healthcheck.Test: use CMD, CMD-SHELL or NONE"
                    )))
                }
            }
        }
        for (field, ns) in [
            ("Interval", self.interval_ns),
            ("Timeout", self.timeout_ns),
            ("StartPeriod", self.start_period_ns),
        ] {
            if ns != 0 && ns < MIN_DURATION_NS {
                return Err(ApiError::InvalidArgument(format!(
                    "ContainerSpec: {field} in HealthConfig cannot be less than 1ms"
                )));
            }
        }
        Ok(())
    }
}

fn or_default(value: u64, default: u64) -> u64 {
    match value {
        0 => default,
        v => v,
    }
}

/// Docker's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No check has passed yet.
    Starting,
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result (Docker's `HealthcheckResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// Unix milliseconds.
    pub start_ms: u64,
    pub end_ms: u64,
    /// 0 passes; anything else fails (-1: the probe timed out or could not run).
    pub exit_code: i32,
    pub output: String,
}

/// A task's health as its node keeps it: Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHealth {
    pub status: HealthStatus,
    /// Failures in a row.
    pub failing_streak: u64,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

impl Default for TaskHealth {
    fn default() -> Self {
        TaskHealth {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: Vec::new(),
        }
    }
}

impl TaskHealth {
    /// Takes in one result, as Docker's `handleProbeResult`: a pass makes
    /// the task healthy; a failure adds to the streak, and `retries` of them
    /// make it unhealthy, except that while no check has passed yet,
    /// failures that started within the start period (from `started_ms`)
    /// do not count. The log keeps the last [`HEALTH_LOG_LENGTH`] results.
    pub fn record(&mut self, result: HealthResult, config: &HealthConfig, started_ms: u64) {
        let passed = result.exit_code == 0;
        let in_start_period = self.status == HealthStatus::Starting
            && u128::from(result.start_ms.saturating_sub(started_ms))
                < config.start_period().as_millis();
        self.log.push(result);
        let extra = self.log.len().saturating_sub(HEALTH_LOG_LENGTH);
        self.log.drain(..extra);
        if passed {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !in_start_period {
            self.failing_streak += 1;
            if self.failing_streak >= config.retries() {
                self.status = HealthStatus::Unhealthy;
            }
        }
    }
}

/// A probe's output as Docker keeps it: at most [`HEALTH_OUTPUT_LIMIT`]
/// bytes, cut at a character boundary.
pub fn health_output(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(HEALTH_OUTPUT_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retries: u64, start_period_ms: u64) -> HealthConfig {
        HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
            interval_ns: 1_000_000_000,
            timeout_ns: 0,
            start_period_ns: start_period_ms * 1_000_000,
            retries,
        }
    }

    fn result(at_ms: u64, exit_code: i32) -> HealthResult {
        HealthResult {
            start_ms: at_ms,
            end_ms: at_ms + 5,
            exit_code,
            output: format!("run at {at_ms}"),
        }
    }

    /// The statuses after each result in turn, with the streak.
    fn run(config: &HealthConfig, results: &[(u64, i32)]) -> Vec<(HealthStatus, u64)> {
        let mut health = TaskHealth::default();
        results
            .iter()
            .map(|&(at, code)| {
                health.record(result(at, code), config, 0);
                (health.status, health.failing_streak)
            })
            .collect()
    }

    use HealthStatus::*;

    #[test]
    fn retries_failures_in_a_row_make_a_task_unhealthy_and_a_pass_heals_it() {
        let got = run(
            &config(2, 0),
            &[(1, 1), (2, 0), (3, 1), (4, 137), (5, 1), (6, 0)],
        );
        assert_eq!(
            got,
            [
                (Starting, 1),
                (Healthy, 0),
                (Healthy, 1),
                (Unhealthy, 2),
                (Unhealthy, 3),
                (Healthy, 0),
            ]
        );
        let defaults = run(&config(0, 0), &[(1, 1), (2, 1), (3, -1)]);
        assert_eq!(defaults.last(), Some(&(Unhealthy, 3)), "3 by default");
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_a_check_passes() {
        let got = run(
            &config(1, 1000),
            &[(100, 1), (999, 1), (1000, 1), (1500, 0)],
        );
        assert_eq!(
            got,
            [(Starting, 0), (Starting, 0), (Unhealthy, 1), (Healthy, 0)]
        );
        let passed_early = run(&config(1, 1000), &[(100, 0), (200, 1)]);
        assert_eq!(
            passed_early,
            [(Healthy, 0), (Unhealthy, 1)],
            "once a check has passed, the start period is over"
        );
    }

    #[test]
    fn the_log_keeps_the_last_five_results() {
        let mut health = TaskHealth::default();
        for at in 1..=7 {
            health.record(result(at, 0), &config(3, 0), 0);
        }
        let starts: Vec<u64> = health.log.iter().map(|r| r.start_ms).collect();
        assert_eq!(starts, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_test_says_what_a_probe_runs() {
        let probe = |test: &[&str]| {
            HealthConfig {
                test: test.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }
            .probe()
        };
        assert_eq!(
            probe(&["CMD-SHELL", "curl -f localhost"]),
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "curl -f localhost".into()
            ])
        );
        assert_eq!(
            probe(&["CMD", "true", "x"]),
            Some(vec!["true".into(), "x".into()])
        );
        for none in [&["NONE"][..], &[], &["CMD"]] {
            assert_eq!(probe(none), None, "{none:?}");
        }
        let defaults = HealthConfig::default();
        assert_eq!(defaults.interval(), Duration::from_secs(30));
        assert_eq!(defaults.timeout(), Duration::from_secs(30));
        assert_eq!(defaults.retries(), 3);
    }

    #[test]
    fn bad_tests_and_durations_are_refused_in_swarmkits_words() {
        let refusal = |c: HealthConfig| match c.check() {
            Err(ApiError::InvalidArgument(s)) => s,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let mut c = config(3, 0);
        c.interval_ns = 999_999;
        assert_eq!(
            refusal(c.clone()),
            "ContainerSpec: Interval in HealthConfig cannot be less than 1ms"
        );
        c.interval_ns = 0;
        c.start_period_ns = 1;
        assert_eq!(
            refusal(c.clone()),
            "ContainerSpec: StartPeriod in HealthConfig cannot be less than 1ms"
        );
        c.start_period_ns = 1_000_000;
        assert_eq!(c.check(), Ok(()));
        c.test = vec!["HTTP".into(), "/health".into()];
        assert!(refusal(c.clone()).contains("unknown health check type \"HTTP\""));
        c.test = vec!["CMD".into()];
        assert!(refusal(c.clone()).contains("Healthcheck.Test CMD has no command"));
        c.test = vec!["NONE".into()];
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn output_is_cut_as_docker_cuts_it() {
        assert_eq!(health_output(b"ok\n"), "ok\n");
        let long = "é".repeat(HEALTH_OUTPUT_LIMIT);
        let cut = health_output(long.as_bytes());
        assert_eq!(cut.len(), HEALTH_OUTPUT_LIMIT);
    }
}
