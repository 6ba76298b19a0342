//! SCRAM verifier lookup for `auth.mode = "passthrough"`: reads a role's `rolpassword` over the
//! control login at every login, and keeps the last one briefly as a fallback.
//!
//! Every login asks the database, so a changed password (`ALTER ROLE … PASSWORD`, libpq's
//! `PQchangePassword`, rotated credentials) counts at once: the verifier's salt goes to the
//! client in the SCRAM server-first message, and a proof computed with a stale salt can never
//! be checked against the new verifier, so refetching after a failed proof would only help the
//! next login. The session overlaps the lookup with the client's first SCRAM round trip, so it
//! adds no latency. The cache (bounded LRU, time-limited) answers only when the lookup query
//! fails (a control login that is reconnecting); it never remembers a failure, and a role
//! found missing is forgotten. When the upstream rejects a login made with a cached verifier,
//! call [`VerifierCache::invalidate`].

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use tracing::warn;

use crate::auth::{AuthError, ScramVerifier};
use crate::config::file::Auth;

/// Reads `pg_authid` (needs a superuser control login; see `auth.verifier_query` otherwise).
pub const DEFAULT_VERIFIER_QUERY: &str = "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1 AND rolcanlogin AND (rolvaliduntil IS NULL OR rolvaliduntil > now())";

/// Default number of roles kept.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Why a verifier could not be looked up. Never carries the verifier itself.
#[derive(Debug, thiserror::Error)]
pub enum VerifierLookupError {
    /// The query failed (connection lost, permission denied, bad `verifier_query`, …).
    #[error("SCRAM verifier lookup query failed: {detail}")]
    Query {
        detail: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The query returned a row without a text column.
    #[error("SCRAM verifier lookup query must return the rolpassword as text")]
    NoColumn,
    /// The role's stored SCRAM secret is malformed.
    #[error("stored SCRAM secret of the role is invalid: {0}")]
    BadVerifier(#[source] AuthError),
}

impl From<tokio_postgres::Error> for VerifierLookupError {
    fn from(source: tokio_postgres::Error) -> Self {
        let detail = match source.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => source.to_string(),
        };
        Self::Query { detail, source }
    }
}

/// A bounded, time-limited cache of role verifiers, shared by all sessions.
#[derive(Debug)]
pub struct VerifierCache {
    ttl: Duration,
    entries: Mutex<LruCache<String, (ScramVerifier, Instant)>>,
}

impl VerifierCache {
    /// A cache keeping up to `capacity` roles for `ttl` each; a zero `ttl` disables caching.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// A cache with `auth.verifier_cache_secs` and [`DEFAULT_CAPACITY`].
    pub fn from_config(auth: &Auth) -> Self {
        Self::new(
            Duration::from_secs(auth.verifier_cache_secs),
            DEFAULT_CAPACITY,
        )
    }

    /// The lookup query configured in `auth.verifier_query`, else [`DEFAULT_VERIFIER_QUERY`].
    pub fn query_for(auth: &Auth) -> &str {
        auth.verifier_query
            .as_deref()
            .unwrap_or(DEFAULT_VERIFIER_QUERY)
    }

    /// The role's SCRAM verifier, asked of the database; `Ok(None)` for an unknown role, a role
    /// that cannot log in, or one whose password is not SCRAM (md5, NULL). `query` takes the
    /// role name as `$1` and returns at most one row with a `rolpassword` column (else its last
    /// column is used). When the query fails, the role's cached verifier (if still fresh) is
    /// the answer.
    pub async fn lookup(
        &self,
        client: &tokio_postgres::Client,
        query: &str,
        role: &str,
    ) -> Result<Option<ScramVerifier>, VerifierLookupError> {
        match fetch(client, query, role).await {
            Ok(found) => {
                match &found {
                    Some(v) => self.insert(role, v.clone()),
                    None => self.invalidate(role),
                }
                Ok(found)
            }
            Err(e) => match self.fallback(role, &e) {
                Some(v) => Ok(Some(v)),
                None => Err(e),
            },
        }
    }

    /// The role's cached verifier when its lookup failed with `error` (logged).
    pub fn fallback(&self, role: &str, error: &dyn std::fmt::Display) -> Option<ScramVerifier> {
        let v = self.cached(role)?;
        warn!(%error, "SCRAM verifier lookup failed; using the role's recently cached verifier");
        Some(v)
    }

