//! Requests counted by outcome: each API (the manager's, the Docker Engine
//! API) owns one, and the daemon renders them as metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ApiError;

/// Requests of one API by outcome ("ok" or the error's class).
#[derive(Debug, Default)]
pub struct RequestCounts {
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl RequestCounts {
    /// Counts one request by its outcome.
    pub fn count(&self, err: Option<&ApiError>) {
        let outcome = err.map_or("ok", ApiError::outcome);
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry(outcome)
            .or_default() += 1;
    }

    /// The counts so far, by outcome.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = self.counts.lock().expect("counts lock");
        counts.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_outcome() {
        let c = RequestCounts::default();
        c.count(None);
        c.count(None);
        c.count(Some(&ApiError::NotFound("x".into())));
        assert_eq!(c.snapshot(), vec![("not_found", 1), ("ok", 2)]);
    }
}
