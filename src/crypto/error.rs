//! The crypto layer's error type. Messages name keys and versions, never key bytes or
//! plaintext.

use std::path::PathBuf;

/// Anything that can go wrong encrypting, decrypting, or handling keys.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The stored value is shorter than its header and body require.
    #[error("stored value is truncated ({len} bytes)")]
    Truncated { len: usize },
    /// The first byte is not a format version this build knows.
    #[error("stored value has unknown format version {0:#04x}")]
    UnknownVersion(u8),
    /// The mode byte is neither randomized nor deterministic.
    #[error("stored value has unknown mode {0:#04x}")]
    UnknownMode(u8),
    /// No data key of that name is loaded.
    #[error("no data key named {0} (run `pgcloak keys init`)")]
    UnknownKey(String),
    /// The value names a key version the key ring does not hold.
    #[error("data key {key} has no version {version}")]
    UnknownKeyVersion { key: String, version: u32 },
    /// The value (or the request) uses a mode the data key is not for.
    #[error("data key {key} is a {key_mode} key, but the value is {value_mode}")]
    ModeMismatch {
        key: String,
        key_mode: &'static str,
        value_mode: &'static str,
    },
    /// The tag did not verify: the value was altered, or encrypted under another key.
    #[error("authentication failed: the value was altered or encrypted under another key")]
    Authentication,
    /// The value is too large for the cipher.
    #[error("value too large to encrypt")]
    TooLarge,
    /// Key material of the wrong length.
    #[error("data key {key}: key material must be {expected} bytes")]
    KeyLength { key: String, expected: usize },
    /// An `algorithm` string that is neither `aes-256-gcm` nor `aes-256-siv`.
    #[error("data key {key} has unknown algorithm {algorithm:?}")]
    UnknownAlgorithm { key: String, algorithm: String },
    /// The master key failed to unwrap a data key.
    #[error("master key does not unwrap data key {key} v{version}: wrong master key?")]
    Unwrap { key: String, version: u32 },
    /// Neither `keys.master_key_env` nor `keys.master_key_file` is configured.
    #[error("no master key configured: set keys.master_key_env or keys.master_key_file")]
    NoMasterKeySource,
    /// The master key environment variable is not set.
    #[error("master key environment variable {0} is not set")]
    MasterKeyEnvUnset(String),
    /// The master key file cannot be read.
    #[error("cannot read master key file {path}: {message}")]
    MasterKeyFile { path: PathBuf, message: String },
    /// The master key is not valid base64.
    #[error("master key from {source_name} is not valid base64")]
    MasterKeyBase64 { source_name: String },
    /// The master key has the wrong length.
    #[error(
        "master key from {source_name} is {len} bytes; it must be 32 (generate one with `pgcloak gen-master-key`)"
    )]
    MasterKeyLength { source_name: String, len: usize },
}
