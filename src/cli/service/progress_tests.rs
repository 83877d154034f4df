//! Unit tests of the progress display: Docker's lines for replicated and
//! global services from fixed polls, and how they are drawn.

use super::super::converge::Screen;
use super::*;

fn service(mode: serde_json::Value, update: Option<(&str, &str)>) -> Service {
    let mut doc = serde_json::json!({"ID": "svc1", "Spec": {"Name": "web", "Mode": mode}});
    if let Some((state, message)) = update {
        doc["UpdateStatus"] = serde_json::json!({"State": state, "Message": message});
    }
    serde_json::from_value(doc).unwrap()
}

fn replicated(n: u64) -> Service {
    service(serde_json::json!({"Replicated": {"Replicas": n}}), None)
}

fn task(slot: i64, node: &str, state: &str, err: &str) -> Task {
    serde_json::from_value(serde_json::json!({
        "ID": format!("t{slot}{node}{state}"),
        "Slot": slot,
        "NodeID": node,
        "DesiredState": "running",
        "Status": {"State": state, "Err": err},
    }))
    .unwrap()
}

fn nodes(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// The lines a non-terminal shows for these events, from a fresh screen.
fn lines(screen: &mut Screen, events: &[Event]) -> Vec<String> {
    let text: String = events.iter().map(|e| screen.draw(e)).collect();
    text.lines().map(str::to_string).collect()
}

#[test]
fn replicated_progress_as_docker() {
    let mut watch = Watch::default();
    let mut screen = Screen::new(false);
    let live = nodes(&["n1", "n2"]);
    let svc = replicated(3);
    let (events, outcome) = watch.step(0, &svc, &[], &live);
    assert_eq!(outcome, Outcome::Waiting);
    assert_eq!(
        lines(&mut screen, &events),
        ["overall progress: 0 out of 3 tasks", "1/3:", "2/3:", "3/3:"]
    );
    let tasks = [
        task(1, "n1", "running", ""),
        task(2, "n2", "preparing", ""),
        task(3, "", "pending", ""),
    ];
    let (events, _) = watch.step(200, &svc, &tasks, &live);
    assert_eq!(
        lines(&mut screen, &events),
        [
            format!("1/3: running   [{}>]", "=".repeat(50)),
            format!("2/3: preparing [{}>{}]", "=".repeat(33), " ".repeat(17)),
            format!("3/3: pending   [{}>{}]", "=".repeat(16), " ".repeat(34)),
            "overall progress: 1 out of 3 tasks".to_string(),
        ]
    );
    let all = [
        task(1, "n1", "running", ""),
        task(2, "n2", "running", ""),
        task(3, "n1", "running", ""),
        task(3, "n2", "failed", "task: non-zero exit (1)"),
    ];
    let (events, _) = watch.step(400, &svc, &all, &live);
    let shown = lines(&mut screen, &events);
    assert_eq!(
        shown[shown.len() - 2..],
        [
            "overall progress: 3 out of 3 tasks",
            "verify: Waiting 5 seconds to verify that tasks are stable...",
        ]
    );
    let (events, outcome) = watch.step(2_500, &svc, &all, &live);
    assert_eq!(outcome, Outcome::Waiting);
    assert_eq!(
        lines(&mut screen, &events),
        ["verify: Waiting 3 seconds to verify that tasks are stable..."],
        "only the changed line"
    );
    let (events, outcome) = watch.step(5_400, &svc, &all, &live);
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(lines(&mut screen, &events), ["verify: Service converged"]);
}

#[test]
fn a_failure_after_converging_restarts_the_wait() {
    let mut watch = Watch::default();
    let live = nodes(&["n1"]);
    let svc = replicated(1);
    let (events, _) = watch.step(0, &svc, &[task(1, "n1", "running", "")], &live);
    assert!(events.contains(&progress("overall progress", "1 out of 1 tasks", None)));
    let broken = [task(1, "n1", "failed", "task: non-zero exit (1)")];
    let (events, outcome) = watch.step(200, &svc, &broken, &live);
    assert_eq!(outcome, Outcome::Waiting);
    assert!(
        events.contains(&progress("1/1", "task: non-zero exit (1)", None)),
        "{events:?}"
    );
    assert!(events.contains(&progress("verify", "Detected task failure", None)));
    let down = [task(1, "n9", "running", "")];
    let (events, _) = watch.step(400, &svc, &down, &live);
    assert!(
        events.contains(&progress("overall progress", "0 out of 1 tasks", None)),
        "a task on a down node does not count"
    );
}

#[test]
fn global_progress_is_per_node() {
    let mut watch = Watch::default();
    let mut screen = Screen::new(false);
    let svc = service(serde_json::json!({"Global": {}}), None);
    let live = nodes(&["abcdefabcdef0123", "0123456789abcdef"]);
    let (events, _) = watch.step(0, &svc, &[], &live);
    assert_eq!(
        lines(&mut screen, &events),
        ["overall progress: waiting for new tasks"]
    );
    let tasks = [
        task(0, "abcdefabcdef0123", "running", ""),
        task(0, "0123456789abcdef", "starting", ""),
    ];
    let (events, _) = watch.step(200, &svc, &tasks, &live);
    assert_eq!(
        lines(&mut screen, &events),
        [
            "overall progress: 0 out of 2 tasks".to_string(),
            format!(
                "0123456789ab: starting  [{}>{}]",
                "=".repeat(44),
                " ".repeat(6)
            ),
            format!("abcdefabcdef: running   [{}>]", "=".repeat(50)),
            "overall progress: 1 out of 2 tasks".to_string(),
        ]
    );
}

#[test]
fn update_states_end_the_watch_in_dockers_words() {
    let mode = serde_json::json!({"Replicated": {"Replicas": 1}});
    let live = nodes(&["n1"]);
    let paused = service(
        mode.clone(),
        Some(("paused", "update paused due to failure")),
    );
    let (_, outcome) = Watch::default().step(0, &paused, &[], &live);
    assert_eq!(
        outcome,
        Outcome::Failed("service update paused: update paused due to failure".into())
    );
    let paused = service(mode.clone(), Some(("rollback_paused", "why")));
    let (_, outcome) = Watch::default().step(0, &paused, &[], &live);
    assert_eq!(
        outcome,
        Outcome::Failed("service rollback paused: why".into())
    );

    let mut watch = Watch::default();
    let started = service(
        mode.clone(),
        Some(("rollback_started", "manually requested rollback")),
    );
    let (events, _) = watch.step(0, &started, &[], &live);
    assert_eq!(
        events[0],
        progress("rollback", "manually requested rollback", None)
    );
    assert_eq!(
        events[1],
        progress(
            "overall progress",
            "rolling back update: 0 out of 1 tasks",
            None
        )
    );
    let done = service(
        mode.clone(),
        Some(("rollback_completed", "rollback completed")),
    );
    let running = [task(1, "n1", "running", "")];
    let (events, _) = watch.step(200, &done, &running, &live);
    assert!(
        events.contains(&progress("1/1", "running  ", Some(0))),
        "bars run backwards: {events:?}"
    );
    let (events, outcome) = watch.step(5_200, &done, &running, &live);
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        events,
        [
            progress("verify", "Service converged", None),
            Event::Message {
                id: "rollback".into(),
                text: "rollback completed".into()
            },
        ]
    );
    let completed = service(mode, Some(("completed", "update completed")));
    let (_, outcome) = Watch::default().step(0, &completed, &[], &live);
    assert_eq!(
        outcome,
        Outcome::Done,
        "an update swarm finished ends the watch"
    );
}

#[test]
fn long_errors_are_cut_to_one_short_line() {
    let long = "x".repeat(80) + "\nmore";
    let cut = trunc_error(&long);
    assert_eq!(cut.chars().count(), 75);
    assert!(cut.ends_with('…'));
    assert_eq!(trunc_error("a\nb"), "a b");
}
