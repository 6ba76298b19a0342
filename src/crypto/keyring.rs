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
use crate::rules::Mode;

/// All versions of one data key. The newest version is current.
#[derive(Debug)]
pub struct KeyEntry {
    name: String,
    mode: Mode,
    /// Ascending by version; never empty.
    versions: Vec<(u32, Arc<FieldCipher>)>,
    /// Randomized keys: the GCM nonce budget of the current version.
    nonces: Option<Arc<super::nonce_budget::NonceBudget>>,
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
        if let Some(budget) = &self.nonces {
            budget.spend();
        }
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
                    nonces: None,
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
            if mode == Mode::Randomized {
                let current = entry.current_version();
                entry.nonces = Some(super::nonce_budget::NonceBudget::of(&entry.name, current));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    fn ring(keys: &[(&str, u32, Algorithm, u8)]) -> KeyRing {
        KeyRing::from_data_keys(
            keys.iter()
                .map(|&(n, v, a, b)| {
                    DataKey::from_material(n, v, a, Zeroizing::new(vec![b; a.key_len()])).unwrap()
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_value_under_one_columns_key_fails_under_another() {
        let r = ring(&[
            ("a", 1, Algorithm::Aes256Siv, 1),
            ("b", 1, Algorithm::Aes256Siv, 2),
            ("c", 1, Algorithm::Aes256Gcm, 3),
            ("d", 1, Algorithm::Aes256Gcm, 4),
        ]);
        let x = r.encrypt("a", Mode::Deterministic, b"123-45-6789").unwrap();
        assert_eq!(r.decrypt("a", &x).unwrap().as_slice(), b"123-45-6789");
        assert_eq!(r.decrypt("b", &x), Err(CryptoError::Authentication));
        let y = r.encrypt("c", Mode::Randomized, b"flu").unwrap();
        assert_eq!(r.decrypt("d", &y), Err(CryptoError::Authentication));
        assert!(r.decrypt("a", &y).is_err());
        assert_eq!(
            r.decrypt("zz", &x),
            Err(CryptoError::UnknownKey("zz".into()))
        );
        assert!(matches!(
            r.encrypt("a", Mode::Randomized, b"v"),
            Err(CryptoError::ModeMismatch { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_versions_readable() {
        let before = ring(&[("k", 1, Algorithm::Aes256Siv, 1)]);
        let old = before.encrypt("k", Mode::Deterministic, b"v").unwrap();
        let after = ring(&[
            ("k", 2, Algorithm::Aes256Siv, 2),
            ("k", 1, Algorithm::Aes256Siv, 1),
        ]);
        assert_eq!(after.key("k").unwrap().current_version(), 2);
        assert_eq!(after.decrypt("k", &old).unwrap().as_slice(), b"v");
        let new = after.encrypt("k", Mode::Deterministic, b"v").unwrap();
        assert_eq!(&new[2..6], &[0, 0, 0, 2]);
        assert_eq!(
            before.decrypt("k", &new),
            Err(CryptoError::UnknownKeyVersion {
                key: "k".into(),
                version: 2
            })
        );
        let all = after.encrypt_all_versions("k", b"v").unwrap();
        assert_eq!(all, vec![new, old]);
        let g = ring(&[("g", 1, Algorithm::Aes256Gcm, 1)]);
        assert!(g.encrypt_all_versions("g", b"v").is_err());
    }

    #[test]
    fn from_wrapped_unwraps_and_names_failures() {
        let master = MasterKey::generate();
        let rows: Vec<WrappedKey> = [("a", 1), ("a", 2), ("b", 1)]
            .iter()
            .map(|&(n, v)| master.wrap(&DataKey::generate(n, v, Algorithm::Aes256Gcm)))
            .collect();
        let r = KeyRing::from_wrapped(&rows, &master).unwrap();
        assert_eq!(r.keys().count(), 2);
        let err = KeyRing::from_wrapped(&rows, &MasterKey::generate()).unwrap_err();
        assert!(matches!(err, CryptoError::Unwrap { .. }), "{err}");
    }

    #[test]
    fn shared_ring_replaces_while_views_refresh() {
        let shared = Arc::new(SharedKeyRing::new(ring(&[(
            "a",
            1,
            Algorithm::Aes256Gcm,
            1,
        )])));
        let mut view = shared.view();
        assert!(view.get().key("b").is_err());
        let held = shared.current();
        shared.replace(ring(&[("b", 1, Algorithm::Aes256Gcm, 2)]));
        assert!(view.get().key("b").is_ok());
        assert!(
            held.key("a").is_ok(),
            "an Arc taken before replace stays usable"
        );
        assert_eq!(shared.generation(), 1);
    }
}
