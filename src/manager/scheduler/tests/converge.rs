//! Convergence: planning again after applying a plan changes nothing, over
//! hand-picked scenarios and over random sequences of cluster events.

use proptest::prelude::*;

use super::*;
use crate::model::{FailureAction, RestartCondition, UpdateOrder};

/// Random event sequences per run.
const CASES: u32 = 300;

/// A named change to a settled cluster.
type Scenario = (&'static str, fn(&mut Cluster));

#[test]
fn planning_again_after_applying_a_plan_changes_nothing() {
    let scenarios: Vec<Scenario> = vec![
        ("new services", |_| {}),
        ("a node down", |c| c.node_mut("n1").ready = false),
        ("a node drained", |c| {
            c.node_mut("n2").availability = Availability::Drain
        }),
        ("every node paused", |c| {
            for n in &mut c.nodes {
                n.availability = Availability::Pause;
            }
        }),
        ("scaled down", |c| {
            c.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: 1 }
        }),
        ("a service removed", |c| {
            c.services.retain(|s| s.id != "web")
        }),
        ("tasks ended", |c| {
            c.end("t1", TaskState::Failed);
            c.end("t5", TaskState::Complete);
        }),
        ("an update", |c| {
            c.update_template("web", |t| t.force_update += 1)
        }),
        ("a start-first update", |c| {
            c.service_mut("agent").spec.update.order = UpdateOrder::StartFirst;
            c.update_template("agent", |t| t.force_update += 1);
        }),
    ];
    for (name, event) in scenarios {
        let mut c = Cluster::new(nodes(3), vec![replicated("web", 4), global("agent")]);
        c.settle();
        event(&mut c);
        // `step` checks that a second plan at the same instant is empty.
        c.step();
        c.run();
        c.step();
        assert!(!c.tasks.is_empty() || name == "a service removed", "{name}");
    }
}

/// Something that happens to the cluster between two plans.
#[derive(Debug, Clone)]
enum Event {
    Down(usize),
    Up(usize),
    Availability(usize, Availability),
    /// Labels the node zone=west, which `web` avoids, or takes the label off.
    West(usize, bool),
    /// A fourth node joins, or leaves.
    Fourth(bool),
    /// The k-th live task ends by itself, as failed or complete.
    End(usize, TaskState),
    Scale(u64),
    Update(UpdateOrder, FailureAction),
    /// The restart policy changes (condition, attempts, window), no update.
    Policy(RestartCondition, u64, u64),
    Run,
    Wait(u64),
}

fn event() -> impl Strategy<Value = Event> {
    let availability = prop_oneof![
        Just(Availability::Active),
        Just(Availability::Pause),
        Just(Availability::Drain)
    ];
    let ended = prop_oneof![Just(TaskState::Failed), Just(TaskState::Complete)];
    let order = prop_oneof![Just(UpdateOrder::StopFirst), Just(UpdateOrder::StartFirst)];
    let condition = prop_oneof![
        Just(RestartCondition::Any),
        Just(RestartCondition::OnFailure),
        Just(RestartCondition::None)
    ];
    let action = prop_oneof![
        Just(FailureAction::Pause),
        Just(FailureAction::Continue),
        Just(FailureAction::Rollback)
    ];
    prop_oneof![
        (0..3usize).prop_map(Event::Down),
        (0..3usize).prop_map(Event::Up),
        (0..3usize, availability).prop_map(|(n, a)| Event::Availability(n, a)),
        (0..3usize, any::<bool>()).prop_map(|(n, west)| Event::West(n, west)),
        any::<bool>().prop_map(Event::Fourth),
        (0..8usize, ended).prop_map(|(k, state)| Event::End(k, state)),
        (0..6u64).prop_map(Event::Scale),
        (order, action).prop_map(|(o, a)| Event::Update(o, a)),
        (condition, 0..3u64, prop_oneof![Just(0u64), Just(5_000u64)])
            .prop_map(|(c, attempts, window)| Event::Policy(c, attempts, window)),
        Just(Event::Run),
        Just(Event::Run),
        Just(Event::Run),
        (0..8_000u64).prop_map(Event::Wait),
    ]
}

