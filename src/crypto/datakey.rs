//! Data keys (spec §7): random per-key material (32 bytes for AES-256-GCM, 64 for AES-SIV),
//! stored wrapped by a key provider (the local master key with AES-256-GCM, or a KMS/HSM key
//! that never leaves it). Every wrap binds the key name, version and algorithm
//! ([`DataKey::wrap_aad`]), so a wrapped key copied to another row does not unwrap, and every
//! stored wrap records which provider key made it ([`KekRef`]).

use zeroize::Zeroizing;

use super::CryptoError;
use crate::rules::Mode;

/// The algorithm a data key is for; stored in `pgcloak.data_keys.algorithm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Randomized columns.
    Aes256Gcm,
    /// Deterministic columns.
    Aes256Siv,
}

impl Algorithm {
    /// The name stored in the database.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "aes-256-gcm",
            Algorithm::Aes256Siv => "aes-256-siv",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-256-gcm" => Some(Algorithm::Aes256Gcm),
            "aes-256-siv" => Some(Algorithm::Aes256Siv),
            _ => None,
        }
    }

    /// The algorithm a column of `mode` needs.
    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Randomized => Algorithm::Aes256Gcm,
            Mode::Deterministic => Algorithm::Aes256Siv,
        }
    }

    /// The column mode this algorithm serves.
    pub fn mode(self) -> Mode {
        match self {
            Algorithm::Aes256Gcm => Mode::Randomized,
            Algorithm::Aes256Siv => Mode::Deterministic,
        }
    }

    /// Key material length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Algorithm::Aes256Gcm => 32,
            Algorithm::Aes256Siv => 64,
        }
    }
}

/// An unwrapped data key. Zeroized on drop; `Debug` shows no bytes.
pub struct DataKey {
    pub name: String,
    pub version: u32,
    pub algorithm: Algorithm,
    material: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("algorithm", &self.algorithm.name())
            .field("material", &"<redacted>")
            .finish()
    }
}

impl DataKey {
    /// A fresh random key from the OS RNG.
    pub fn generate(name: &str, version: u32, algorithm: Algorithm) -> Self {
        let mut material = Zeroizing::new(vec![0u8; algorithm.key_len()]);
        super::fill_os_random(&mut material);
        DataKey {
            name: name.to_owned(),
            version,
            algorithm,
            material,
        }
    }

    /// A key from known material (tests, benches, unwrapping).
    pub fn from_material(
        name: &str,
        version: u32,
        algorithm: Algorithm,
        material: Zeroizing<Vec<u8>>,
    ) -> Result<Self, CryptoError> {
        if material.len() != algorithm.key_len() {
            return Err(CryptoError::KeyLength {
                key: name.to_owned(),
                expected: algorithm.key_len(),
            });
        }
        Ok(DataKey {
            name: name.to_owned(),
            version,
            algorithm,
            material,
        })
    }

    /// The raw key bytes (for building a cipher or wrapping).
    pub fn material(&self) -> &[u8] {
        &self.material
    }

    /// Associated data of the wrap: binds name, version and algorithm (every provider binds
    /// it: as AES-GCM associated data, a Transit derivation context, a KMS encryption context).
    pub fn wrap_aad(name: &str, version: u32, algorithm: Algorithm) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + name.len());
        aad.extend_from_slice(b"pgcloak-data-key\x01");
        aad.extend_from_slice(&(name.len() as u32).to_be_bytes());
        aad.extend_from_slice(name.as_bytes());
        aad.extend_from_slice(&version.to_be_bytes());
        aad.extend_from_slice(algorithm.name().as_bytes());
        aad
    }
}

/// Which key-encryption key wrapped a stored data key (`pgcloak.data_keys.provider`,
/// `provider_key`, `provider_key_version`). Rows written before providers existed read as
/// `local` with an empty key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KekRef {
    /// `local`, `vault-transit`, `aws-kms` or `pkcs11`.
    pub kind: String,
    /// The provider's name for the key (`local`: a fingerprint of the master key; Transit:
    /// `mount/key`; KMS: the key ARN; PKCS#11: `token/label`). Empty when unknown.
    pub key_id: String,
    /// The key's version where the provider has one (Transit).
    pub key_version: Option<u32>,
}

impl std::fmt::Display for KekRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = if self.key_id.is_empty() {
            "(unrecorded)"
        } else {
            &self.key_id
        };
        write!(f, "{} key {id}", self.kind)?;
        if let Some(v) = self.key_version {
            write!(f, " v{v}")?;
        }
        Ok(())
    }
}

/// A data key as stored in `pgcloak.data_keys`: wrapped, with its metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub name: String,
    pub version: u32,
    /// The stored algorithm name (validated on unwrap).
    pub algorithm: String,
    /// The provider's wrap (`local`: `0x01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)` under the
    /// master key).
    pub wrapped: Vec<u8>,
    /// The provider key that made `wrapped`.
    pub by: KekRef,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field("by", &self.by.kind)
            .finish_non_exhaustive()
    }
}
