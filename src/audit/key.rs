//! Where the audit trail's HMAC key comes from (spec §8).
//!
//! - `local` provider: derived from the master key with HKDF under [`super::KEY_LABEL`]; no
//!   database is needed (`pgcloak audit verify` works offline).
//! - any other provider (Vault/OpenBao Transit, AWS KMS, PKCS#11), whose key-encryption key
//!   never leaves the KMS/HSM: a random 32-byte key, wrapped by the provider exactly as a data
//!   key is ([`KeyProvider::wrap`], name [`AUDIT_KEY_NAME`], version 1) and kept in the table
//!   `pgcloak.audit_key` (one row) of the first database the rules name. The first process
//!   that needs it creates it (`INSERT … ON CONFLICT DO NOTHING`, so replicas starting together
//!   agree on one key); every later one unwraps the same row, so the chain continues across
//!   restarts, replicas and CLI runs. `pgcloak keys rewrap` re-wraps the row with the data keys
//!   (and, from `local` to another provider, stores the derived key so the trail goes on).

use tokio_postgres::GenericClient;
use zeroize::Zeroizing;

use super::AuditKey;
use crate::config::Config;
use crate::config::keys::ProviderKind;
use crate::control::providers::{KeyProvider, ProviderError};
use crate::crypto::{Algorithm, DataKey, KekRef, WrappedKey};

/// The name the audit key is wrapped under (bound into the wrap like a data key's name).
pub const AUDIT_KEY_NAME: &str = "pgcloak.audit-trail";

