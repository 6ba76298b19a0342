//! Data-key management over the control login of one database (spec §1
//! `keys init|rotate|rewrap|list`, §7):
//! the `pgcloak.data_keys` table, adding key versions, re-wrapping under another key provider
//! (or onto the latest version of a Transit key), loading the [`KeyRing`], and a cheap
//! fingerprint to notice rotations while serving. All wrapping goes through a
//! [`KeyProvider`]; each row records the provider key that wrapped it (`provider`,
//! `provider_key`, `provider_key_version`, added to older tables by an idempotent upgrade;
//! rows from before read as `local`).
//!
//! Every command that writes runs in one transaction and first checks that the provider
//! unwraps the keys already stored, so a wrong key never mixes keys wrapped under two
//! key-encryption keys in one table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio_postgres::{Client, GenericClient};

use super::providers::{KeyProvider, ProviderError, unwrap_all};
use crate::config::ident::parse_qualified;
use crate::config::{ColumnRule, Rules};
use crate::crypto::{Algorithm, CryptoError, DataKey, KekRef, KeyRing, WrappedKey};

pub use crate::crypto::gen_master_key;

/// Creates the key table; the login that runs `keys init` owns it. PUBLIC gets nothing.
#[doc(hidden)] // public for the test of the upgrade from the table before providers
pub const CREATE_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS pgcloak;
CREATE TABLE IF NOT EXISTS pgcloak.data_keys (
    key_name    text        NOT NULL,
    version     int         NOT NULL CHECK (version > 0),
    algorithm   text        NOT NULL,
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    state       text        NOT NULL DEFAULT 'active',
    PRIMARY KEY (key_name, version)
);
REVOKE ALL ON SCHEMA pgcloak FROM PUBLIC;
REVOKE ALL ON TABLE pgcloak.data_keys FROM PUBLIC;
ALTER TABLE pgcloak.data_keys
    ADD COLUMN IF NOT EXISTS provider             text NOT NULL DEFAULT 'local',
    ADD COLUMN IF NOT EXISTS provider_key         text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS provider_key_version int;";

/// The upgrade alone (`keys rotate` / `keys rewrap` on a table made before providers).
const UPGRADE_SQL: &str = "ALTER TABLE pgcloak.data_keys
    ADD COLUMN IF NOT EXISTS provider             text NOT NULL DEFAULT 'local',
    ADD COLUMN IF NOT EXISTS provider_key         text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS provider_key_version int";

const SELECT_SQL: &str = "SELECT key_name, version, algorithm, wrapped_key, provider, provider_key, provider_key_version FROM pgcloak.data_keys ORDER BY key_name, version";

/// For a table not upgraded yet (a proxy reading while nobody ran `keys init` since).
const SELECT_OLD_SQL: &str = "SELECT key_name, version, algorithm, wrapped_key, 'local'::text, ''::text, NULL::int FROM pgcloak.data_keys ORDER BY key_name, version";

const HAS_PROVIDER_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = 'pgcloak.data_keys'::regclass AND attname = 'provider' AND NOT attisdropped)";

const INSERT_SQL: &str = "INSERT INTO pgcloak.data_keys (key_name, version, algorithm, wrapped_key, provider, provider_key, provider_key_version) VALUES ($1, $2, $3, $4, $5, $6, $7)";

const UPDATE_SQL: &str = "UPDATE pgcloak.data_keys SET wrapped_key = $3, provider = $4, provider_key = $5, provider_key_version = $6 WHERE key_name = $1 AND version = $2";

/// A problem running a key command. Never carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("{column}: database error: {source}")]
    ColumnDb {
        column: String,
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("key provider {0} has no in-place rewrap (only vault-transit does): use --new-keys")]
    NoRewrapLatest(&'static str),
    #[error("pgcloak.data_keys does not exist: run `pgcloak keys init` first")]
    NotInitialized,
    #[error("data key {0} does not exist: run `pgcloak keys init` first")]
    MissingKey(String),
    #[error("{0:?} is not an encrypted column in the rules (expected schema.table.column)")]
    UnknownColumn(String),
    #[error(
        "data key {key} is stored as {stored}, but the rules need {wanted} for its columns' mode"
    )]
    AlgorithmMismatch {
        key: String,
        stored: String,
        wanted: &'static str,
    },
    #[error("{0}: partitioned tables are not re-encrypted yet (its rows were left as they are)")]
    Partitioned(String),
    #[error("data key {key} has an invalid version {version}")]
    BadVersion { key: String, version: i32 },
}

