//! Per-thread counter shards, summed on scrape. Every thread that counts (a session worker,
//! the accept loop, a test's runtime thread) gets its own [`Shard`] on first use and only ever
//! writes to that one: fixed counters are relaxed atomics on cache lines no other writer
//! touches, labelled counters live in a map behind a mutex that only its owner thread and the
//! scraper take. Nothing on the hot path is shared between cores.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// Unlabelled counters.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Fixed {
    BytesFromClients,
    BytesFromUpstream,
    SessionsAccepted,
}
const FIXED: usize = 3;

/// Gauges (summed over shards; a session increments and decrements on its own thread).
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Gauge {
    SessionsActive,
}
const GAUGES: usize = 1;

/// Histograms (bucket upper bounds in seconds: [`BOUNDS`]).
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Hist {
    /// Processing pgcloak adds to client → upstream traffic, per read.
    AddedToUpstream,
    /// Processing pgcloak adds to upstream → client traffic, per read.
    AddedToClient,
    /// TCP + TLS connect to the upstream server.
    UpstreamConnect,
    /// The whole login: client SCRAM, upstream connect and upstream SCRAM.
    Login,
}
pub const HISTS: usize = 4;
/// Bucket upper bounds, seconds.
pub const BOUNDS: [f64; 14] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.05, 0.25, 1.0,
];

/// A labelled counter's identity. Every label is bounded: rules names, SQLSTATEs, fixed words.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// Sessions ended, by database (only after a successful login) and outcome.
    Sessions {
        database: Arc<str>,
        outcome: &'static str,
    },
    /// Logins that failed, by reason (auth, tls, upstream, control, protocol, timeout).
    LoginFailed { reason: &'static str },
    /// Statements by kind (first keyword class) and class (plain, encrypted, refused).
    Statements {
        kind: &'static str,
        class: &'static str,
    },
    /// Refusals by SQLSTATE and rules column (or table).
    Refusals {
        sqlstate: &'static str,
        column: Arc<str>,
    },
    /// Field operations (encrypt, decrypt, decrypt_failed) by column and key version.
    Values {
        op: &'static str,
        column: Arc<str>,
        version: u32,
    },
    /// AES-256-GCM encryptions by data key and version (the 2^32 nonce budget).
    Gcm { key: Arc<str>, version: u32 },
    /// Key-provider errors by provider.
    ProviderErrors { provider: Arc<str> },
    /// Statements refused by the decrypt-rate tripwire, by role count only (no role label).
    RateLimited,
}

/// The statement kinds of `pgcloak_statements_total` (see [`super::statement_kind`]).
pub const KINDS: [&str; 11] = [
    "select",
    "insert",
    "update",
    "delete",
    "merge",
    "copy",
    "ddl",
    "transaction",
    "set",
    "empty",
    "other",
];
/// The statement classes of `pgcloak_statements_total`, in [`Class`] order.
pub const CLASSES: [&str; 3] = ["plain", "encrypted", "refused"];

/// A statement's class: its discriminant indexes [`CLASSES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Plain = 0,
    Encrypted = 1,
    Refused = 2,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// One thread's counters (aligned so two shards never share a cache line).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Shard {
    fixed: [AtomicU64; FIXED],
    gauges: [AtomicI64; GAUGES],
    hists: [Histogram; HISTS],
    /// Statements by kind and class: counted for every statement, so plain atomics, not the map.
    statements: [[AtomicU64; CLASSES.len()]; KINDS.len()],
    labelled: Mutex<HashMap<Key, u64>>,
}

