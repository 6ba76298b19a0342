//! Connection and memory limits, and the shutdown deadline, shared by every session.
//!
//! - `listen.max_connections`: a session holds a [`Slot`] from its StartupMessage to its end.
//!   Beyond the limit the client gets what PostgreSQL sends (after TLS and the startup packet,
//!   so the client can read it): FATAL `53300` "sorry, too many clients already". Cancel
//!   requests take no slot, as in PostgreSQL.
//! - `listen.max_message_bytes`: the largest client message a session buffers whole (the
//!   relay holds each message until it is complete); a longer one closes the session with a
//!   FATAL `08P01` naming the setting, before any of its body is buffered.
//! - The shutdown deadline: when `listen.shutdown_timeout_secs` has passed, sessions still
//!   open are told FATAL `57P01` (as PostgreSQL's `pg_ctl stop -m fast` does) and closed with
//!   a TLS close_notify, instead of being dropped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::config::file::Listen;

/// A session's place under `listen.max_connections`; freed when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// The limits of one running proxy.
#[derive(Debug)]
pub struct Limits {
    slots: Arc<Semaphore>,
    max_connections: usize,
    max_message_bytes: usize,
    deadline: watch::Sender<bool>,
}

impl Limits {
    pub fn new(listen: &Listen) -> Self {
        Limits {
            slots: Arc::new(Semaphore::new(listen.max_connections)),
            max_connections: listen.max_connections,
            max_message_bytes: listen.max_message_bytes,
            deadline: watch::channel(false).0,
        }
    }

    /// A slot for a new session, or `None` when `max_connections` sessions are open.
    pub fn admit(&self) -> Option<Slot> {
        Arc::clone(&self.slots).try_acquire_owned().ok().map(Slot)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The largest client message a session buffers whole.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Fires when the shutdown timeout has passed: open sessions must end now.
    pub fn deadline(&self) -> watch::Receiver<bool> {
        self.deadline.subscribe()
    }

    /// Called once the shutdown timeout has passed.
    pub fn reach_deadline(&self) {
        self.deadline.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(max_connections: usize) -> Listen {
        let text = format!(
            "address = \"127.0.0.1:0\"\ntls_cert = \"c\"\ntls_key = \"k\"\n\
             max_connections = {max_connections}\nmax_message_bytes = 4096\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let l = Limits::new(&listen(2));
        let a = l.admit().expect("first");
        let _b = l.admit().expect("second");
        assert!(l.admit().is_none(), "a third session is over the limit");
        drop(a);
        assert!(l.admit().is_some(), "a freed slot is reused");
        assert_eq!((l.max_connections(), l.max_message_bytes()), (2, 4096));
    }

    #[test]
    fn the_deadline_reaches_every_subscriber() {
        let l = Limits::new(&listen(1));
        let rx = l.deadline();
        assert!(!*rx.borrow());
        l.reach_deadline();
        assert!(*rx.borrow());
        assert!(*l.deadline().borrow(), "late subscribers see it too");
    }
}