/// True when `pgcloak.data_keys` exists.
pub async fn table_exists(client: &impl GenericClient) -> Result<bool, KeysError> {
    let row = client
        .query_one("SELECT to_regclass('pgcloak.data_keys') IS NOT NULL", &[])
        .await?;
    Ok(row.get(0))
}

/// Every stored (wrapped) key, ordered by name and version.
pub async fn read_wrapped(client: &impl GenericClient) -> Result<Vec<WrappedKey>, KeysError> {
    if !table_exists(client).await? {
        return Err(KeysError::NotInitialized);
    }
    let upgraded: bool = client.query_one(HAS_PROVIDER_SQL, &[]).await?.get(0);
    let sql = if upgraded { SELECT_SQL } else { SELECT_OLD_SQL };
    let rows = client.query(sql, &[]).await?;
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let version: i32 = r.get(1);
            let version = u32::try_from(version).map_err(|_| KeysError::BadVersion {
                key: name.clone(),
                version,
            })?;
            Ok(WrappedKey {
                name,
                version,
                algorithm: r.get(2),
                wrapped: r.get(3),
                by: KekRef {
                    kind: r.get(4),
                    key_id: r.get(5),
                    key_version: r
                        .get::<_, Option<i32>>(6)
                        .and_then(|v| u32::try_from(v).ok()),
                },
            })
        })
        .collect()
}

/// Fails with the first stored key the provider does not unwrap.
async fn verify_all(rows: &[WrappedKey], provider: &dyn KeyProvider) -> Result<(), KeysError> {
    unwrap_all(provider, rows).await?;
    Ok(())
}

/// Writes the wrap of an existing row (same name and version).
async fn update_wrap(client: &impl GenericClient, stored: &WrappedKey) -> Result<(), KeysError> {
    let v = i32::try_from(stored.version).unwrap_or(i32::MAX);
    let kv = stored.by.key_version.and_then(|v| i32::try_from(v).ok());
    client
        .execute(
            UPDATE_SQL,
            &[
                &stored.name,
                &v,
                &stored.wrapped,
                &stored.by.kind,
                &stored.by.key_id,
                &kv,
            ],
        )
        .await?;
    Ok(())
}

/// Every rules key name with the algorithm its columns need.
fn wanted_keys(rules: &Rules) -> BTreeMap<String, Algorithm> {
    rules
        .keys()
        .filter_map(|(name, cols)| {
            let mode = cols.first()?.mode;
            Some((name.to_owned(), Algorithm::for_mode(mode)))
        })
        .collect()
}

async fn insert(
    client: &impl GenericClient,
    provider: &dyn KeyProvider,
    name: &str,
    version: u32,
    algorithm: Algorithm,
) -> Result<(), KeysError> {
    let stored = provider
        .wrap(&DataKey::generate(name, version, algorithm))
        .await?;
    let v = i32::try_from(version).map_err(|_| KeysError::BadVersion {
        key: name.to_owned(),
        version: i32::MAX,
    })?;
    let kv = stored.by.key_version.and_then(|v| i32::try_from(v).ok());
    client
        .execute(
            INSERT_SQL,
            &[
                &stored.name,
                &v,
                &stored.algorithm,
                &stored.wrapped,
                &stored.by.kind,
                &stored.by.key_id,
                &kv,
            ],
        )
        .await?;
    Ok(())
}

/// `pgcloak keys init`: creates schema and table if needed and a version-1 key for every
/// rules key name that has none. Idempotent. Returns the names of the keys it created.
pub async fn init(
    client: &mut Client,
    rules: &Rules,
    provider: &dyn KeyProvider,
) -> Result<Vec<String>, KeysError> {
    init_except(client, rules, provider, &BTreeSet::new()).await
}

