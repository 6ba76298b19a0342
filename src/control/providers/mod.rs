//! Key providers (spec §7): what wraps and unwraps data keys. [`KeyProvider`] is the whole
//! interface — `wrap(&DataKey) -> WrappedKey`, `unwrap(&WrappedKey) -> DataKey` — so a
//! provider never hands out a key-encryption key: with every provider but [`local`] the KEK
//! stays in the KMS or HSM, and only `local` ever constructs a [`crate::crypto::MasterKey`].
//!
//! One file per provider: [`local`] (master key from an env var or a file), [`vault`]
//! (Vault/OpenBao Transit), [`aws_kms`] (AWS KMS), [`pkcs11`] (an HSM through a PKCS#11
//! module). GCP KMS and Azure Key Vault would be one more file each implementing the trait and
//! one arm in [`from_config`]; they are not yet available.
//!
//! Every call has a timeout; none runs on the per-statement path (the control plane unwraps
//! each data key version once per key-ring load). Every wrap binds the data key's identity
//! (name, version, algorithm: [`DataKey::wrap_aad`]) and records the provider key that made it
//! ([`KekRef`]).

pub mod aws_kms;
pub mod local;
pub mod pkcs11;
pub mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::keys::{Keys, ProviderKind};
use crate::crypto::{Algorithm, CryptoError, DataKey, KekRef, WrappedKey};

/// What a provider call returns.
pub type ProviderFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// Why a provider call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused, DNS, TLS, module not loadable.
    Unreachable,
    /// No answer within the configured timeout.
    Timeout,
    /// Authenticated but not allowed (Vault 403, KMS AccessDenied, wrong PIN…).
    Denied,
    /// Wrong key id, key not found, disabled key, a bad request.
    Refused,
    /// The provider did not unwrap a data key.
    Unwrap {
        key: String,
        version: u32,
        by: String,
    },
    /// The provider's configuration (missing env var, unreadable file).
    Config,
}

/// A provider call failed. Names the provider, its address and the cause; never carries key
/// bytes, tokens or PINs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ProviderError {
    pub provider: &'static str,
    pub address: String,
    pub kind: FailureKind,
    pub cause: String,
}

impl ProviderError {
    pub fn new(
        provider: ProviderKind,
        address: &str,
        kind: FailureKind,
        cause: impl Into<String>,
    ) -> Self {
        ProviderError {
            provider: provider.name(),
            address: address.to_owned(),
            kind,
            cause: cause.into(),
        }
    }

    fn describe(&self) -> String {
        let (p, a, c) = (self.provider, &self.address, &self.cause);
        match &self.kind {
            FailureKind::Unreachable => format!("key provider {p} at {a} is unreachable: {c}"),
            FailureKind::Timeout => format!("key provider {p} at {a} did not answer: {c}"),
            FailureKind::Denied => format!("key provider {p} at {a} denied the request: {c}"),
            FailureKind::Refused => format!("key provider {p} at {a} refused the request: {c}"),
            FailureKind::Config => format!("key provider {p} ({a}): {c}"),
            FailureKind::Unwrap { key, version, by } => format!(
                "key provider {p} at {a} does not unwrap data key {key} v{version} (wrapped by {by}): {c}"
            ),
        }
    }

    /// The same failure as an unwrap failure of `stored`.
    pub fn for_key(mut self, stored: &WrappedKey) -> Self {
        if matches!(self.kind, FailureKind::Refused | FailureKind::Denied) {
            self.kind = FailureKind::Unwrap {
                key: stored.name.clone(),
                version: stored.version,
                by: stored.by.to_string(),
            };
        }
        self
    }

    /// A permission problem (`check` then prints the least-privilege policy).
    pub fn is_denied(&self) -> bool {
        self.kind == FailureKind::Denied
    }
}

/// Wraps and unwraps data keys with a key-encryption key the provider holds.
pub trait KeyProvider: Send + Sync {
    /// The provider kind.
    fn kind(&self) -> ProviderKind;
    /// Where the provider is (URL, region/endpoint, module and token), for messages.
    fn address(&self) -> String;
    /// The key new wraps are made with, as far as known without a call.
    fn kek(&self) -> KekRef;
    /// Wraps `key` (binding its name, version and algorithm).
    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey>;
    /// Unwraps a stored key.
    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey>;
    /// The least-privilege policy this configuration needs, for `check` and the README.
    fn policy(&self) -> String;

