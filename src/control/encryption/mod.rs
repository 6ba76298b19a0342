//! The process-wide field-encryption service (spec §5, §6).
//!
//! [`Encryption`] is what all sessions to one rules database share: that database's rules, key
//! ring (from its `pgcloak.data_keys`), catalog of rules tables (both swapped in by a
//! background watcher ([`watcher`]) that polls its own control login every [`POLL_INTERVAL`])
//! and plan cache. [`Encryptions`] holds one per database a rules file names; each session
//! whose startup packet names one of them gets its own per-connection state in
//! [`crate::engine`]. Sessions to a database no rules file names, and every session when no
//! rules are configured, relay raw.

mod watcher;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::config::rules_file::MAX_DATABASE_NAME;
use crate::config::{Config, DatabaseRules, Rules};
use crate::control::catalog::{Catalog, SharedCatalog};
use crate::control::check::{Problem, check_online};
use crate::control::health::PollHealth;
use crate::control::keys::{KeysError, keys_fingerprint, load_keyring};
use crate::control::providers::{KeyProvider, ProviderError};
use crate::control::{ControlError, ControlLink};
use crate::crypto::SharedKeyRing;
use crate::rewrite::PlanCache;

/// How often the watcher checks for new data-key versions and catalog changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Plans cached per rules database.
const PLAN_CACHE_CAPACITY: usize = 4096;

/// Setting up or refreshing encryption failed. Never carries key bytes or values.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("loading data keys: {0}")]
    Keys(#[from] KeysError),
    #[error("loading the catalog of rules tables: {0}")]
    Catalog(#[from] tokio_postgres::Error),
    #[error("rules are configured but no master key was loaded")]
    NoMasterKey,
    #[error("{0}")]
    Provider(Box<ProviderError>),
    #[error(
        "database {database}: {} problem(s) found by the checks of `pgcloak check`; not starting until they are fixed:\n{}",
        .problems.len(),
        .problems.iter().map(|p| format!("  database {database}: {p}")).collect::<Vec<_>>().join("\n")
    )]
    Checks {
        database: String,
        problems: Vec<Problem>,
    },
}

/// Everything sessions to one rules database share for field encryption.
pub struct Encryption {
    pub rules: Arc<Rules>,
    pub keys: Arc<SharedKeyRing>,
    pub catalog: Arc<SharedCatalog>,
    pub plans: PlanCache,
    /// Sessions to this database are encrypted (the database its rules files name).
    pub database: String,
    control: ControlLink,
    provider: Arc<dyn KeyProvider>,
    fingerprint: tokio::sync::Mutex<String>,
    /// The last poll's outcome (`/readyz`).
    health: PollHealth,
    /// Set when the proxy stops or a reload replaced this instance: its sessions drain.
    drain: watch::Sender<bool>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// What a session asks the service to reload (see [`Encryption::refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// DDL completed: reload the catalog (and clear the plan cache if it changed).
    Catalog,
    /// A stored value named a key version the ring lacks: reload the keys.
    Keys,
}

impl Encryption {
    /// Connects the control login to `db`'s database, runs the online checks of `pgcloak
    /// check` (any problem but a missing table refuses; missing tables are logged as
    /// warnings), then loads the key ring and the catalog.
    pub async fn load(
        config: Arc<Config>,
        password: Zeroizing<String>,
        provider: Arc<dyn KeyProvider>,
        db: DatabaseRules,
    ) -> Result<Arc<Self>, EncryptionError> {
        let DatabaseRules {
            database, rules, ..
        } = db;
        let control = ControlLink::new(config, password, database.clone());
        let client = control.client().await?;
        let (blocking, warnings): (Vec<Problem>, Vec<Problem>) =
            check_online(&client, &rules, &*provider)
                .await
                .into_iter()
                .partition(Problem::blocks_serving);
        if !blocking.is_empty() {
            return Err(EncryptionError::Checks {
                database,
                problems: blocking,
            });
        }
        for p in &warnings {
            if p.kind == crate::control::check::ProblemKind::Pending {
                warn!(%database, "database {database}: {p}");
                continue;
            }
            warn!(
                %database,
                "database {database}: {p} (sessions may create it; its rules columns must be bytea)"
            );
        }
        let ring = load_keyring(&client, &*provider).await?;
        let fingerprint = keys_fingerprint(&client).await?;
        let catalog = Catalog::load(&*client, &rules).await?;
        info!(
            %database,
            tables = rules.tables().count(),
            tables_present = catalog.table_count(),
            columns = rules.columns().count(),
            "field encryption enabled for database {database}"
        );
        Ok(Arc::new(Encryption {
            rules: Arc::new(rules),
            keys: Arc::new(SharedKeyRing::new(ring)),
            catalog: Arc::new(SharedCatalog::new(catalog)),
            plans: PlanCache::new(PLAN_CACHE_CAPACITY),
            database,
            control,
            provider,
            fingerprint: tokio::sync::Mutex::new(fingerprint),
            health: ready_health(),
            drain: watch::channel(false).0,
        }))
    }