fn bump(a: &AtomicU64, n: u64) {
    // Only this shard's thread writes: a load and a store, no locked read-modify-write.
    a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Shard {
    pub fn add(&self, c: Fixed, n: u64) {
        bump(&self.fixed[c as usize], n);
    }

    pub fn gauge(&self, g: Gauge, delta: i64) {
        let a = &self.gauges[g as usize];
        a.store(a.load(Relaxed) + delta, Relaxed);
    }

    pub fn observe(&self, h: Hist, nanos: u64) {
        let h = &self.hists[h as usize];
        let secs = nanos as f64 / 1e9;
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        bump(&h.buckets[i], 1);
        bump(&h.sum_nanos, nanos);
    }

    /// A statement of kind `KINDS[kind]` went through as class `CLASSES[class]`.
    pub fn statement(&self, kind: usize, class: usize) {
        if let Some(a) = self.statements.get(kind).and_then(|k| k.get(class)) {
            bump(a, 1);
        }
    }

    pub fn add_labelled(&self, key: Key, n: u64) {
        *self.labelled.lock().entry(key).or_insert(0) += n;
    }

    /// Adds many labelled counts under one lock.
    pub fn add_all(&self, items: impl IntoIterator<Item = (Key, u64)>) {
        let mut map = self.labelled.lock();
        for (k, n) in items {
            *map.entry(k).or_insert(0) += n;
        }
    }
}

static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: OnceCell<Arc<Shard>> = const { OnceCell::new() };
}

/// Runs `f` on this thread's shard (registering it on first use).
#[inline]
pub fn with<R>(f: impl FnOnce(&Shard) -> R) -> R {
    LOCAL.with(|cell| {
        let shard = cell.get_or_init(|| {
            let s = Arc::new(Shard::default());
            SHARDS.lock().push(Arc::clone(&s));
            s
        });
        f(shard)
    })
}

/// Counters summed over every shard, as one scrape sees them.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub fixed: [u64; FIXED],
    pub gauges: [i64; GAUGES],
    /// Per histogram: cumulative-free bucket counts and the sum in seconds.
    pub hists: [([u64; BOUNDS.len() + 1], f64); HISTS],
    pub labelled: std::collections::BTreeMap<Key, u64>,
}

impl Snapshot {
    pub fn fixed(&self, c: Fixed) -> u64 {
        self.fixed[c as usize]
    }

    pub fn gauge(&self, g: Gauge) -> i64 {
        self.gauges[g as usize]
    }
}

/// Sums every shard.
pub fn snapshot() -> Snapshot {
    let shards: Vec<Arc<Shard>> = SHARDS.lock().clone();
    let mut s = Snapshot::default();
    for sh in &shards {
        for (i, a) in sh.fixed.iter().enumerate() {
            s.fixed[i] += a.load(Relaxed);
        }
        for (i, a) in sh.gauges.iter().enumerate() {
            s.gauges[i] += a.load(Relaxed);
        }
        for (i, h) in sh.hists.iter().enumerate() {
            for (j, b) in h.buckets.iter().enumerate() {
                s.hists[i].0[j] += b.load(Relaxed);
            }
            s.hists[i].1 += h.sum_nanos.load(Relaxed) as f64 / 1e9;
        }
        for (k, v) in sh.labelled.lock().iter() {
            *s.labelled.entry(k.clone()).or_insert(0) += v;
        }
        for (kind, row) in KINDS.iter().zip(&sh.statements) {
            for (class, a) in CLASSES.iter().zip(row) {
                let n = a.load(Relaxed);
                if n > 0 {
                    *s.labelled
                        .entry(Key::Statements { kind, class })
                        .or_insert(0) += n;
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_several_threads_are_summed() {
        let before = snapshot().fixed(Fixed::SessionsAccepted);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        with(|s| s.add(Fixed::SessionsAccepted, 1));
                    }
                    with(|s| s.add_labelled(Key::RateLimited, 2));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = snapshot();
        assert!(snap.fixed(Fixed::SessionsAccepted) >= before + 4000);
        assert!(snap.labelled[&Key::RateLimited] >= 8);
        with(|s| s.statement(1, 2));
        let key = Key::Statements {
            kind: "insert",
            class: "refused",
        };
        assert!(snapshot().labelled[&key] >= 1);
        with(|s| s.observe(Hist::Login, 3_000_000));
        let h = &snapshot().hists[Hist::Login as usize];
        assert!(h.0[BOUNDS.iter().position(|b| *b == 0.005).unwrap()] >= 1);
    }
}