    /// The audit trail's HMAC key, when the provider derives it itself (`local`: from the
    /// master key); `None` for providers whose key never leaves the KMS/HSM: their audit key is
    /// stored wrapped in the rules database ([`crate::audit::key`]).
    fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        None
    }

    /// `keys init`: creates the provider's key if the provider can and it is absent
    /// (PKCS#11); the others only verify.
    fn prepare(&self) -> ProviderFuture<'_, ()> {
        self.verify()
    }

    /// Re-wraps `stored` onto the provider key's latest version without the data key leaving
    /// the provider (Transit `rewrap`); `None` when the provider has no such operation.
    fn rewrap_latest<'a>(
        &'a self,
        _stored: &'a WrappedKey,
    ) -> Option<ProviderFuture<'a, WrappedKey>> {
        None
    }

    /// Reachable, authenticated, and the key wraps and unwraps: round-trips a probe key.
    fn verify(&self) -> ProviderFuture<'_, ()> {
        Box::pin(async move {
            let probe = DataKey::generate("pgcloak.provider-probe", 1, Algorithm::Aes256Gcm);
            let stored = self.wrap(&probe).await?;
            let back = self.unwrap(&stored).await?;
            if back.material() != probe.material() {
                return Err(ProviderError::new(
                    self.kind(),
                    &self.address(),
                    FailureKind::Refused,
                    "a probe key did not round-trip",
                ));
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for dyn KeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyProvider({} at {})",
            self.kind().name(),
            self.address()
        )
    }
}

/// The provider the `[keys]` table describes. Reads secrets named there (local master key,
/// Vault token file…); connects on first use.
pub fn from_config(keys: &Keys) -> Result<Arc<dyn KeyProvider>, ProviderError> {
    let config_err = |kind: ProviderKind, m: &str| {
        ProviderError::new(kind, "config", FailureKind::Config, m.to_owned())
    };
    Ok(match keys.kind() {
        ProviderKind::Local => Arc::new(local::LocalProvider::from_config(keys)?),
        ProviderKind::VaultTransit => {
            let v = keys
                .vault
                .as_ref()
                .ok_or_else(|| config_err(ProviderKind::VaultTransit, "no [keys.vault] table"))?;
            Arc::new(vault::VaultProvider::new(v)?)
        }
        ProviderKind::AwsKms => {
            let a = keys
                .aws_kms
                .as_ref()
                .ok_or_else(|| config_err(ProviderKind::AwsKms, "no [keys.aws_kms] table"))?;
            Arc::new(aws_kms::AwsKmsProvider::new(a))
        }
        ProviderKind::Pkcs11 => {
            let p = keys
                .pkcs11
                .as_ref()
                .ok_or_else(|| config_err(ProviderKind::Pkcs11, "no [keys.pkcs11] table"))?;
            Arc::new(pkcs11::Pkcs11Provider::new(p)?)
        }
    })
}

/// Runs `fut` with the provider's timeout.
pub(crate) async fn timed<T>(
    kind: ProviderKind,
    address: String,
    secs: u64,
    fut: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let limit = Duration::from_secs(secs.max(1));
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(ProviderError::new(
            kind,
            &address,
            FailureKind::Timeout,
            format!("no answer within {}s", limit.as_secs()),
        ))
    })
}

/// Builds the data key `stored` holds from unwrapped material (checks algorithm and length).
pub(crate) fn data_key_from(
    stored: &WrappedKey,
    material: zeroize::Zeroizing<Vec<u8>>,
) -> Result<DataKey, CryptoError> {
    let algorithm = stored_algorithm(stored)?;
    DataKey::from_material(&stored.name, stored.version, algorithm, material)
}

/// The algorithm `stored` names.
pub(crate) fn stored_algorithm(stored: &WrappedKey) -> Result<Algorithm, CryptoError> {
    Algorithm::from_name(&stored.algorithm).ok_or_else(|| CryptoError::UnknownAlgorithm {
        key: stored.name.clone(),
        algorithm: stored.algorithm.clone(),
    })
}

/// Unwraps every row, a few at a time, in order. Fails with the first that does not unwrap.
pub async fn unwrap_all(
    provider: &dyn KeyProvider,
    rows: &[WrappedKey],
) -> Result<Vec<DataKey>, ProviderError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let calls: Vec<ProviderFuture<'_, DataKey>> = rows.iter().map(|r| provider.unwrap(r)).collect();
    stream::iter(calls).buffered(8).try_collect().await
}

/// Wraps every key, a few at a time, in order.
pub async fn wrap_all(
    provider: &dyn KeyProvider,
    keys: &[DataKey],
) -> Result<Vec<WrappedKey>, ProviderError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let calls: Vec<ProviderFuture<'_, WrappedKey>> =
        keys.iter().map(|k| provider.wrap(k)).collect();
    stream::iter(calls).buffered(8).try_collect().await
}

/// The error for a row another kind of provider wrapped (none when `stored` is this kind's):
/// "… wrapped by vault-transit key transit/pgcloak v3, which this config cannot reach".
pub(crate) fn foreign(
    kind: ProviderKind,
    address: &str,
    stored: &WrappedKey,
) -> Option<ProviderError> {
    (stored.by.kind != kind.name()).then(|| {
        ProviderError::new(
            kind,
            address,
            FailureKind::Unwrap {
                key: stored.name.clone(),
                version: stored.version,
                by: stored.by.to_string(),
            },
            format!(
                "data key {} v{} is wrapped by {}, which this config cannot reach (run `pgcloak keys rewrap --new-keys` from a config that can)",
                stored.name, stored.version, stored.by
            ),
        )
    })
}
