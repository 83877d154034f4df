//! `--health-*` and `--no-healthcheck`: the health check flags `service
//! create` turns into a `HealthConfig` (Docker's `toHealthConfig`) and
//! `service update` applies to the one the service has (`updateHealthcheck`).

use super::flags::parse_duration;
use crate::api::models::{HealthConfig, TaskSpecContainerSpec};

/// The health check flags of `service create` and `update`.
#[derive(Debug, Default, clap::Args)]
pub struct HealthFlags {
    /// Command to run to check health.
    #[arg(long, value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long, value_name = "duration", value_parser = parse_duration, allow_hyphen_values = true)]
    pub health_interval: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long, value_name = "duration", value_parser = parse_duration, allow_hyphen_values = true)]
    pub health_timeout: Option<i64>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before counting retries towards unstable (ms|s|m|h).
    #[arg(long, value_name = "duration", value_parser = parse_duration, allow_hyphen_values = true)]
    pub health_start_period: Option<i64>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
}

const CONFLICT: &str = "--no-healthcheck conflicts with --health-* options";

/// A value as Go's `omitempty` sends it: none for zero.
fn set(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

impl HealthFlags {
    fn any_health_flag(&self) -> bool {
        self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
    }

    /// `service create`'s health check: `NONE` for `--no-healthcheck`, none
    /// without the flags, as Docker 20.10's `toHealthConfig`.
    pub fn to_config(&self) -> anyhow::Result<Option<HealthConfig>> {
        let cmd = self.health_cmd.as_deref().unwrap_or("");
        let retries = self.health_retries.unwrap_or(0);
        let given = !cmd.is_empty()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_start_period.is_some()
            || retries != 0;
        if self.no_healthcheck {
            if given {
                anyhow::bail!(CONFLICT);
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !given {
            return Ok(None);
        }
        if retries < 0 {
            anyhow::bail!("--health-retries cannot be negative");
        }
        Ok(Some(HealthConfig {
            test: (!cmd.is_empty()).then(|| vec!["CMD-SHELL".into(), cmd.into()]),
            interval: self.health_interval.and_then(set),
            timeout: self.health_timeout.and_then(set),
            retries: set(retries),
            start_period: self.health_start_period.and_then(set),
            start_interval: None,
        }))
    }

    /// `service update`: the flags given applied to the container's health
    /// check, as Docker 20.10's `updateHealthcheck`.
    pub fn edit(&self, container: &mut TaskSpecContainerSpec) -> anyhow::Result<()> {
        if !self.no_healthcheck && !self.any_health_flag() {
            return Ok(());
        }
        if self.no_healthcheck {
            if self.any_health_flag() {
                anyhow::bail!(CONFLICT);
            }
            container.health_check = Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            });
            return Ok(());
        }
        let health = container.health_check.get_or_insert_with(Default::default);
        if health
            .test
            .as_ref()
            .and_then(|t| t.first())
            .map(String::as_str)
            == Some("NONE")
        {
            health.test = None;
        }
        if let Some(interval) = self.health_interval {
            health.interval = set(interval);
        }
        if let Some(timeout) = self.health_timeout {
            health.timeout = set(timeout);
        }
        if let Some(period) = self.health_start_period {
            health.start_period = set(period);
        }
        if let Some(retries) = self.health_retries {
            health.retries = set(retries);
        }
        if let Some(cmd) = &self.health_cmd {
            health.test = (!cmd.is_empty()).then(|| vec!["CMD-SHELL".into(), cmd.clone()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        health: HealthFlags,
    }

    fn flags(argv: &[&str]) -> HealthFlags {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied()))
            .unwrap()
            .health
    }

    fn created(argv: &[&str]) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(flags(argv).to_config()?).unwrap())
    }

    #[test]
    fn create_sends_what_docker_20_10_sends() {
        let all = created(&[
            "--health-cmd",
            "curl -sf localhost:3000/health",
            "--health-interval",
            "2s",
            "--health-timeout",
            "1s",
            "--health-retries",
            "2",
            "--health-start-period",
            "500ms",
        ])
        .unwrap();
        assert_eq!(
            all,
            json!({
                "Test": ["CMD-SHELL", "curl -sf localhost:3000/health"],
                "Interval": 2_000_000_000i64,
                "Timeout": 1_000_000_000i64,
                "Retries": 2,
                "StartPeriod": 500_000_000i64
            })
        );
        assert_eq!(created(&[]).unwrap(), serde_json::Value::Null);
        assert_eq!(
            created(&["--health-retries", "0"]).unwrap(),
            serde_json::Value::Null,
            "0 retries are no setting"
        );
        assert_eq!(
            created(&["--health-interval", "5s"]).unwrap(),
            json!({ "Interval": 5_000_000_000i64 })
        );
        assert_eq!(
            created(&["--no-healthcheck"]).unwrap(),
            json!({ "Test": ["NONE"] })
        );
    }

    #[test]
    fn contradictions_and_negatives_are_refused_as_docker_refuses_them() {
        let err = created(&["--no-healthcheck", "--health-cmd", "true"]).unwrap_err();
        assert_eq!(err.to_string(), CONFLICT);
        let err = created(&["--health-retries", "-1"]).unwrap_err();
        assert_eq!(err.to_string(), "--health-retries cannot be negative");
        let negative = Cli::try_parse_from(["x", "--health-interval", "-1s"]).unwrap_err();
        assert!(
            negative.to_string().contains("duration cannot be negative"),
            "{negative}"
        );
    }

    fn updated(current: serde_json::Value, argv: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut container: TaskSpecContainerSpec =
            serde_json::from_value(json!({ "Image": "host", "HealthCheck": current })).unwrap();
        flags(argv).edit(&mut container)?;
        Ok(serde_json::to_value(container).unwrap()["HealthCheck"].clone())
    }

    #[test]
    fn update_edits_the_services_check() {
        let current = json!({ "Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000i64 });
        assert_eq!(updated(current.clone(), &[]).unwrap(), current);
        assert_eq!(
            updated(
                current.clone(),
                &["--health-retries", "5", "--health-interval", "0s"]
            )
            .unwrap(),
            json!({ "Test": ["CMD-SHELL", "true"], "Retries": 5 })
        );
        assert_eq!(
            updated(current.clone(), &["--health-cmd", "false"]).unwrap(),
            json!({ "Test": ["CMD-SHELL", "false"], "Interval": 2_000_000_000i64 })
        );
        assert_eq!(
            updated(current.clone(), &["--no-healthcheck"]).unwrap(),
            json!({ "Test": ["NONE"] })
        );
        assert_eq!(
            updated(json!({ "Test": ["NONE"] }), &["--health-timeout", "3s"]).unwrap(),
            json!({ "Timeout": 3_000_000_000i64 }),
            "a check given again is no longer NONE"
        );
        assert_eq!(
            updated(serde_json::Value::Null, &["--health-cmd", "true"]).unwrap(),
            json!({ "Test": ["CMD-SHELL", "true"] })
        );
        let err = updated(current, &["--no-healthcheck", "--health-retries", "1"]).unwrap_err();
        assert_eq!(err.to_string(), CONFLICT);
    }
}
