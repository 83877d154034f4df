//! Health checks in Docker's `ServiceSpec`: `--health-*` as the docker
//! 20.10 client sends them (`Healthcheck`), read and shown back the same,
//! `--no-healthcheck` kept, and bad ones refused in swarmkit's words.

use serde_json::json;

use super::super::docker_spec;
use super::tests::{refusal, web_spec, with};
use super::*;

/// `docker service create --health-cmd 'test -f /tmp/ok' --health-interval
/// 2s --health-timeout 1s --health-retries 2 --health-start-period 500ms`
/// (docker 20.10 sends `Healthcheck`, Go's `omitempty` leaving out zeros).
#[test]
fn the_docker_clis_health_flags_read_as_our_health_check() {
    let body = with(
        "/TaskTemplate/ContainerSpec/Healthcheck",
        json!({
            "Test": ["CMD-SHELL", "test -f /tmp/ok"],
            "Interval": 2_000_000_000u64,
            "Timeout": 1_000_000_000u64,
            "StartPeriod": 500_000_000u64,
            "Retries": 2
        }),
    );
    let spec = service_spec(body).unwrap();
    let health = HealthConfig {
        test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
        interval_ns: 2_000_000_000,
        timeout_ns: 1_000_000_000,
        start_period_ns: 500_000_000,
        retries: 2,
    };
    assert_eq!(spec.task.health.as_ref(), Some(&health));
    assert!(spec.task.health_check().is_some());
    let shown = serde_json::to_value(docker_spec(&spec)).unwrap();
    assert_eq!(
        shown["TaskTemplate"]["ContainerSpec"]["HealthCheck"],
        json!({
            "Test": ["CMD-SHELL", "test -f /tmp/ok"],
            "Interval": 2_000_000_000u64,
            "Timeout": 1_000_000_000u64,
            "StartPeriod": 500_000_000u64,
            "Retries": 2
        })
    );
    assert_eq!(
        service_spec(shown).unwrap(),
        spec,
        "inspect reads back alike"
    );

    let cmd_only = with(
        "/TaskTemplate/ContainerSpec/Healthcheck",
        json!({ "Test": ["CMD", "curl", "-f", "localhost:3000"] }),
    );
    let spec = service_spec(cmd_only).unwrap();
    let check = spec.task.health_check().unwrap();
    assert_eq!(check.probe().unwrap(), ["curl", "-f", "localhost:3000"]);
    assert_eq!(check.interval(), std::time::Duration::from_secs(30));

    let off = with(
        "/TaskTemplate/ContainerSpec/Healthcheck",
        json!({ "Test": ["NONE"] }),
    );
    let spec = service_spec(off).unwrap();
    assert_eq!(
        spec.task.health.as_ref().map(|h| h.test.clone()),
        Some(vec!["NONE".to_string()]),
        "--no-healthcheck is kept, so inspect shows it"
    );
    assert!(spec.task.health_check().is_none());
    let shown = serde_json::to_value(docker_spec(&web_spec())).unwrap();
    assert!(shown["TaskTemplate"]["ContainerSpec"]
        .get("HealthCheck")
        .is_none());
}

#[test]
fn bad_health_checks_are_refused_in_swarmkits_words() {
    let refused =
        |h: serde_json::Value| refusal(with("/TaskTemplate/ContainerSpec/Healthcheck", h));
    assert_eq!(
        refused(json!({ "Test": ["CMD-SHELL", "true"], "Interval": 500_000 })),
        "ContainerSpec: Interval in HealthConfig cannot be less than 1ms"
    );
    assert_eq!(
        refused(json!({ "Test": ["CMD-SHELL", "true"], "Timeout": -1 })),
        "ContainerSpec: Timeout in HealthConfig cannot be less than 1ms"
    );
    assert_eq!(
        refused(json!({ "Test": ["CMD-SHELL", "true"], "Retries": -1 })),
        "ContainerSpec: Retries in HealthConfig cannot be negative"
    );
    assert!(refused(json!({ "Test": ["HTTP", "/"] })).contains("unknown health check type"));
    assert!(refused(json!({ "Test": ["CMD-SHELL"] })).contains("has no command"));
}