    /// Forgets a role (e.g. after the upstream rejected a login made with its cached verifier).
    pub fn invalidate(&self, role: &str) {
        self.entries.lock().pop(role);
    }

    fn cached(&self, role: &str) -> Option<ScramVerifier> {
        let mut entries = self.entries.lock();
        match entries.get(role) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                entries.pop(role);
                None
            }
            None => None,
        }
    }

    fn insert(&self, role: &str, verifier: ScramVerifier) {
        if !self.ttl.is_zero() {
            self.entries
                .lock()
                .put(role.to_owned(), (verifier, Instant::now()));
        }
    }
}

/// Runs the lookup query for `role`.
async fn fetch(
    client: &tokio_postgres::Client,
    query: &str,
    role: &str,
) -> Result<Option<ScramVerifier>, VerifierLookupError> {
    let Some(row) = client.query_opt(query, &[&role]).await? else {
        return Ok(None);
    };
    let idx = row
        .columns()
        .iter()
        .position(|c| c.name() == "rolpassword")
        .or_else(|| row.len().checked_sub(1))
        .ok_or(VerifierLookupError::NoColumn)?;
    let secret: Option<String> = row
        .try_get(idx)
        .map_err(|_| VerifierLookupError::NoColumn)?;
    interpret(secret.as_deref())
}

/// A `rolpassword` value → a verifier if it is a SCRAM-SHA-256 secret.
fn interpret(rolpassword: Option<&str>) -> Result<Option<ScramVerifier>, VerifierLookupError> {
    match rolpassword {
        Some(s) if s.starts_with("SCRAM-SHA-256$") => ScramVerifier::parse(s)
            .map(Some)
            .map_err(VerifierLookupError::BadVerifier),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    fn v() -> ScramVerifier {
        ScramVerifier::parse(V).unwrap()
    }

    #[test]
    fn interprets_rolpassword() {
        assert_eq!(interpret(Some(V)).unwrap(), Some(v()));
        assert_eq!(
            interpret(Some("md5f00dfeedf00dfeedf00dfeedf00dfeed")).unwrap(),
            None
        );
        assert_eq!(interpret(None).unwrap(), None);
        assert!(matches!(
            interpret(Some("SCRAM-SHA-256$x")),
            Err(VerifierLookupError::BadVerifier(_))
        ));
    }

    #[test]
    fn cache_respects_ttl_and_invalidate() {
        let cache = VerifierCache::new(Duration::from_secs(60), 4);
        assert!(cache.cached("app").is_none());
        cache.insert("app", v());
        assert_eq!(cache.cached("app"), Some(v()));
        cache.invalidate("app");
        assert!(cache.cached("app").is_none());

        let expiring = VerifierCache::new(Duration::from_millis(20), 4);
        expiring.insert("app", v());
        assert!(expiring.cached("app").is_some());
        #[allow(clippy::disallowed_methods)] // a plain unit test: no runtime to block
        std::thread::sleep(Duration::from_millis(30));
        assert!(expiring.cached("app").is_none());

        let off = VerifierCache::new(Duration::ZERO, 4);
        off.insert("app", v());
        assert!(off.cached("app").is_none());
    }

    #[test]
    fn fallback_is_the_fresh_cached_verifier_only() {
        let cache = VerifierCache::new(Duration::from_secs(60), 4);
        assert!(cache.fallback("app", &"lookup failed").is_none());
        cache.insert("app", v());
        assert_eq!(cache.fallback("app", &"lookup failed"), Some(v()));
        let off = VerifierCache::new(Duration::ZERO, 4);
        off.insert("app", v());
        assert!(off.fallback("app", &"lookup failed").is_none());
    }

    #[test]
    fn cache_is_bounded() {
        let cache = VerifierCache::new(Duration::from_secs(60), 2);
        for role in ["a", "b", "c"] {
            cache.insert(role, v());
        }
        assert!(cache.cached("a").is_none());
        assert!(cache.cached("b").is_some() && cache.cached("c").is_some());
    }

    #[test]
    fn query_from_config() {
        let mut auth = Auth::default();
        assert_eq!(VerifierCache::query_for(&auth), DEFAULT_VERIFIER_QUERY);
        auth.verifier_query = Some("SELECT pgcloak.verifier($1)".into());
        assert_eq!(
            VerifierCache::query_for(&auth),
            "SELECT pgcloak.verifier($1)"
        );
    }
}
