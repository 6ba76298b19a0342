//! The process-wide plan cache: a bounded LRU keyed by (SQL text, search_path), sharded so that
//! sessions rarely contend, with lookups that allocate nothing.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use super::context::AnalysisContext;
use super::entry::analyze;
use super::plan::Analysis;

const SHARDS: usize = 16;

struct Entry {
    /// The catalog generation the analysis read (see [`PlanCache::get_or_analyze_at`]).
    generation: u64,
    sql: Box<str>,
    search_path: Box<[String]>,
    analysis: Arc<Analysis>,
}

/// Bounded LRU of analyses, shared by all sessions (`Arc<PlanCache>`).
pub struct PlanCache {
    shards: Vec<Mutex<LruCache<u64, Entry>>>,
    hasher: RandomState,
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
        self.get_or_analyze_at(sql, ctx, 0)
    }

    /// [`PlanCache::get_or_analyze`] for a context whose catalog is generation `generation`:
    /// an entry analysed against another generation is a miss, so a plan analysed against the
    /// old catalog and inserted just after a refresh cleared the cache is never used.
    pub fn get_or_analyze_at(
        &self,
        sql: &str,
        ctx: &AnalysisContext,
        generation: u64,
    ) -> Arc<Analysis> {
        let key = self.key(sql, ctx.search_path);
        let shard = &self.shards[(key as usize) % SHARDS];
        if let Some(e) = shard.lock().get(&key)
            && e.generation == generation
            && &*e.sql == sql
            && &*e.search_path == ctx.search_path
        {
            return e.analysis.clone();
        }
        let analysis = Arc::new(analyze(sql, ctx));
        let entry = Entry {
            generation,
            sql: sql.into(),
            search_path: ctx.search_path.into(),
            analysis: analysis.clone(),
        };
        shard.lock().put(key, entry);
        analysis
    }

    /// Drops every cached analysis (after DDL or a rules reload).
    pub fn clear(&self) {
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