/// [`init`], creating no key named in `skip` (the keys of columns that `check` finds wrong).
pub async fn init_except(
    client: &mut Client,
    rules: &Rules,
    provider: &dyn KeyProvider,
    skip: &BTreeSet<String>,
) -> Result<Vec<String>, KeysError> {
    let tx = client.transaction().await?;
    tx.batch_execute(CREATE_SQL).await?;
    tx.batch_execute("LOCK TABLE pgcloak.data_keys IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let rows = read_wrapped(&tx).await?;
    verify_all(&rows, provider).await?;
    let mut created = Vec::new();
    for (name, algorithm) in wanted_keys(rules) {
        match rows.iter().find(|r| r.name == name) {
            Some(r) if r.algorithm != algorithm.name() => {
                return Err(KeysError::AlgorithmMismatch {
                    key: name,
                    stored: r.algorithm.clone(),
                    wanted: algorithm.name(),
                });
            }
            Some(_) => {}
            None if skip.contains(&name) => {}
            None => {
                insert(&tx, provider, &name, 1, algorithm).await?;
                created.push(name);
            }
        }
    }
    tx.commit().await?;
    Ok(created)
}

/// One stored data key for `pgcloak keys list` (never the key bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyListing {
    pub name: String,
    pub algorithm: String,
    /// `(version, state, created_at as text)`, oldest first.
    pub versions: Vec<(u32, String, String)>,
    /// The provider key that wrapped each version (same order as `versions`).
    pub wrapped_by: Vec<KekRef>,
    /// The rules columns that use it (`schema.table.column`); empty for a key no rule names.
    pub columns: Vec<String>,
}

/// `pgcloak keys list`: every stored data key with its versions and the columns using it.
pub async fn list(client: &Client, rules: &Rules) -> Result<Vec<KeyListing>, KeysError> {
    if !table_exists(client).await? {
        return Err(KeysError::NotInitialized);
    }
    let rows = client
        .query(
            "SELECT key_name, version, algorithm, state, created_at::text FROM pgcloak.data_keys \
             ORDER BY key_name, version",
            &[],
        )
        .await?;
    let wraps = read_wrapped(client).await?;
    let mut out: Vec<KeyListing> = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        let version: i32 = r.get(1);
        let version = u32::try_from(version).map_err(|_| KeysError::BadVersion {
            key: name.clone(),
            version,
        })?;
        if out.last().is_none_or(|k| k.name != name) {
            let mut columns: Vec<String> = rules
                .keys()
                .find(|(k, _)| *k == name)
                .map(|(_, cols)| cols.iter().map(|c| c.qualified()).collect())
                .unwrap_or_default();
            columns.sort();
            out.push(KeyListing {
                name: name.clone(),
                algorithm: r.get(2),
                versions: Vec::new(),
                wrapped_by: Vec::new(),
                columns,
            });
        }
        if let Some(k) = out.last_mut() {
            k.versions.push((version, r.get(3), r.get(4)));
            let by = wraps
                .iter()
                .find(|w| w.name == name && w.version == version);
            k.wrapped_by
                .push(by.map(|w| w.by.clone()).unwrap_or_default());
        }
    }
    Ok(out)
}

/// The rule of `schema.table.column` (or `table.column` in `public`; identifiers folded as
/// PostgreSQL does).
pub fn column_rule<'a>(rules: &'a Rules, column: &str) -> Result<&'a Arc<ColumnRule>, KeysError> {
    let unknown = || KeysError::UnknownColumn(column.to_owned());
    let parts = parse_qualified(column).map_err(|_| unknown())?;
    let (schema, table, col) = match parts.as_slice() {
        [s, t, c] => (s.as_str(), t.as_str(), c.as_str()),
        [t, c] => ("public", t.as_str(), c.as_str()),
        _ => return Err(unknown()),
    };
    rules.column(schema, table, col).ok_or_else(unknown)
}

/// The data key of `schema.table.column` (or `table.column` in `public`) in the rules.
fn key_of_column(rules: &Rules, column: &str) -> Result<String, KeysError> {
    Ok(column_rule(rules, column)?.key.clone())
}

