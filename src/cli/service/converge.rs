//! Waiting for a service to converge: [`wait`] polls the daemon every
//! 200 ms, feeds each poll to the pure [`Watch`], and a [`Screen`] draws its
//! events as Docker's jsonmessage does (in place on a terminal, a line per
//! change otherwise).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::super::client::{path, segment, Client};
use super::progress::{Event, Outcome, Watch};
use crate::api::models::{NodeState, Service, Task};
use crate::api::NodeDoc;
use crate::model::escape;

/// The steps of a task's bar (new to running).
const MAX_PROGRESS: f64 = 9.0;

/// Docker's progress bar for `current` of 9 steps, 50 characters wide.
fn bar(current: i64) -> String {
    let percent = (current as f64 / MAX_PROGRESS * 100.0) as i64 / 2;
    let filled = percent.clamp(0, 50) as usize;
    format!("[{}>{}] ", "=".repeat(filled), " ".repeat(50 - filled))
}

/// Draws events: on a terminal each ID keeps its line and is redrawn in
/// place (cursor up, clear line, cursor down, as Docker's jsonmessage); on
/// anything else a line is printed only when it changes.
#[derive(Debug)]
pub struct Screen {
    tty: bool,
    ids: Vec<String>,
    shown: HashMap<String, String>,
}

impl Screen {
    pub fn new(tty: bool) -> Screen {
        Screen {
            tty,
            ids: Vec::new(),
            shown: HashMap::new(),
        }
    }

    /// What to write for one event.
    pub fn draw(&mut self, event: &Event) -> String {
        match event {
            Event::Progress { id, action, bar: b } => {
                let text = format!(
                    "{id}: {} {}",
                    escape(action),
                    b.map(bar).unwrap_or_default()
                );
                if !self.tty {
                    let line = text.trim_end().to_string();
                    if self.shown.get(id) == Some(&line) {
                        return String::new();
                    }
                    self.shown.insert(id.clone(), line.clone());
                    return format!("{line}\n");
                }
                let (index, new) = match self.ids.iter().position(|i| i == id) {
                    Some(i) => (i, ""),
                    None => {
                        self.ids.push(id.clone());
                        (self.ids.len() - 1, "\n")
                    }
                };
                let up = self.ids.len() - index;
                format!("{new}\x1b[{up}A\x1b[2K\r{text}\r\x1b[{up}B")
            }
            Event::Message { id, text } => {
                self.ids.clear();
                match id.as_str() {
                    "" => format!("{}\n", escape(text)),
                    id => format!("{id}: {}\n", escape(text)),
                }
            }
        }
    }
}

/// The nodes whose tasks count: all but those down.
fn active_nodes(nodes: &[NodeDoc]) -> HashSet<String> {
    nodes
        .iter()
        .filter(|n| n.node.status.as_ref().and_then(|s| s.state) != Some(NodeState::DOWN))
        .filter_map(|n| n.node.id.clone())
        .collect()
}

/// Polls `service` until it converges (or its update pauses: an error),
/// showing the progress unless `quiet`. Ctrl-C stops the watch, not the
/// update, and says so as Docker does.
pub fn wait(client: &Client, service: &str, quiet: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = client.block_on(async { signal(SignalKind::interrupt()) })?;
    let stdout = std::io::stdout();
    let mut screen = Screen::new(stdout.is_terminal());
    let mut show = |events: &[Event]| -> std::io::Result<()> {
        if quiet {
            return Ok(());
        }
        let mut out = stdout.lock();
        for event in events {
            out.write_all(screen.draw(event).as_bytes())?;
        }
        out.flush()
    };
    let mut watch = Watch::default();
    let started = Instant::now();
    let service_path = format!("/services/{}", segment(service));
    loop {
        let current: Service = client
            .get(&service_path)
            .map_err(|e| super::not_found(e, "service", service))?;
        let id = current.id.clone().unwrap_or_default();
        let filters: BTreeMap<&str, BTreeMap<&str, bool>> = [
            ("service", [(id.as_str(), true)].into()),
            ("_up-to-date", [("true", true)].into()),
        ]
        .into();
        let filters = serde_json::to_string(&filters)?;
        let tasks: Vec<Task> = client.get(&path("/tasks", &[("filters", &filters)]))?;
        let nodes: Vec<NodeDoc> = client.get("/nodes")?;
        let now = started.elapsed().as_millis() as u64;
        let (events, outcome) = watch.step(now, &current, &tasks, &active_nodes(&nodes));
        show(&events)?;
        match outcome {
            Outcome::Waiting => {}
            Outcome::Done => return Ok(()),
            Outcome::Failed(why) => anyhow::bail!(why),
        }
        let interrupted = client.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => false,
                _ = interrupt.recv() => true,
            }
        });
        if interrupted {
            if !watch.converged() {
                let message = |text: String| Event::Message {
                    id: String::new(),
                    text,
                };
                show(&[
                    message("Operation continuing in background.".into()),
                    message(format!(
                        "Use `swarmnet service ps {service}` to check progress."
                    )),
                ])?;
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, action: &str, bar: Option<i64>) -> Event {
        Event::Progress {
            id: id.into(),
            action: action.into(),
            bar,
        }
    }

    #[test]
    fn a_terminal_redraws_lines_in_place() {
        let mut screen = Screen::new(true);
        let first = screen.draw(&line("overall progress", "0 out of 1 tasks", None));
        assert_eq!(
            first,
            "\n\x1b[1A\x1b[2K\roverall progress: 0 out of 1 tasks \r\x1b[1B"
        );
        let second = screen.draw(&line("1/1", "running  ", Some(9)));
        assert_eq!(
            second,
            format!(
                "\n\x1b[1A\x1b[2K\r1/1: running   [{}>] \r\x1b[1B",
                "=".repeat(50)
            )
        );
        let again = screen.draw(&line("overall progress", "1 out of 1 tasks", None));
        assert_eq!(
            again,
            "\x1b[2A\x1b[2K\roverall progress: 1 out of 1 tasks \r\x1b[2B"
        );
        let message = Event::Message {
            id: "rollback".into(),
            text: "done\x1b[31m".into(),
        };
        assert_eq!(screen.draw(&message), "rollback: done\\u{1b}[31m\n");
        let after = screen.draw(&line("verify", "Service converged", None));
        assert!(
            after.starts_with("\n\x1b[1A"),
            "a message starts a new block"
        );
    }

    #[test]
    fn elsewhere_only_changed_lines_are_printed() {
        let mut screen = Screen::new(false);
        let event = line("2/3", "pending  ", Some(3));
        let bar = format!("[{}>{}]", "=".repeat(16), " ".repeat(34));
        assert_eq!(screen.draw(&event), format!("2/3: pending   {bar}\n"));
        assert_eq!(screen.draw(&event), "");
        assert_eq!(
            screen.draw(&line("2/3", "task: failed", None)),
            "2/3: task: failed\n"
        );
    }
}