    /// Reloads the key ring when the stored keys changed (or `force`). True when reloaded.
    pub async fn reload_keys(&self, force: bool) -> Result<bool, EncryptionError> {
        let client = self.control.client().await?;
        let mut last = self.fingerprint.lock().await;
        let now = keys_fingerprint(&client).await?;
        if !force && *last == now {
            return Ok(false);
        }
        let ring = load_keyring(&client, &*self.provider).await?;
        self.keys.replace(ring);
        *last = now;
        info!(database = %self.database, "data keys reloaded");
        Ok(true)
    }

    /// Reloads the catalog; clears the plan cache when it changed. True when it changed.
    pub async fn refresh_catalog(&self) -> Result<bool, EncryptionError> {
        let client = self.control.client().await?;
        let catalog = Catalog::load(&*client, &self.rules).await?;
        let changed = self.catalog.replace_if_changed(catalog);
        if changed {
            self.plans.clear();
            info!(database = %self.database, "catalog of rules tables changed; plan cache cleared");
            crate::control::listen::notify(&client, crate::control::listen::CATALOG).await;
        }
        Ok(changed)
    }

    /// The outcome of the last poll.
    pub fn health(&self) -> &PollHealth {
        &self.health
    }

    /// Becomes true when this instance's sessions must end at their next idle point.
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }

    /// Drains this instance's sessions (shutdown, or its rules were reloaded); its watcher
    /// stops once nothing else holds it.
    pub fn retire(&self) {
        self.drain.send_replace(true);
    }

    /// Runs one reload a session asked for; failures are logged (the session then works with
    /// what it has, and decrypt failures still fail closed).
    pub async fn refresh(&self, what: Refresh) {
        let result = match what {
            Refresh::Catalog => self.refresh_catalog().await.map(|_| ()),
            Refresh::Keys => self.reload_keys(true).await.map(|_| ()),
        };
        if let Err(e) = result {
            warn!(database = %self.database, error = %e, "encryption refresh failed");
        }
    }

    /// An instance over given parts (unit tests: no database).
    #[cfg(test)]
    pub(crate) fn for_tests(
        rules: Rules,
        ring: crate::crypto::KeyRing,
        catalog: Catalog,
    ) -> Arc<Self> {
        let text = include_str!("../../../pgcloak.example.toml");
        let config = Config::from_str_at(text, std::path::Path::new("/x/pgcloak.toml"))
            .expect("example config");
        Arc::new(Encryption {
            rules: Arc::new(rules),
            keys: Arc::new(SharedKeyRing::new(ring)),
            catalog: Arc::new(SharedCatalog::new(catalog)),
            plans: PlanCache::new(64),
            database: "app".into(),
            control: ControlLink::new(Arc::new(config), Zeroizing::new(String::new()), "app"),
            provider: Arc::new(crate::crypto::MasterKey::generate()),
            fingerprint: tokio::sync::Mutex::new(String::new()),
            health: ready_health(),
            drain: watch::channel(false).0,
        })
    }
}