/// `pgcloak keys rotate [--column schema.table.column]`: adds version max+1 to every rules
/// key (or to the key of that column). New writes use it; old versions still decrypt.
/// Returns `(key, new version)` for each key rotated.
pub async fn rotate(
    client: &mut Client,
    rules: &Rules,
    provider: &dyn KeyProvider,
    column: Option<&str>,
) -> Result<Vec<(String, u32)>, KeysError> {
    let wanted = wanted_keys(rules);
    let targets: Vec<String> = match column {
        Some(c) => vec![key_of_column(rules, c)?],
        None => wanted.keys().cloned().collect(),
    };
    let tx = client.transaction().await?;
    if !table_exists(&tx).await? {
        return Err(KeysError::NotInitialized);
    }
    tx.batch_execute("LOCK TABLE pgcloak.data_keys IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    tx.batch_execute(UPGRADE_SQL).await?;
    let rows = read_wrapped(&tx).await?;
    verify_all(&rows, provider).await?;
    let mut rotated = Vec::new();
    for name in targets {
        let mine: Vec<&WrappedKey> = rows.iter().filter(|r| r.name == name).collect();
        let (Some(last), Some(&algorithm)) = (mine.last(), wanted.get(&name)) else {
            return Err(KeysError::MissingKey(name));
        };
        let version = last.version + 1;
        insert(&tx, provider, &name, version, algorithm).await?;
        rotated.push((name, version));
    }
    tx.commit().await?;
    Ok(rotated)
}

/// Opens a transaction that has the (upgraded) key table locked against other writers.
async fn locked(client: &mut Client) -> Result<tokio_postgres::Transaction<'_>, KeysError> {
    let tx = client.transaction().await?;
    if !table_exists(&tx).await? {
        return Err(KeysError::NotInitialized);
    }
    tx.batch_execute("LOCK TABLE pgcloak.data_keys IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    tx.batch_execute(UPGRADE_SQL).await?;
    Ok(tx)
}

/// `pgcloak keys rewrap`: re-wraps every stored key under `new` (any provider, also another
/// kind) in one transaction, after `old` unwrapped each. No data is re-encrypted. Returns the
/// number of keys.
pub async fn rewrap(
    client: &mut Client,
    old: &dyn KeyProvider,
    new: &dyn KeyProvider,
) -> Result<usize, KeysError> {
    let tx = locked(client).await?;
    let rows = read_wrapped(&tx).await?;
    let keys = unwrap_all(old, &rows).await?;
    let wrapped = super::providers::wrap_all(new, &keys).await?;
    drop(keys);
    // Everything must unwrap with the new provider before the old wraps are replaced.
    verify_all(&wrapped, new).await?;
    for stored in &wrapped {
        update_wrap(&tx, stored).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// `pgcloak keys rewrap --latest`: re-wraps every key onto the latest version of the
/// provider's key without the data keys leaving the provider (Transit `rewrap`), in one
/// transaction. Returns `(keys rewrapped, keys already on the latest version)`.
pub async fn rewrap_latest(
    client: &mut Client,
    provider: &dyn KeyProvider,
) -> Result<(usize, usize), KeysError> {
    let tx = locked(client).await?;
    let rows = read_wrapped(&tx).await?;
    let (mut changed, mut same) = (0, 0);
    for row in &rows {
        let fut = provider
            .rewrap_latest(row)
            .ok_or(KeysError::NoRewrapLatest(provider.kind().name()))?;
        let stored = fut.await?;
        if stored.by == row.by {
            same += 1;
            continue;
        }
        update_wrap(&tx, &stored).await?;
        changed += 1;
    }
    tx.commit().await?;
    Ok((changed, same))
}

/// Loads and unwraps every stored key into a [`KeyRing`].
pub async fn load_keyring(
    client: &Client,
    provider: &dyn KeyProvider,
) -> Result<KeyRing, KeysError> {
    let rows = read_wrapped(client).await?;
    let keys = unwrap_all(provider, &rows).await?;
    Ok(KeyRing::from_data_keys(keys)?)
}

/// A short string that changes whenever a key is added, removed, re-wrapped or changes
/// state; poll it to notice rotations while serving (one cheap aggregate query).
pub async fn keys_fingerprint(client: &Client) -> Result<String, KeysError> {
    let row = client
        .query_one(
            "SELECT count(*)::text || ':' || coalesce(max(version), 0)::text || ':' || \
             md5(coalesce(string_agg(key_name || '/' || version || '/' || algorithm || '/' || \
             state || '/' || md5(wrapped_key), ',' ORDER BY key_name, version), '')) \
             FROM pgcloak.data_keys",
            &[],
        )
        .await?;
    Ok(row.get(0))
}
