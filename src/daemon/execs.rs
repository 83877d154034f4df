//! Exec instances (`docker exec`): what each asked for and how it ended, in
//! a table bounded in size and in time (a finished exec is forgotten after
//! a while, an unstarted one later, the oldest finished first when full).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::ApiError;
use crate::runtime::ExecSpec;

/// The most exec instances kept at once.
const MAX_EXECS: usize = 256;
/// How long a finished exec can still be inspected.
const KEEP_FINISHED: Duration = Duration::from_secs(300);
/// How long an exec may wait to be started.
const KEEP_UNSTARTED: Duration = Duration::from_secs(900);

/// Where an exec is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecState {
    Created,
    /// Started; pid 0 until its process is spawned.
    Running {
        pid: u32,
    },
    Exited {
        code: i32,
    },
}

/// One exec instance.
#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub spec: ExecSpec,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub state: ExecState,
    /// When it was made or last changed state.
    since: Instant,
}

impl Exec {
    pub fn new(id: String, container_id: String, spec: ExecSpec, attach: [bool; 3]) -> Exec {
        Exec {
            id,
            container_id,
            spec,
            attach_stdin: attach[0],
            attach_stdout: attach[1],
            attach_stderr: attach[2],
            state: ExecState::Created,
            since: Instant::now(),
        }
    }
}

/// The exec instances of this daemon.
#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, Exec>>);

fn no_such_exec(id: &str) -> ApiError {
    ApiError::NotFound(format!("No such exec instance: {id}"))
}

impl Execs {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Exec>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a new exec, after forgetting stale ones; refuses when the table is full of live ones.
    pub fn add(&self, exec: Exec) -> Result<(), ApiError> {
        let mut table = self.table();
        prune(&mut table, Instant::now());
        if table.len() >= MAX_EXECS {
            return Err(ApiError::Unavailable(format!(
                "{MAX_EXECS} exec instances are running or waiting to start: wait for some to end"
            )));
        }
        table.insert(exec.id.clone(), exec);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Exec, ApiError> {
        self.table()
            .get(id)
            .cloned()
            .ok_or_else(|| no_such_exec(id))
    }

    /// Marks a created exec started, once: Docker's words when it was already.
    pub fn begin(&self, id: &str) -> Result<Exec, ApiError> {
        let mut table = self.table();
        let exec = table.get_mut(id).ok_or_else(|| no_such_exec(id))?;
        match exec.state {
            ExecState::Created => {
                exec.state = ExecState::Running { pid: 0 };
                exec.since = Instant::now();
                Ok(exec.clone())
            }
            ExecState::Running { .. } => Err(ApiError::Conflict(format!(
                "Error: Exec command {id} is already running"
            ))),
            ExecState::Exited { .. } => Err(ApiError::Conflict(format!(
                "Error: Exec command {id} has already run"
            ))),
        }
    }

    pub fn set_pid(&self, id: &str, pid: u32) {
        if let Some(exec) = self.table().get_mut(id) {
            exec.state = ExecState::Running { pid };
        }
    }

    pub fn finish(&self, id: &str, code: i32) {
        if let Some(exec) = self.table().get_mut(id) {
            exec.state = ExecState::Exited { code };
            exec.since = Instant::now();
        }
    }
}

/// Forgets finished execs past their time and unstarted ones never started;
/// when still full, the oldest finished go first.
fn prune(table: &mut HashMap<String, Exec>, now: Instant) {
    table.retain(|_, e| {
        let age = now.saturating_duration_since(e.since);
        match e.state {
            ExecState::Exited { .. } => age < KEEP_FINISHED,
            ExecState::Created => age < KEEP_UNSTARTED,
            ExecState::Running { .. } => true,
        }
    });
    while table.len() >= MAX_EXECS {
        let oldest = table
            .values()
            .filter(|e| matches!(e.state, ExecState::Exited { .. }))
            .min_by_key(|e| e.since)
            .map(|e| e.id.clone());
        match oldest {
            Some(id) => table.remove(&id),
            None => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Exec {
        Exec::new(id.into(), "c".into(), ExecSpec::default(), [false; 3])
    }

    #[test]
    fn an_exec_starts_once_and_keeps_its_exit_code() {
        let execs = Execs::default();
        execs.add(exec("a")).unwrap();
        assert_eq!(execs.get("a").unwrap().state, ExecState::Created);
        execs.begin("a").unwrap();
        execs.set_pid("a", 42);
        assert_eq!(
            execs.get("a").unwrap().state,
            ExecState::Running { pid: 42 }
        );
        let again = execs.begin("a").unwrap_err().to_string();
        assert_eq!(again, "Error: Exec command a is already running");
        execs.finish("a", 3);
        assert_eq!(execs.get("a").unwrap().state, ExecState::Exited { code: 3 });
        assert!(execs
            .begin("a")
            .unwrap_err()
            .to_string()
            .contains("has already run"));
        assert_eq!(
            execs.get("b").unwrap_err().to_string(),
            "No such exec instance: b"
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut table = HashMap::new();
        let now = Instant::now();
        for i in 0..MAX_EXECS {
            let mut e = exec(&i.to_string());
            e.state = ExecState::Exited { code: 0 };
            e.since = now - Duration::from_secs(i as u64);
            table.insert(e.id.clone(), e);
        }
        prune(&mut table, now);
        assert_eq!(table.len(), MAX_EXECS - 1, "room for one more");
        assert!(
            !table.contains_key(&(MAX_EXECS - 1).to_string()),
            "the oldest went"
        );
        let later = now + KEEP_FINISHED + Duration::from_secs(1);
        prune(&mut table, later);
        assert!(table.is_empty(), "finished ones are forgotten in time");

        let execs = Execs::default();
        for i in 0..MAX_EXECS {
            execs.add(exec(&i.to_string())).unwrap();
        }
        assert!(
            execs.add(exec("one too many")).is_err(),
            "live ones are kept"
        );
    }
}
