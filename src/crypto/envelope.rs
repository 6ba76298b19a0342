//! The stored format of an encrypted value (spec §6) and the two field ciphers.
//!
//! `version (0x01) ‖ mode (0x01 randomized, 0x02 deterministic) ‖ key version (u32 BE) ‖ body`.
//! Randomized body = `nonce (12) ‖ ciphertext ‖ tag (16)` (AES-256-GCM, nonce from the OS RNG);
//! deterministic body = `synthetic IV (16) ‖ ciphertext` (AES-SIV, RFC 5297, 64-byte key).
//! The 6-byte header is the associated data in both modes, so changing the mode or key
//! version byte breaks authentication. Each operation allocates only its output buffer.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use aes_siv::siv::Aes256Siv;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::CryptoError;
use super::datakey::Algorithm;
use crate::config::Mode;

/// The only envelope format version so far.
pub const FORMAT_VERSION: u8 = 0x01;
/// Mode byte of a randomized (AES-256-GCM) value.
pub const MODE_RANDOMIZED: u8 = 0x01;
/// Mode byte of a deterministic (AES-SIV) value.
pub const MODE_DETERMINISTIC: u8 = 0x02;
/// Version, mode, key version.
pub const HEADER_LEN: usize = 6;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const SIV_LEN: usize = 16;

/// The parsed header of a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub mode: Mode,
    pub key_version: u32,
}

impl Header {
    fn bytes(self) -> [u8; HEADER_LEN] {
        let v = self.key_version.to_be_bytes();
        let m = match self.mode {
            Mode::Randomized => MODE_RANDOMIZED,
            Mode::Deterministic => MODE_DETERMINISTIC,
        };
        [FORMAT_VERSION, m, v[0], v[1], v[2], v[3]]
    }
}

/// Reads the header of a stored value (without authenticating it).
pub fn parse_header(stored: &[u8]) -> Result<Header, CryptoError> {
    let Some(&version) = stored.first() else {
        return Err(CryptoError::Truncated { len: 0 });
    };
    if version != FORMAT_VERSION {
        return Err(CryptoError::UnknownVersion(version));
    }
    if stored.len() < HEADER_LEN {
        return Err(CryptoError::Truncated { len: stored.len() });
    }
    let mode = match stored[1] {
        MODE_RANDOMIZED => Mode::Randomized,
        MODE_DETERMINISTIC => Mode::Deterministic,
        other => return Err(CryptoError::UnknownMode(other)),
    };
    let key_version = u32::from_be_bytes([stored[2], stored[3], stored[4], stored[5]]);
    Ok(Header { mode, key_version })
}

/// A ready field cipher for one data key version.
///
/// The GCM variant holds its expanded key schedule. `aes_siv::Siv` needs `&mut self` and is
/// not `Clone`, so the SIV variant keeps the 64-byte key and builds a stack-only `Siv` per
/// value (aes-siv's own `SivAead` does the same); no heap allocation, no lock.
pub enum FieldCipher {
    Randomized(Box<Aes256Gcm>),
    Deterministic(Zeroizing<[u8; 64]>),
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldCipher({}, <redacted>)", self.mode().name())
    }
}

impl FieldCipher {
    /// Builds the cipher for `algorithm` from raw key material (`key` names it in errors).
    pub fn new(algorithm: Algorithm, material: &[u8], key: &str) -> Result<Self, CryptoError> {
        let bad_len = || CryptoError::KeyLength {
            key: key.to_owned(),
            expected: algorithm.key_len(),
        };
        match algorithm {
            Algorithm::Aes256Gcm => Aes256Gcm::new_from_slice(material)
                .map(|c| FieldCipher::Randomized(Box::new(c)))
                .map_err(|_| bad_len()),
            Algorithm::Aes256Siv => {
                let k: [u8; 64] = material.try_into().map_err(|_| bad_len())?;
                Ok(FieldCipher::Deterministic(Zeroizing::new(k)))
            }
        }
    }

    /// The mode this cipher encrypts in.
    pub fn mode(&self) -> Mode {
        match self {
            FieldCipher::Randomized(_) => Mode::Randomized,
            FieldCipher::Deterministic(_) => Mode::Deterministic,
        }
    }

    /// Encrypts `plaintext` into a complete stored value tagged with `key_version`.
    pub fn encrypt(&self, key_version: u32, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = Header {
            mode: self.mode(),
            key_version,
        }
        .bytes();
        match self {
            FieldCipher::Randomized(gcm) => {
                let mut out =
                    Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
                out.extend_from_slice(&header);
                let mut nonce = [0u8; NONCE_LEN];
                OsRng.fill_bytes(&mut nonce);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(plaintext);
                let body = &mut out[HEADER_LEN + NONCE_LEN..];
                let tag = gcm
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), &header, body)
                    .map_err(|_| CryptoError::TooLarge)?;
                out.extend_from_slice(&tag);
                Ok(out)
            }
            FieldCipher::Deterministic(key) => {
                let mut out = Vec::with_capacity(HEADER_LEN + SIV_LEN + plaintext.len());
                out.extend_from_slice(&header);
                out.extend_from_slice(&[0u8; SIV_LEN]);
                out.extend_from_slice(plaintext);
                let mut siv = Aes256Siv::new(key.as_ref().into());
                let tag = siv
                    .encrypt_in_place_detached([&header], &mut out[HEADER_LEN + SIV_LEN..])
                    .map_err(|_| CryptoError::TooLarge)?;
                out[HEADER_LEN..HEADER_LEN + SIV_LEN].copy_from_slice(&tag);
                Ok(out)
            }
        }
    }

    /// Decrypts a stored value whose header was already parsed as `header` and whose key
    /// version selected this cipher. `key` names the data key in errors.
    pub fn decrypt(
        &self,
        header: Header,
        stored: &[u8],
        key: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if header.mode != self.mode() {
            return Err(CryptoError::ModeMismatch {
                key: key.to_owned(),
                key_mode: self.mode().name(),
                value_mode: header.mode.name(),
            });
        }
        let truncated = CryptoError::Truncated { len: stored.len() };
        let (aad, body) = stored
            .split_at_checked(HEADER_LEN)
            .ok_or(truncated.clone())?;
        match self {
            FieldCipher::Randomized(gcm) => {
                if body.len() < NONCE_LEN + TAG_LEN {
                    return Err(truncated);
                }
                let (nonce, rest) = body.split_at(NONCE_LEN);
                let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
                let mut out = Zeroizing::new(ct.to_vec());
                gcm.decrypt_in_place_detached(
                    Nonce::from_slice(nonce),
                    aad,
                    &mut out,
                    Tag::from_slice(tag),
                )
                .map_err(|_| CryptoError::Authentication)?;
                Ok(out)
            }
            FieldCipher::Deterministic(key) => {
                if body.len() < SIV_LEN {
                    return Err(truncated);
                }
                let (tag, ct) = body.split_at(SIV_LEN);
                let mut out = Zeroizing::new(ct.to_vec());
                let mut siv = Aes256Siv::new(key.as_ref().into());
                siv.decrypt_in_place_detached([aad], &mut out, tag.into())
                    .map_err(|_| CryptoError::Authentication)?;
                Ok(out)
            }
        }
    }
}
