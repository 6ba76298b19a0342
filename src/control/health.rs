//! How a rules database's background poll is doing, for `/readyz` and the
//! `pgcloak_last_poll_age_seconds` metric.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A poll older than this makes the database not ready.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// The outcome of the last poll of one rules database.
#[derive(Debug, Default)]
pub struct PollHealth {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_ok: Option<Instant>,
    failing: Option<String>,
}

impl PollHealth {
    /// A poll (or the initial load) succeeded.
    pub fn ok(&self) {
        let mut s = self.inner.lock();
        s.last_ok = Some(Instant::now());
        s.failing = None;
    }

    /// A poll failed with `error` (a message without secrets).
    pub fn failed(&self, error: &str) {
        self.inner.lock().failing = Some(error.to_owned());
    }

    /// Time since the last successful poll.
    pub fn since_last_poll(&self) -> Option<Duration> {
        self.inner.lock().last_ok.map(|t| t.elapsed())
    }

    /// Why this database makes the proxy not ready, if it does.
    pub fn problem(&self) -> Option<String> {
        let s = self.inner.lock();
        if let Some(e) = &s.failing {
            return Some(format!("control connection failing: {e}"));
        }
        match s.last_ok {
            None => Some("key ring not loaded".to_owned()),
            Some(t) if t.elapsed() > STALE_AFTER => Some(format!(
                "last successful poll {}s ago",
                t.elapsed().as_secs()
            )),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_a_problem_until_the_next_success() {
        let h = PollHealth::default();
        assert_eq!(h.problem().as_deref(), Some("key ring not loaded"));
        h.ok();
        assert!(h.problem().is_none());
        h.failed("connection refused");
        assert!(h.problem().unwrap().contains("connection refused"));
        h.ok();
        assert!(h.problem().is_none() && h.since_last_poll().is_some());
    }
}
