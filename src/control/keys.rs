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
const CREATE_SQL: &str = "
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::config::parse_rules;
    use crate::crypto::MasterKey;
    use crate::devdb::{DevDb, DevDbOptions};
    use std::path::Path;

    fn rules() -> Rules {
        let text = r#"
[tables.patients]
ssn = { type = "text", mode = "deterministic" }
dx  = { type = "text", mode = "randomized" }
[tables."ledger.a"]
iban = { type = "text", mode = "deterministic", key = "iban" }
[tables."ledger.b"]
iban = { type = "text", mode = "deterministic", key = "iban" }
"#;
        Rules::from_columns(parse_rules(text, Path::new("t.toml")).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn init_rotate_rewrap_load_against_postgres() {
        let db = DevDb::start(DevDbOptions::default()).await.unwrap();
        let mut c = db.superuser_client("app").await.unwrap();
        let (rules, master) = (rules(), MasterKey::generate());
        assert!(matches!(
            load_keyring(&c, &master).await,
            Err(KeysError::NotInitialized)
        ));

        let skip = BTreeSet::from(["public.patients.dx".to_owned()]);
        let created = init_except(&mut c, &rules, &master, &skip).await.unwrap();
        assert_eq!(created, ["iban", "public.patients.ssn"]);
        let created = init(&mut c, &rules, &master).await.unwrap();
        assert_eq!(created, ["public.patients.dx"]);
        assert!(
            init(&mut c, &rules, &master).await.unwrap().is_empty(),
            "idempotent"
        );
        let listed = list(&c, &rules).await.unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].name, "iban");
        assert_eq!(listed[0].columns, ["ledger.a.iban", "ledger.b.iban"]);
        assert_eq!(listed[0].algorithm, "aes-256-siv");
        assert_eq!(listed[0].versions.len(), 1);
        assert_eq!(listed[0].wrapped_by, [master.kek_ref()]);
        assert_eq!(listed[0].versions[0].1, "active");
        let ring = load_keyring(&c, &master).await.unwrap();
        assert_eq!(ring.key("iban").unwrap().mode(), Mode::Deterministic);
        assert_eq!(
            ring.key("public.patients.dx").unwrap().mode(),
            Mode::Randomized
        );
        let old = ring
            .encrypt("public.patients.ssn", Mode::Deterministic, b"123")
            .unwrap();

        // A wrong master key is refused before anything is written.
        let wrong = MasterKey::generate();
        let e = init(&mut c, &rules, &wrong).await.unwrap_err().to_string();
        assert!(e.contains("wrong master key?"), "{e}");
        assert!(rotate(&mut c, &rules, &wrong, None).await.is_err());

        let fp0 = keys_fingerprint(&c).await.unwrap();
        let r = rotate(&mut c, &rules, &master, Some("Patients.SSN"))
            .await
            .unwrap();
        assert_eq!(r, [("public.patients.ssn".to_owned(), 2)]);
        let fp1 = keys_fingerprint(&c).await.unwrap();
        assert_ne!(fp0, fp1);
        let all = rotate(&mut c, &rules, &master, None).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.contains(&("public.patients.ssn".to_owned(), 3)));
        assert!(matches!(
            rotate(&mut c, &rules, &master, Some("public.patients.nope")).await,
            Err(KeysError::UnknownColumn(_))
        ));
        let ring = load_keyring(&c, &master).await.unwrap();
        let ssn = ring.key("public.patients.ssn").unwrap();
        assert_eq!(ssn.current_version(), 3);
        assert_eq!(ssn.decrypt(&old).unwrap().as_slice(), b"123");
        let new = ssn.encrypt(Mode::Deterministic, b"123").unwrap();
        assert_eq!(&new[2..6], &[0, 0, 0, 3]);

        let new_master = MasterKey::generate();
        assert!(rewrap(&mut c, &wrong, &new_master).await.is_err());
        assert_eq!(rewrap(&mut c, &master, &new_master).await.unwrap(), 7);
        assert_ne!(keys_fingerprint(&c).await.unwrap(), fp1);
        let rows = read_wrapped(&c).await.unwrap();
        assert!(rows.iter().all(|r| new_master.unwrap(r).is_ok()));
        assert!(rows.iter().all(|r| master.unwrap(r).is_err()));
        let ring = load_keyring(&c, &new_master).await.unwrap();
        assert_eq!(
            ring.decrypt("public.patients.ssn", &old)
                .unwrap()
                .as_slice(),
            b"123"
        );
    }

    #[tokio::test]
    async fn a_table_from_before_providers_reads_as_local_and_is_upgraded() {
        let db = DevDb::start(DevDbOptions::default()).await.unwrap();
        let mut c = db.superuser_client("app").await.unwrap();
        let (rules, master) = (rules(), MasterKey::generate());
        // The table as `keys init` made it before providers existed, with one key in it.
        let old = CREATE_SQL.split("ALTER TABLE").next().unwrap();
        c.batch_execute(old).await.unwrap();
        let stored = master.wrap(&DataKey::generate("iban", 1, Algorithm::Aes256Siv));
        c.execute(
            "INSERT INTO pgcloak.data_keys (key_name, version, algorithm, wrapped_key) VALUES ($1, 1, $2, $3)",
            &[&stored.name, &stored.algorithm, &stored.wrapped],
        )
        .await
        .unwrap();
        let rows = read_wrapped(&c).await.unwrap();
        assert_eq!(
            (rows[0].by.kind.as_str(), rows[0].by.key_id.as_str()),
            ("local", "")
        );
        assert!(load_keyring(&c, &master).await.unwrap().key("iban").is_ok());
        // init upgrades in place (twice: idempotent) and records the provider key of new rows.
        init(&mut c, &rules, &master).await.unwrap();
        init(&mut c, &rules, &master).await.unwrap();
        let rows = read_wrapped(&c).await.unwrap();
        assert_eq!(rows.len(), 3);
        let iban = rows.iter().find(|r| r.name == "iban").unwrap();
        assert_eq!(iban.by.key_id, "", "existing rows keep what they had");
        let ssn = rows
            .iter()
            .find(|r| r.name == "public.patients.ssn")
            .unwrap();
        assert_eq!(ssn.by, master.kek_ref());
        // A rewrap records the new key on every row.
        let new = MasterKey::generate();
        assert_eq!(rewrap(&mut c, &master, &new).await.unwrap(), 3);
        let rows = read_wrapped(&c).await.unwrap();
        assert!(rows.iter().all(|r| r.by == new.kek_ref()));
        assert_ne!(new.kek_ref(), master.kek_ref());
        // A local provider refuses, naming it, a row another provider wrapped.
        c.execute("UPDATE pgcloak.data_keys SET provider = 'vault-transit', provider_key = 'transit/pgcloak', provider_key_version = 3 WHERE key_name = 'iban'", &[])
            .await
            .unwrap();
        let e = load_keyring(&c, &new).await.unwrap_err().to_string();
        assert!(
            e.contains("data key iban v1 is wrapped by vault-transit key transit/pgcloak v3, which this config cannot reach"),
            "{e}"
        );
    }
}
