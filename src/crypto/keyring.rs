//! The [`KeyRing`]: every data key version unwrapped once, each with one ready
//! [`FieldCipher`] shared by `Arc`, looked up by key name. Sans-IO and immutable; a
//! [`SharedKeyRing`] swaps in a reloaded ring while serving, and a [`KeyRingView`] lets a
//! session read the current ring without taking a lock unless it changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use zeroize::Zeroizing;

use super::envelope::{FieldCipher, parse_header};
use super::{CryptoError, DataKey, MasterKey, WrappedKey};
use crate::config::Mode;

/// All versions of one data key. The newest version is current.
#[derive(Debug)]
pub struct KeyEntry {
    name: String,
    mode: Mode,
    /// Ascending by version; never empty.
    versions: Vec<(u32, Arc<FieldCipher>)>,
}

impl KeyEntry {
    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mode the key is for.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The version new values are written with.
    pub fn current_version(&self) -> u32 {
        self.versions.last().map_or(0, |v| v.0)
    }

    /// Every version held, ascending.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.versions.iter().map(|v| v.0)
    }

    fn check_mode(&self, mode: Mode) -> Result<(), CryptoError> {
        if mode == self.mode {
            return Ok(());
        }
        Err(CryptoError::ModeMismatch {
            key: self.name.clone(),
            key_mode: self.mode.name(),
            value_mode: mode.name(),
        })
    }

    /// Encrypts with the current version in `mode` (which must be the key's mode).
    pub fn encrypt(&self, mode: Mode, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.check_mode(mode)?;
        let (version, cipher) = self
            .versions
            .last()
            .ok_or(CryptoError::UnknownKey(self.name.clone()))?;
        cipher.encrypt(*version, plaintext)
    }

    /// Decrypts a stored value, choosing the version from its header.
    pub fn decrypt(&self, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let header = parse_header(stored)?;
        let cipher = self
            .versions
            .iter()
            .find(|v| v.0 == header.key_version)
            .ok_or_else(|| CryptoError::UnknownKeyVersion {
                key: self.name.clone(),
                version: header.key_version,
            })?;
        cipher.1.decrypt(header, stored, &self.name)
    }

    /// For deterministic keys: the value encrypted under every version, current first, so a
    /// `WHERE col = x` can still match rows written before a rotation.
    pub fn encrypt_all_versions(&self, plaintext: &[u8]) -> Result<Vec<Vec<u8>>, CryptoError> {
        self.check_mode(Mode::Deterministic)?;
        self.versions
            .iter()
            .rev()
            .map(|(v, c)| c.encrypt(*v, plaintext))
            .collect()
    }
}

/// Every data key, unwrapped and ready. Immutable once built.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: HashMap<String, KeyEntry>,
}

impl KeyRing {
    /// Unwraps every stored row with the master key. Fails on the first row that does not
    /// unwrap, naming it.
    pub fn from_wrapped(rows: &[WrappedKey], master: &MasterKey) -> Result<Self, CryptoError> {
        let keys = rows
            .iter()
            .map(|r| master.unwrap(r))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_data_keys(keys)
    }

    /// Builds the ring from unwrapped keys (any order).
    pub fn from_data_keys(keys: Vec<DataKey>) -> Result<Self, CryptoError> {
        let mut ring = KeyRing::default();
        for key in keys {
            let cipher = Arc::new(FieldCipher::new(key.algorithm, key.material(), &key.name)?);
            let mode = key.algorithm.mode();
            let entry = ring
                .keys
                .entry(key.name.clone())
                .or_insert_with(|| KeyEntry {
                    name: key.name.clone(),
                    mode,
                    versions: Vec::new(),
                });
            if entry.mode != mode {
                return Err(CryptoError::ModeMismatch {
                    key: key.name.clone(),
                    key_mode: entry.mode.name(),
                    value_mode: mode.name(),
                });
            }
            entry.versions.retain(|v| v.0 != key.version);
            entry.versions.push((key.version, cipher));
            entry.versions.sort_by_key(|v| v.0);
        }
        Ok(ring)
    }

    /// The entry for `key_name`, for callers that encrypt many values under one key.
    pub fn key(&self, key_name: &str) -> Result<&KeyEntry, CryptoError> {
        self.keys
            .get(key_name)
            .ok_or_else(|| CryptoError::UnknownKey(key_name.to_owned()))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.values()
    }

    /// Encrypts under the current version of `key_name`.
    pub fn encrypt(
        &self,
        key_name: &str,
        mode: Mode,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.key(key_name)?.encrypt(mode, plaintext)
    }

    /// Decrypts a value stored under `key_name` (any version the ring holds).
    pub fn decrypt(
        &self,
        key_name: &str,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.key(key_name)?.decrypt(stored)
    }

    /// Deterministic encryptions under every version of `key_name`, current first.
    pub fn encrypt_all_versions(
        &self,
        key_name: &str,
        plaintext: &[u8],
    ) -> Result<Vec<Vec<u8>>, CryptoError> {
        self.key(key_name)?.encrypt_all_versions(plaintext)
    }
}

/// The serving key ring, replaceable while sessions run. Readers clone an `Arc` (or use a
/// [`KeyRingView`]); no lock is held while encrypting.
#[derive(Debug)]
pub struct SharedKeyRing {
    ring: RwLock<Arc<KeyRing>>,
    generation: AtomicU64,
}

impl SharedKeyRing {
    pub fn new(ring: KeyRing) -> Self {
        SharedKeyRing {
            ring: RwLock::new(Arc::new(ring)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current ring.
    pub fn current(&self) -> Arc<KeyRing> {
        self.ring.read().clone()
    }

    /// Swaps in a reloaded ring; sessions pick it up at their next [`KeyRingView::get`].
    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write() = Arc::new(ring);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Bumped by every [`replace`](Self::replace).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A per-session view that only touches the lock after a replace.
    pub fn view(self: &Arc<Self>) -> KeyRingView {
        let generation = self.generation();
        KeyRingView {
            shared: self.clone(),
            ring: self.current(),
            generation,
        }
    }
}

/// A session's cached handle on a [`SharedKeyRing`]: one atomic load per [`get`](Self::get).
#[derive(Debug)]
pub struct KeyRingView {
    shared: Arc<SharedKeyRing>,
    ring: Arc<KeyRing>,
    generation: u64,
}

impl KeyRingView {
    /// The current ring, refreshed if it was replaced since the last call.
    pub fn get(&mut self) -> &Arc<KeyRing> {
        let generation = self.shared.generation();
        if generation != self.generation {
            self.ring = self.shared.current();
            self.generation = generation;
        }
        &self.ring
    }
}
