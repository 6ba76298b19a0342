//! The AES-GCM nonce budget. Randomized values use a fresh random 96-bit nonce each; NIST
//! SP 800-38D allows 2^32 such encryptions per key before the chance of a repeated nonce (which
//! would expose the XOR of two plaintexts and the GHASH key) passes 2^-32. pgcloak counts
//! encryptions per data key version in this process — one atomic add per value — warns at
//! 2^31 and every 2^28 after, and publishes the count for the metrics
//! (`pgcloak_gcm_nonce_budget_used{key,key_version}`).
//!
//! The count lives in a process-wide registry keyed by (key, version), so a reload that
//! rebuilds the key ring keeps counting. It cannot see other replicas, earlier runs of the
//! process or `pgcloak keys reencrypt`/`migrate encrypt`: the README's rotation cadence, not
//! this counter, is what keeps a key version inside its budget; the counter is the tripwire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

/// NIST SP 800-38D's limit for random 96-bit nonces under one key.
pub const LIMIT: u64 = 1 << 32;
/// The first warning: half the budget.
pub const WARN_AT: u64 = 1 << 31;
/// Then one warning per this many more.
pub const WARN_EVERY: u64 = 1 << 28;

/// The encryptions one data key version has done in this process.
#[derive(Debug)]
pub struct NonceBudget {
    key: String,
    version: u32,
    used: AtomicU64,
    warn_at: u64,
    warn_every: u64,
}

/// Every budget, by data key name and version.
type Registry = HashMap<(String, u32), Arc<NonceBudget>>;

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

impl NonceBudget {
    /// A budget with its own thresholds (not registered; for tests).
    pub fn with_thresholds(key: &str, version: u32, warn_at: u64, warn_every: u64) -> Self {
        NonceBudget {
            key: key.to_owned(),
            version,
            used: AtomicU64::new(0),
            warn_at,
            warn_every: warn_every.max(1),
        }
    }

    /// The process-wide budget of `key` version `version` (created on first use).
    pub fn of(key: &str, version: u32) -> Arc<NonceBudget> {
        let mut reg = REGISTRY.lock();
        Arc::clone(
            reg.entry((key.to_owned(), version)).or_insert_with(|| {
                Arc::new(Self::with_thresholds(key, version, WARN_AT, WARN_EVERY))
            }),
        )
    }

    /// Counts one encryption; returns true when this one crossed a warning threshold (and
    /// logged the warning).
    pub fn spend(&self) -> bool {
        let n = self.used.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.warn_at || !(n - self.warn_at).is_multiple_of(self.warn_every) {
            return false;
        }
        tracing::warn!(
            key = %self.key,
            key_version = self.version,
            encryptions = n,
            limit = LIMIT,
            "AES-GCM nonce budget: this data key version has done {n} of its {LIMIT} randomized \
             encryptions in this process; rotate it (pgcloak keys rotate --column …) and \
             re-encrypt (pgcloak keys reencrypt)"
        );
        true
    }

    /// Encryptions counted so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Every registered budget as (key, version, encryptions), for the metrics.
pub fn snapshot() -> Vec<(String, u32, u64)> {
    let reg = REGISTRY.lock();
    let mut all: Vec<_> = reg
        .values()
        .map(|b| (b.key.clone(), b.version, b.used()))
        .collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_at_the_threshold_and_every_step_after() {
        let b = NonceBudget::with_thresholds("k", 1, 8, 4);
        let warned: Vec<u64> = (1..=20).filter(|_| b.spend()).map(|_| b.used()).collect();
        assert_eq!(warned, vec![8, 12, 16, 20]);
        assert_eq!(b.used(), 20);
    }

    #[test]
    fn the_registry_keeps_one_count_per_key_version() {
        let a = NonceBudget::of("nonce-test.key", 1);
        a.spend();
        NonceBudget::of("nonce-test.key", 1).spend();
        NonceBudget::of("nonce-test.key", 2).spend();
        assert_eq!(a.used(), 2, "a second lookup (a reload) shares the count");
        let snap = snapshot();
        assert!(snap.contains(&("nonce-test.key".to_owned(), 1, 2)));
        assert!(snap.contains(&("nonce-test.key".to_owned(), 2, 1)));
    }

    #[test]
    fn default_thresholds_are_well_inside_the_nist_limit() {
        const { assert!(WARN_AT <= LIMIT / 2) };
        assert_eq!(
            (LIMIT - WARN_AT) / WARN_EVERY,
            8,
            "eight warnings before the limit"
        );
    }
}
