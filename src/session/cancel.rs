//! The cancel registry: each session's client gets the proxy's own random (pid, secret); a
//! CancelRequest carrying it is mapped back to the upstream backend's real key. Touched only
//! when sessions start and end and when a cancel arrives — never on the relay hot path.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use crate::protocol::startup::CancelKey;

struct Entry {
    secret: [u8; 4],
    upstream: CancelKey,
}

/// Proxy keys → upstream keys, for the live sessions.
#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<i32, Entry>>,
}

/// Removes its session's entry when dropped.
pub struct Registration {
    registry: Arc<CancelRegistry>,
    pid: i32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.map.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    /// Registers a session's upstream key; returns the key to give the client.
    pub fn register(self: &Arc<Self>, upstream: CancelKey) -> (CancelKey, Registration) {
        let secret: [u8; 4] = rand::random();
        let mut map = self.map.lock();
        let pid = loop {
            // Positive, non-zero, unused: looks like a PostgreSQL backend pid.
            let pid = (rand::random::<u32>() >> 1) as i32;
            if pid != 0 && !map.contains_key(&pid) {
                break pid;
            }
        };
        map.insert(pid, Entry { secret, upstream });
        (
            CancelKey {
                pid,
                secret: secret.to_vec(),
            },
            Registration {
                registry: Arc::clone(self),
                pid,
            },
        )
    }

    /// The upstream key for a client's CancelRequest, if the proxy key is valid.
    pub fn lookup(&self, key: &CancelKey) -> Option<CancelKey> {
        let map = self.map.lock();
        let entry = map.get(&key.pid)?;
        if key.secret.len() == 4 && bool::from(entry.secret.ct_eq(&key.secret[..])) {
            Some(entry.upstream.clone())
        } else {
            None
        }
    }

    /// Number of registered sessions.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_proxy_keys_to_upstream_keys_until_dropped() {
        let reg = Arc::new(CancelRegistry::default());
        let up = CancelKey {
            pid: 77,
            secret: vec![1, 2, 3, 4],
        };
        let (mine, guard) = reg.register(up.clone());
        assert!(mine.pid > 0);
        assert_ne!(mine, up);
        assert_eq!(reg.lookup(&mine), Some(up));
        let mut wrong = mine.clone();
        wrong.secret[0] ^= 1;
        assert_eq!(reg.lookup(&wrong), None);
        wrong.secret = vec![0; 8];
        assert_eq!(reg.lookup(&wrong), None);
        drop(guard);
        assert_eq!(reg.lookup(&mine), None);
        assert!(reg.is_empty());
    }
}