/// A poll health that starts as just loaded.
pub(super) fn ready_health() -> PollHealth {
    let h = PollHealth::default();
    h.ok();
    h
}

/// Whether a startup packet's `database` reaches the database named `rules_db`. PostgreSQL
/// cuts a longer name to its first 63 bytes before looking it up, so pgcloak compares the same
/// bytes (rules database names are at most 63 bytes).
pub fn same_database(startup: &str, rules_db: &str) -> bool {
    let bytes = startup.as_bytes();
    &bytes[..bytes.len().min(MAX_DATABASE_NAME)] == rules_db.as_bytes()
}

impl crate::net::metrics::Databases for Encryptions {
    fn statuses(&self) -> Vec<crate::net::metrics::DatabaseStatus> {
        self.all
            .iter()
            .map(|enc| {
                let health = enc.health();
                crate::net::metrics::DatabaseStatus {
                    database: enc.database.clone(),
                    problem: health.problem(),
                    keyring_generation: enc.keys.generation(),
                    catalog_generation: enc.catalog.generation(),
                    since_last_poll: health.since_last_poll(),
                    rules_columns: enc.rules.columns().count(),
                    pending: enc
                        .catalog
                        .current()
                        .pending()
                        .map(|c| c.to_string())
                        .collect(),
                }
            })
            .collect()
    }
}

/// One [`Encryption`] per database a rules file names.
#[derive(Debug, Default)]
pub struct Encryptions {
    all: Vec<Arc<Encryption>>,
}

impl Encryptions {
    /// Loads every database's encryption in turn ([`Encryption::load`]); the first error
    /// stops (nothing is served half-checked).
    pub async fn load(
        config: &Arc<Config>,
        password: &Zeroizing<String>,
        provider: Arc<dyn KeyProvider>,
        databases: Vec<DatabaseRules>,
    ) -> Result<Self, EncryptionError> {
        let mut all = Vec::with_capacity(databases.len());
        for db in databases {
            let enc = Encryption::load(
                Arc::clone(config),
                password.clone(),
                Arc::clone(&provider),
                db,
            )
            .await?;
            all.push(enc);
        }
        Ok(Encryptions { all })
    }

    /// Over given instances (tests).
    pub fn from_parts(all: Vec<Arc<Encryption>>) -> Self {
        Encryptions { all }
    }

    /// The encryption of `database` (a startup packet's name), if a rules file names it.
    pub fn get(&self, database: &str) -> Option<&Arc<Encryption>> {
        self.all
            .iter()
            .find(|e| same_database(database, &e.database))
    }

    /// Every database's encryption, in rules-file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Encryption>> {
        self.all.iter()
    }

    /// Starts every database's watcher ([`Encryption::spawn_watcher`]).
    pub fn spawn_watchers(&self, shutdown: &watch::Receiver<bool>) {
        for enc in &self.all {
            enc.spawn_watcher(shutdown.clone());
        }
    }
}

#[cfg(test)]
mod database_tests {
    use super::*;
    use crate::crypto::KeyRing;

    #[test]
    fn sessions_pick_the_encryption_of_their_database() {
        let enc = |db: &str| {
            let mut e =
                Encryption::for_tests(Rules::empty(), KeyRing::default(), Catalog::default());
            Arc::get_mut(&mut e).expect("fresh").database = db.to_owned();
            e
        };
        let set = Encryptions::from_parts(vec![enc("app"), enc("Shop")]);
        assert_eq!(set.get("app").map(|e| e.database.as_str()), Some("app"));
        assert_eq!(set.get("Shop").map(|e| e.database.as_str()), Some("Shop"));
        assert!(
            set.get("shop").is_none(),
            "database names are case-sensitive"
        );
        assert!(set.get("other").is_none());
        assert!(set.get("postgres").is_none());
        // PostgreSQL cuts a startup name to 63 bytes: the cut name is the rules database.
        let long = "d".repeat(63);
        let set = Encryptions::from_parts(vec![enc(&long)]);
        assert!(set.get(&format!("{long}xyz")).is_some());
        assert!(set.get(&long[..62]).is_none());
    }
}
