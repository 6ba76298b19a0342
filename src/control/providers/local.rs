//! The `local` provider (development): the data keys are wrapped with AES-256-GCM under a
//! 32-byte master key read from `[keys] master_key_env` or `master_key_file`
//! ([`crate::crypto::MasterKey`]). This is the only provider that constructs a `MasterKey`, and
//! the only one whose key-encryption key is in pgcloak's memory.

use super::{FailureKind, KeyProvider, ProviderError, ProviderFuture, foreign};
use crate::config::keys::{Keys, ProviderKind};
use crate::config::secrets::master_key_source;
use crate::crypto::{DataKey, KekRef, MasterKey, WrappedKey};

/// Wraps under a local master key.
#[derive(Debug)]
pub struct LocalProvider {
    master: MasterKey,
    source: String,
}

impl LocalProvider {
    /// Over an already loaded master key (`source` describes where it came from).
    pub fn new(master: MasterKey, source: impl Into<String>) -> Self {
        LocalProvider {
            master,
            source: source.into(),
        }
    }

    /// Reads the master key the `[keys]` table names.
    pub fn from_config(keys: &Keys) -> Result<Self, ProviderError> {
        let err = |e: crate::crypto::CryptoError| {
            ProviderError::new(
                ProviderKind::Local,
                "config",
                FailureKind::Config,
                e.to_string(),
            )
        };
        let source = master_key_source(keys).map_err(err)?;
        let master = source.load().map_err(err)?;
        Ok(LocalProvider::new(master, source.describe()))
    }
}

impl KeyProvider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn address(&self) -> String {
        self.source.clone()
    }

    fn kek(&self) -> KekRef {
        self.master.kek_ref()
    }

    fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        Some(crate::audit::AuditKey::from_master(&self.master))
    }

    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey> {
        let wrapped = self.master.wrap(key);
        Box::pin(async move { Ok(wrapped) })
    }

    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey> {
        let result = match foreign(ProviderKind::Local, &self.source, stored) {
            Some(e) => Err(e),
            None => self.master.unwrap(stored).map_err(|e| {
                ProviderError::new(
                    ProviderKind::Local,
                    &self.source,
                    FailureKind::Refused,
                    e.to_string(),
                )
                .for_key(stored)
            }),
        };
        Box::pin(async move { result })
    }

    fn policy(&self) -> String {
        format!(
            "provider local: the master key ({}) must be readable by pgcloak only (file mode 0600, or a secret env var); use a KMS or HSM provider in production",
            self.source
        )
    }
}

/// A bare master key is a local provider too (tests and `keys rewrap --new-master-key-env`).
impl KeyProvider for MasterKey {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    fn address(&self) -> String {
        "master key".to_owned()
    }

    fn kek(&self) -> KekRef {
        self.kek_ref()
    }

    fn audit_key(&self) -> Option<crate::audit::AuditKey> {
        Some(crate::audit::AuditKey::from_master(self))
    }

    fn wrap<'a>(&'a self, key: &'a DataKey) -> ProviderFuture<'a, WrappedKey> {
        let wrapped = MasterKey::wrap(self, key);
        Box::pin(async move { Ok(wrapped) })
    }

    fn unwrap<'a>(&'a self, stored: &'a WrappedKey) -> ProviderFuture<'a, DataKey> {
        let result = match foreign(ProviderKind::Local, "master key", stored) {
            Some(e) => Err(e),
            None => MasterKey::unwrap(self, stored).map_err(|e| {
                ProviderError::new(
                    ProviderKind::Local,
                    "master key",
                    FailureKind::Refused,
                    e.to_string(),
                )
                .for_key(stored)
            }),
        };
        Box::pin(async move { result })
    }

    fn policy(&self) -> String {
        "provider local: keep the master key readable by pgcloak only".to_owned()
    }
}