impl Cluster {
    fn happen(&mut self, event: &Event) {
        match *event {
            Event::Down(n) => self.nodes[n].ready = false,
            Event::Up(n) => self.nodes[n].ready = true,
            Event::Availability(n, a) => self.nodes[n].availability = a,
            Event::West(n, true) => self.nodes[n] = labelled(self.nodes[n].clone(), "zone", "west"),
            Event::West(n, false) => self.nodes[n].labels.clear(),
            Event::Fourth(true) if self.nodes.len() == 3 => self.nodes.push(node(4)),
            Event::Fourth(false) => self.nodes.truncate(3),
            Event::Fourth(_) => {}
            Event::End(k, state) => {
                let live: Vec<String> = self
                    .tasks
                    .iter()
                    .filter(|t| t.is_live() && t.status.state == TaskState::Running)
                    .map(|t| t.id.clone())
                    .collect();
                if let Some(id) = live.get(k % live.len().max(1)) {
                    self.end(id, state);
                }
            }
            Event::Scale(r) => {
                self.service_mut("web").spec.mode = ServiceMode::Replicated { replicas: r }
            }
            Event::Update(order, action) => {
                let web = self.service_mut("web");
                web.spec.update.order = order;
                web.spec.update.failure_action = action;
                web.spec.rollback.order = order;
                web.spec.rollback.failure_action = action;
                self.update_template("web", |t| t.force_update += 1)
            }
            Event::Policy(condition, max_attempts, window_ms) => {
                let restart = &mut self.service_mut("web").spec.task.restart;
                restart.condition = condition;
                restart.max_attempts = max_attempts;
                restart.window_ms = window_ms;
            }
            Event::Run => self.run(),
            Event::Wait(ms) => self.advance(ms),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_sequence_of_events_is_planned_idempotently(events in prop::collection::vec(event(), 1..40)) {
        let mut web = replicated("web", 3);
        web.spec.task.restart.delay_ms = 2_000;
        web.spec.task.constraints = vec!["node.labels.zone!=west".into()];
        web.spec.update.delay_ms = 1_000;
        let mut c = Cluster::new(nodes(3), vec![web, global("agent")]);
        for e in &events {
            c.happen(e);
            c.step();
            // Never two tasks meant to run in one slot, but a start-first pair.
            for s in 1..=6 {
                let meant = c
                    .tasks
                    .iter()
                    .filter(|t| t.service_id == "web" && t.slot == s && t.is_live())
                    .count();
                prop_assert!(meant <= 2, "slot {} after {:?}", s, e);
            }
            prop_assert!(c.tasks.iter().all(|t| t.slot <= c.services[0].spec.replicas().unwrap_or(0) || !t.is_live()));
        }
        // Once every node is back, active and unlabelled, tasks restart
        // again, and the update is left to finish (no failure rolls it back
        // to a spec that does not restart), the services converge.
        for n in &mut c.nodes {
            n.ready = true;
            n.availability = Availability::Active;
            n.labels.clear();
        }
        let web = c.service_mut("web");
        web.spec.update.failure_action = FailureAction::Continue;
        web.spec.rollback.failure_action = FailureAction::Continue;
        c.happen(&Event::Policy(RestartCondition::Any, 0, 0));
        for _ in 0..20 {
            c.advance(10_000);
            c.settle();
        }
        let replicas = c.services[0].spec.replicas().unwrap_or(0);
        prop_assert_eq!(c.live("web").len() as u64, replicas);
        prop_assert_eq!(c.live("agent").len(), c.nodes.len());
        prop_assert!(c.live("web").iter().all(|t| t.status.state == TaskState::Running));
    }
}