const CREATE_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS pgcloak;
CREATE TABLE IF NOT EXISTS pgcloak.audit_key (
    id                   int         PRIMARY KEY CHECK (id = 1),
    wrapped_key          bytea       NOT NULL,
    provider             text        NOT NULL,
    provider_key         text        NOT NULL,
    provider_key_version int,
    created_at           timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON SCHEMA pgcloak FROM PUBLIC;
REVOKE ALL ON TABLE pgcloak.audit_key FROM PUBLIC;";

const SELECT_SQL: &str = "SELECT wrapped_key, provider, provider_key, provider_key_version \
                          FROM pgcloak.audit_key WHERE id = 1";

const UPSERT_SQL: &str = "INSERT INTO pgcloak.audit_key (id, wrapped_key, provider, provider_key, \
                          provider_key_version) VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO ";

/// The audit key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error(
        "the audit key of key provider {0} is kept in the first rules database, and the config \
         names no rules file: add one (`rules = [...]`) or use provider local"
    )]
    NoDatabase(&'static str),
    #[error(
        "no audit key is stored in pgcloak.audit_key of database {0}: no process with this \
         config has written an audit record there yet (or the row was deleted)"
    )]
    NotStored(String),
    #[error(transparent)]
    Rules(#[from] crate::config::RulesError),
    #[error("audit key: {0}")]
    Control(#[from] crate::control::ControlError),
    #[error("audit key (pgcloak.audit_key): database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("audit key: {0}")]
    Provider(#[from] ProviderError),
    #[error("audit key: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// The audit key for `provider`: the derived one for `local`, else the stored one of the
/// first rules database over the control login — created there if absent when `create`
/// (writers), an error otherwise (`audit verify` changes nothing).
pub async fn resolve(
    cfg: &Config,
    password: &str,
    provider: &dyn KeyProvider,
    create: bool,
) -> Result<AuditKey, AuditKeyError> {
    if let Some(k) = provider.audit_key() {
        return Ok(k);
    }
    let database = crate::config::load_rules(&cfg.rules)?
        .into_iter()
        .next()
        .ok_or(AuditKeyError::NoDatabase(provider.kind().name()))?
        .database;
    let client = crate::control::connect(cfg, password, &database).await?;
    if create {
        return load_or_create(&client, provider).await;
    }
    let row = stored(&client)
        .await?
        .ok_or(AuditKeyError::NotStored(database))?;
    unwrap(provider, &row).await
}

fn to_wrapped(row: &tokio_postgres::Row) -> WrappedKey {
    WrappedKey {
        name: AUDIT_KEY_NAME.to_owned(),
        version: 1,
        algorithm: Algorithm::Aes256Gcm.name().to_owned(),
        wrapped: row.get(0),
        by: KekRef {
            kind: row.get(1),
            key_id: row.get(2),
            key_version: row
                .get::<_, Option<i32>>(3)
                .and_then(|v| u32::try_from(v).ok()),
        },
    }
}

async fn stored(client: &impl GenericClient) -> Result<Option<WrappedKey>, AuditKeyError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('pgcloak.audit_key') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt(SELECT_SQL, &[])
        .await?
        .map(|r| to_wrapped(&r)))
}

/// Stores `stored` as the audit key row (`replace`: over an existing one).
async fn put(
    client: &impl GenericClient,
    stored: &WrappedKey,
    replace: bool,
) -> Result<(), AuditKeyError> {
    client.batch_execute(CREATE_SQL).await?;
    let kv = stored.by.key_version.and_then(|v| i32::try_from(v).ok());
    let tail = if replace {
        "UPDATE SET wrapped_key = EXCLUDED.wrapped_key, provider = EXCLUDED.provider, \
         provider_key = EXCLUDED.provider_key, provider_key_version = EXCLUDED.provider_key_version"
    } else {
        "NOTHING"
    };
    client
        .execute(
            &format!("{UPSERT_SQL}{tail}"),
            &[&stored.wrapped, &stored.by.kind, &stored.by.key_id, &kv],
        )
        .await?;
    Ok(())
}

async fn unwrap(
    provider: &dyn KeyProvider,
    stored: &WrappedKey,
) -> Result<AuditKey, AuditKeyError> {
    let key = provider.unwrap(stored).await?;
    let bytes: [u8; 32] =
        key.material()
            .try_into()
            .map_err(|_| crate::crypto::CryptoError::KeyLength {
                key: AUDIT_KEY_NAME.to_owned(),
                expected: 32,
            })?;
    Ok(AuditKey(Zeroizing::new(bytes)))
}

/// The stored audit key, unwrapped by `provider`; a fresh one is stored first if there is
/// none (a concurrent creator wins: its row is the one read back).
pub async fn load_or_create(
    client: &impl GenericClient,
    provider: &dyn KeyProvider,
) -> Result<AuditKey, AuditKeyError> {
    if stored(client).await?.is_none() {
        let fresh = DataKey::generate(AUDIT_KEY_NAME, 1, Algorithm::Aes256Gcm);
        put(client, &provider.wrap(&fresh).await?, false).await?;
    }
    let row = stored(client)
        .await?
        .ok_or_else(|| AuditKeyError::NotStored("(its control login)".to_owned()))?;
    unwrap(provider, &row).await
}

/// `keys rewrap`: re-wraps the stored audit key under `new` (checked to unwrap before it is
/// written). With none stored and `old` local, stores the key derived from the old master key,
/// so a trail begun under `local` continues under `new`. Returns whether a row was written.
pub async fn rewrap(
    client: &impl GenericClient,
    old: &dyn KeyProvider,
    new: &dyn KeyProvider,
) -> Result<bool, AuditKeyError> {
    let key = match stored(client).await? {
        Some(row) => unwrap(old, &row).await?,
        None => match old.audit_key() {
            Some(k) if new.kind() != ProviderKind::Local => k,
            _ => return Ok(false),
        },
    };
    let data = DataKey::from_material(
        AUDIT_KEY_NAME,
        1,
        Algorithm::Aes256Gcm,
        Zeroizing::new(key.0.to_vec()),
    )?;
    let wrapped = new.wrap(&data).await?;
    unwrap(new, &wrapped).await?;
    put(client, &wrapped, true).await?;
    Ok(true)
}

/// `keys rewrap --latest`: the stored audit key onto the provider key's latest version
/// (nothing when none is stored or the provider has no such operation).
pub async fn rewrap_latest(
    client: &impl GenericClient,
    provider: &dyn KeyProvider,
) -> Result<bool, AuditKeyError> {
    let Some(row) = stored(client).await? else {
        return Ok(false);
    };
    let Some(fut) = provider.rewrap_latest(&row) else {
        return Ok(false);
    };
    let wrapped = fut.await?;
    if wrapped.by == row.by {
        return Ok(false);
    }
    put(client, &wrapped, true).await?;
    Ok(true)
}
