//! The cancel registry: each session's client gets the upstream backend's real process ID with
//! a random secret of the proxy's own; a CancelRequest carrying that (pid, secret) pair is
//! mapped back to the backend's real key. Touched only when sessions start and end and when a
//! cancel arrives — never on the relay hot path.
//!
//! The client sees the real pid, so `pg_backend_pid()`, `pg_stat_activity`, NOTIFY senders
//! and `pg_terminate_backend` agree with what its driver reports; it never sees the real
//! secret, so it cannot cancel by talking to PostgreSQL directly. Several upstream backends may
//! share a pid (replicas behind one proxy, or a pid reused after a server restart): entries are
//! keyed by the pair, and a secret already taken under that pid (or equal to the backend's own)
//! is drawn again, so every live pair names exactly one backend.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use crate::protocol::startup::CancelKey;

struct Entry {
    secret: [u8; 4],
    upstream: CancelKey,
}

/// Client keys (real pid, proxy secret) → upstream keys, for the live sessions.
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<i32, Vec<Entry>>>,
}

/// Removes its session's entry when dropped.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pid: i32,
    secret: [u8; 4],
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.registry.map.lock();
        if let Some(entries) = map.get_mut(&self.pid) {
            entries.retain(|e| e.secret != self.secret);
            if entries.is_empty() {
                map.remove(&self.pid);
            }
        }
    }
}

impl CancelRegistry {
    /// Registers a session's upstream key; returns the key to give the client: the same pid,
    /// a secret of the proxy's own.
    pub fn register(self: &Arc<Self>, upstream: CancelKey) -> (CancelKey, Registration) {
        self.register_with(upstream, rand::random)
    }

    /// [`register`](Self::register) drawing secrets from `draw` (tests force collisions).
    fn register_with(
        self: &Arc<Self>,
        upstream: CancelKey,
        mut draw: impl FnMut() -> [u8; 4],
    ) -> (CancelKey, Registration) {
        let pid = upstream.pid;
        let mut map = self.map.lock();
        let entries = map.entry(pid).or_default();
        let secret = loop {
            let s = draw();
            if upstream.secret.as_slice() != s && entries.iter().all(|e| e.secret != s) {
                break s;
            }
        };
        entries.push(Entry { secret, upstream });
        (
            CancelKey {
                pid,
                secret: secret.to_vec(),
            },
            Registration {
                registry: Arc::clone(self),
                pid,
                secret,
            },
        )
    }

    /// The upstream key for a client's CancelRequest, if its (pid, secret) pair is live.
    pub fn lookup(&self, key: &CancelKey) -> Option<CancelKey> {
        if key.secret.len() != 4 {
            return None;
        }
        let map = self.map.lock();
        let mut found = None;
        // Compare every secret under the pid in constant time.
        for e in map.get(&key.pid)? {
            if bool::from(e.secret.ct_eq(&key.secret[..])) {
                found = Some(e.upstream.clone());
            }
        }
        found
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.map.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: i32, secret: [u8; 4]) -> CancelKey {
        CancelKey {
            pid,
            secret: secret.to_vec(),
        }
    }

    #[test]
    fn clients_get_the_real_pid_with_a_secret_of_the_proxy_s_own() {
        let reg = Arc::new(CancelRegistry::default());
        let up = key(77, [1, 2, 3, 4]);
        let (mine, guard) = reg.register(up.clone());
        assert_eq!(mine.pid, 77);
        assert_ne!(mine.secret, up.secret);
        assert_eq!(reg.lookup(&mine), Some(up.clone()));
        // The backend's own secret does not cancel through the proxy.
        assert_eq!(reg.lookup(&up), None);
        let mut wrong = mine.clone();
        wrong.secret[0] ^= 1;
        assert_eq!(reg.lookup(&wrong), None);
        wrong.secret = vec![0; 8];
        assert_eq!(reg.lookup(&wrong), None);
        drop(guard);
        assert_eq!(reg.lookup(&mine), None);
        assert!(reg.is_empty());
    }

    #[test]
    fn backends_sharing_a_pid_get_distinct_pairs() {
        let reg = Arc::new(CancelRegistry::default());
        let a = key(4242, [9, 9, 9, 9]);
        let b = key(4242, [8, 8, 8, 8]);
        // Every draw but the last collides: with b's own secret, then with a's proxy secret.
        let (ka, ga) = reg.register_with(a.clone(), || [1, 1, 1, 1]);
        let mut draws = vec![[2, 2, 2, 2], [1, 1, 1, 1], [8, 8, 8, 8]];
        let (kb, gb) = reg.register_with(b.clone(), || draws.pop().unwrap());
        assert_eq!((ka.pid, kb.pid), (4242, 4242));
        assert_eq!(kb.secret, vec![2, 2, 2, 2]);
        assert_eq!(reg.lookup(&ka), Some(a));
        assert_eq!(reg.lookup(&kb), Some(b.clone()));
        assert_eq!(reg.len(), 2);
        drop(ga);
        assert_eq!(reg.lookup(&ka), None);
        assert_eq!(reg.lookup(&kb), Some(b));
        drop(gb);
        assert!(reg.is_empty());
    }
}
