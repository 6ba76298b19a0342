//! Secret sources the config names, read from the environment and files: the local master key
//! (`[keys] master_key_env` / `master_key_file`). This is the I/O half of the master key; the
//! key itself and its parsing from bytes are `crypto::MasterKey` (sans-IO).

use std::path::PathBuf;

use zeroize::Zeroizing;

use super::file::Keys;
use crate::crypto::{CryptoError, MasterKey};

/// Where the master key comes from. Implement this for a KMS or HSM provider.
pub trait MasterKeySource: Send + Sync {
    /// Reads and validates the key.
    fn load(&self) -> Result<MasterKey, CryptoError>;
    /// A human description for messages (e.g. "environment variable PGCLOAK_MASTER_KEY").
    fn describe(&self) -> String;
}

/// Base64 master key in an environment variable.
#[derive(Clone, Debug)]
pub struct EnvMasterKey {
    pub var: String,
}

impl MasterKeySource for EnvMasterKey {
    fn load(&self) -> Result<MasterKey, CryptoError> {
        let value = Zeroizing::new(
            std::env::var(&self.var)
                .map_err(|_| CryptoError::MasterKeyEnvUnset(self.var.clone()))?,
        );
        MasterKey::from_base64(&value, &self.describe())
    }

    fn describe(&self) -> String {
        format!("environment variable {}", self.var)
    }
}

/// Master key in a file: base64 text, or exactly 32 raw bytes.
#[derive(Clone, Debug)]
pub struct FileMasterKey {
    pub path: PathBuf,
}

impl MasterKeySource for FileMasterKey {
    fn load(&self) -> Result<MasterKey, CryptoError> {
        let bytes =
            Zeroizing::new(
                std::fs::read(&self.path).map_err(|e| CryptoError::MasterKeyFile {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?,
            );
        MasterKey::from_file_bytes(&bytes, &self.describe())
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// The source the `[keys]` config table names.
pub fn master_key_source(keys: &Keys) -> Result<Box<dyn MasterKeySource>, CryptoError> {
    match (&keys.master_key_env, &keys.master_key_file) {
        (Some(var), _) => Ok(Box::new(EnvMasterKey { var: var.clone() })),
        (None, Some(path)) => Ok(Box::new(FileMasterKey { path: path.clone() })),
        (None, None) => Err(CryptoError::NoMasterKeySource),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::crypto::gen_master_key;

    #[test]
    fn env_and_file_sources_load_and_validate() {
        let b64 = gen_master_key();
        assert_eq!(STANDARD.decode(&b64).unwrap().len(), 32);
        let env = EnvMasterKey {
            var: "PGCLOAK_TEST_SURELY_UNSET_VAR".into(),
        };
        assert!(matches!(env.load(), Err(CryptoError::MasterKeyEnvUnset(_))));

        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("k.b64");
        std::fs::write(&text, format!("{b64}\n")).unwrap();
        let raw = dir.path().join("k.bin");
        std::fs::write(&raw, [5u8; 32]).unwrap();
        let bad = dir.path().join("k.bad");
        std::fs::write(&bad, [5u8; 31]).unwrap();
        let keys = |p: &std::path::Path| Keys {
            master_key_file: Some(p.to_owned()),
            ..Keys::default()
        };
        for ok in [&text, &raw] {
            assert!(master_key_source(&keys(ok)).unwrap().load().is_ok());
        }
        assert!(master_key_source(&keys(&bad)).unwrap().load().is_err());
        let missing = master_key_source(&keys(&dir.path().join("none")))
            .unwrap()
            .load();
        assert!(matches!(missing, Err(CryptoError::MasterKeyFile { .. })));
        assert!(master_key_source(&Keys::default()).is_err());
    }
}
