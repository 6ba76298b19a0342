//! The process-wide plan cache: a bounded LRU keyed by (SQL text, search_path), sharded so that
//! sessions rarely contend, with lookups that allocate nothing.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use super::{Analysis, AnalysisContext, analyze};

const SHARDS: usize = 16;

struct Entry {
    sql: Box<str>,
    search_path: Box<[String]>,
    analysis: Arc<Analysis>,
}

/// Bounded LRU of analyses, shared by all sessions (`Arc<PlanCache>`).
pub struct PlanCache {
    shards: Vec<Mutex<LruCache<u64, Entry>>>,
    hasher: RandomState,
    /// Bumped by every [`PlanCache::clear`]: an analysis made from a catalog read before a
    /// clear is not cached after it (see [`PlanCache::get_or_analyze_since`]).
    epoch: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanCache")
            .field("len", &self.len())
            .finish()
    }
}

impl PlanCache {
    /// A cache holding about `capacity` analyses (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        let per = NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
            hasher: RandomState::new(),
            epoch: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn key(&self, sql: &str, search_path: &[String]) -> u64 {
        let mut h = self.hasher.build_hasher();
        sql.hash(&mut h);
        search_path.hash(&mut h);
        h.finish()
    }

    /// The cached analysis of `sql` under `ctx.search_path`, analysing (outside any lock) and
    /// caching it on a miss.
    pub fn get_or_analyze(&self, sql: &str, ctx: &AnalysisContext) -> Arc<Analysis> {
        self.get_or_analyze_since(sql, ctx, self.epoch())
    }

    /// The current epoch: read it before reading the catalog an analysis will use.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// As [`PlanCache::get_or_analyze`], caching the analysis only if the cache was not
    /// cleared since `epoch` (so a plan made from a replaced catalog is never kept).
    pub fn get_or_analyze_since(
        &self,
        sql: &str,
        ctx: &AnalysisContext,
        epoch: u64,
    ) -> Arc<Analysis> {
        let key = self.key(sql, ctx.search_path);
        let shard = &self.shards[(key as usize) % SHARDS];
        if let Some(e) = shard.lock().get(&key) {
            if &*e.sql == sql && &*e.search_path == ctx.search_path {
                return e.analysis.clone();
            }
        }
        let analysis = Arc::new(analyze(sql, ctx));
        let entry = Entry {
            sql: sql.into(),
            search_path: ctx.search_path.into(),
            analysis: analysis.clone(),
        };
        let mut locked = shard.lock();
        if self.epoch() == epoch {
            locked.put(key, entry);
        }
        analysis
    }

    /// Drops every cached analysis (after DDL or a rules reload).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        for s in &self.shards {
            s.lock().clear();
        }
    }

    /// Number of cached analyses.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
