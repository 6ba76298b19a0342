//! Transparent field encryption inside a session (spec §5, §6).
//!
//! [`Encryption`] is what all sessions share when rules are configured: the rules, the key
//! ring, the catalog of rules tables (both swapped in by a background watcher that polls the
//! control login every [`POLL_INTERVAL`]) and the process-wide plan cache. Each session whose
//! database is the control login's database gets a [`SessionCrypto`] ([`state`]): the
//! frontend side ([`frontend`]) encrypts literals and parameters and delivers refusals through
//! the server ([`refuse`]); the backend side ([`backend`]) maps RowDescriptions to rules and
//! decrypts DataRows ([`values`]); COPY on a rules table streams through [`copy`]. Sessions
//! to other databases, and every session when no rules
//! are configured, relay raw.

mod backend;
mod copy;
mod frontend;
mod matching;
mod redact;
mod refuse;
mod search_path;
mod state;
mod values;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::config::{Config, Rules};
use crate::control::catalog::{Catalog, SharedCatalog};
use crate::control::keys::{KeysError, keys_fingerprint, load_keyring};
use crate::control::{ControlError, ControlLink};
use crate::crypto::{MasterKey, SharedKeyRing};
use crate::rewrite::PlanCache;

pub use state::SessionCrypto;
pub use values::ValueError;

/// How often the watcher checks for new data-key versions and catalog changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Plans cached process-wide.
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
}

/// Everything sessions share for field encryption.
pub struct Encryption {
    pub rules: Arc<Rules>,
    pub keys: Arc<SharedKeyRing>,
    pub catalog: Arc<SharedCatalog>,
    pub plans: PlanCache,
    /// Sessions to this database are encrypted (the control login's database).
    pub database: String,
    control: ControlLink,
    master: MasterKey,
    fingerprint: tokio::sync::Mutex<String>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryption")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// Work a session must await outside its synchronous handlers.
#[derive(Debug)]
pub enum AsyncWork {
    /// DDL completed: reload the catalog (and clear the plan cache if it changed).
    RefreshCatalog,
    /// A stored value named a key version the ring lacks: reload keys, then handle the held
    /// backend frame again.
    ReloadKeys(crate::protocol::Frame),
}

impl Encryption {
    /// Connects the control login, loads the key ring and the catalog.
    pub async fn load(
        config: Arc<Config>,
        password: Zeroizing<String>,
        master: MasterKey,
        rules: Rules,
    ) -> Result<Arc<Self>, EncryptionError> {
        let database = config
            .control
            .database
            .clone()
            .unwrap_or_else(|| "postgres".to_owned());
        let control = ControlLink::new(config, password);
        let client = control.client().await?;
        let ring = load_keyring(&client, &master).await?;
        let fingerprint = keys_fingerprint(&client).await?;
        let catalog = Catalog::load(&*client, &rules).await?;
        info!(
            tables = catalog.table_count(),
            columns = rules.columns().count(),
            %database,
            "field encryption enabled"
        );
        Ok(Arc::new(Encryption {
            rules: Arc::new(rules),
            keys: Arc::new(SharedKeyRing::new(ring)),
            catalog: Arc::new(SharedCatalog::new(catalog)),
            plans: PlanCache::new(PLAN_CACHE_CAPACITY),
            database,
            control,
            master,
            fingerprint: tokio::sync::Mutex::new(fingerprint),
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
        let ring = load_keyring(&client, &self.master).await?;
        self.keys.replace(ring);
        *last = now;
        info!("data keys reloaded");
        Ok(true)
    }

    /// Reloads the catalog; clears the plan cache when it changed. True when it changed.
    pub async fn refresh_catalog(&self) -> Result<bool, EncryptionError> {
        let client = self.control.client().await?;
        let catalog = Catalog::load(&*client, &self.rules).await?;
        let changed = self.catalog.replace_if_changed(catalog);
        if changed {
            self.plans.clear();
            info!("catalog of rules tables changed; plan cache cleared");
        }
        Ok(changed)
    }

    /// Runs [`Encryption::reload_keys`] / [`Encryption::refresh_catalog`] every
    /// [`POLL_INTERVAL`] until shutdown.
    pub fn spawn_watcher(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let enc = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
                }
                if let Err(e) = enc.reload_keys(false).await {
                    warn!(error = %e, "data key poll failed");
                    enc.control.reset().await;
                    continue;
                }
                if let Err(e) = enc.refresh_catalog().await {
                    warn!(error = %e, "catalog poll failed");
                }
            }
        });
    }

    /// Runs one piece of a session's asynchronous work; failures are logged (the session then
    /// works with what it has, and decrypt failures still fail closed).
    pub async fn run(&self, work: &AsyncWork) {
        let result = match work {
            AsyncWork::RefreshCatalog => self.refresh_catalog().await.map(|_| ()),
            AsyncWork::ReloadKeys(_) => self.reload_keys(true).await.map(|_| ()),
        };
        if let Err(e) = result {
            warn!(error = %e, "encryption refresh failed");
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
            control: ControlLink::new(Arc::new(config), Zeroizing::new(String::new())),
            master: MasterKey::generate(),
            fingerprint: tokio::sync::Mutex::new(String::new()),
        })
    }

    /// The per-session state for a session to `database`, or `None` when that database is
    /// not the encrypted one.
    pub fn session(self: &Arc<Self>, database: &str) -> Option<SessionCrypto> {
        (database == self.database).then(|| SessionCrypto::new(Arc::clone(self)))
    }
}
