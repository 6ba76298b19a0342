//! The local master key (`[keys] provider = "local"`, for development): 32 bytes that never
//! reach the database, parsed here from base64 text or raw bytes; reading them from an
//! environment variable or a file is `config::secrets`' job (the core does no I/O). It wraps
//! and unwraps data keys with AES-256-GCM. Only the `local` key provider (`control::providers::local`) constructs one;
//! the KMS and HSM providers wrap inside the provider and never hold a key-encryption key.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::CryptoError;
use super::datakey::{Algorithm, DataKey, KekRef, WrappedKey};

const WRAP_VERSION: u8 = 0x01;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The 32-byte master key. Zeroized on drop; `Debug` shows no bytes.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A master key from exactly 32 bytes; `source_name` names the origin in errors.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::MasterKeyLength {
            source_name: source_name.to_owned(),
            len: bytes.len(),
        })?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    /// A master key from base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            CryptoError::MasterKeyBase64 {
                source_name: source_name.to_owned(),
            }
        })?);
        Self::from_bytes(&bytes, source_name)
    }

    /// A master key from a key file's contents: exactly 32 raw bytes, else base64 text.
    pub fn from_file_bytes(bytes: &[u8], source_name: &str) -> Result<Self, CryptoError> {
        if bytes.len() == 32 {
            return Self::from_bytes(bytes, source_name);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::from_base64(text, source_name),
            Err(_) => Self::from_bytes(bytes, source_name),
        }
    }

    /// A fresh random key (tests, `gen-master-key`).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        super::fill_os_random(k.as_mut());
        MasterKey(k)
    }

    /// A non-secret identifier of this key (HMAC-SHA256 of a fixed label, first 8 bytes hex),
    /// recorded with each wrap so `check` can tell which master key a row needs.
    pub fn key_id(&self) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .expect("HMAC takes any key length");
        mac.update(b"pgcloak-master-key-id");
        let out = mac.finalize().into_bytes();
        format!("sha256:{}", hex::encode(&out[..8]))
    }

    /// The [`KekRef`] of wraps made by this key.
    pub fn kek_ref(&self) -> KekRef {
        KekRef {
            kind: "local".to_owned(),
            key_id: self.key_id(),
            key_version: None,
        }
    }

    /// A 32-byte key for another purpose, derived with HKDF-SHA256 under `label` (e.g. the
    /// audit trail's HMAC key): the master key itself never leaves this type.
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        crate::crypto::derive_key(self.0.as_ref(), label)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("the master key is 32 bytes")
    }

    /// Wraps a data key for storage.
    pub fn wrap(&self, key: &DataKey) -> WrappedKey {
        let aad = DataKey::wrap_aad(&key.name, key.version, key.algorithm);
        let mut nonce = [0u8; NONCE_LEN];
        super::fill_os_random(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + key.material().len() + TAG_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(key.material());
        let tag = self
            .cipher()
            .encrypt_inout_detached(&nonce.into(), &aad, (&mut out[1 + NONCE_LEN..]).into())
            .expect("a 64-byte data key is far below the AES-GCM length limit");
        out.extend_from_slice(&tag);
        WrappedKey {
            name: key.name.clone(),
            version: key.version,
            algorithm: key.algorithm.name().to_owned(),
            wrapped: out,
            by: self.kek_ref(),
        }
    }

    /// Unwraps a stored data key; a wrong master key (or an altered row) gives
    /// "master key does not unwrap data key NAME vN: wrong master key?".
    pub fn unwrap(&self, stored: &WrappedKey) -> Result<DataKey, CryptoError> {
        let algorithm = Algorithm::from_name(&stored.algorithm).ok_or_else(|| {
            CryptoError::UnknownAlgorithm {
                key: stored.name.clone(),
                algorithm: stored.algorithm.clone(),
            }
        })?;
        let fail = || CryptoError::Unwrap {
            key: stored.name.clone(),
            version: stored.version,
        };
        let w = &stored.wrapped;
        if w.len() != 1 + NONCE_LEN + algorithm.key_len() + TAG_LEN || w[0] != WRAP_VERSION {
            return Err(fail());
        }
        let aad = DataKey::wrap_aad(&stored.name, stored.version, algorithm);
        let (nonce, rest) = w[1..].split_first_chunk::<NONCE_LEN>().ok_or_else(fail)?;
        let (ct, tag) = rest.split_last_chunk::<TAG_LEN>().ok_or_else(fail)?;
        let mut material = Zeroizing::new(ct.to_vec());
        self.cipher()
            .decrypt_inout_detached(
                &(*nonce).into(),
                &aad,
                material.as_mut_slice().into(),
                &(*tag).into(),
            )
            .map_err(|_| fail())?;
        DataKey::from_material(&stored.name, stored.version, algorithm, material)
    }
}

/// A fresh master key as base64 (32 bytes from the OS RNG), for `pgcloak gen-master-key`.
pub fn gen_master_key() -> String {
    let mut k = Zeroizing::new([0u8; 32]);
    super::fill_os_random(k.as_mut());
    STANDARD.encode(k.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip_and_binding() {
        let master = MasterKey::generate();
        let key = DataKey::generate("public.patients.ssn", 1, Algorithm::Aes256Siv);
        let stored = master.wrap(&key);
        assert_eq!(stored.algorithm, "aes-256-siv");
        assert_eq!(stored.wrapped.len(), 1 + 12 + 64 + 16);
        let back = master.unwrap(&stored).unwrap();
        assert_eq!(back.material(), key.material());
        assert_eq!(
            (back.name.as_str(), back.version),
            ("public.patients.ssn", 1)
        );
        // The wrap is bound to name, version and algorithm.
        for tamper in [
            |w: &mut WrappedKey| w.name = "public.patients.email".into(),
            |w: &mut WrappedKey| w.version = 2,
            |w: &mut WrappedKey| w.wrapped[20] ^= 1,
        ] {
            let mut w = stored.clone();
            tamper(&mut w);
            assert!(master.unwrap(&w).is_err());
        }
        let mut w = stored.clone();
        w.algorithm = "aes-256-gcm".into();
        assert!(master.unwrap(&w).is_err());
    }

    #[test]
    fn wrong_master_key_names_the_data_key() {
        let stored = MasterKey::generate().wrap(&DataKey::generate(
            "public.patients.ssn",
            1,
            Algorithm::Aes256Gcm,
        ));
        let err = MasterKey::generate().unwrap(&stored).unwrap_err();
        assert_eq!(
            err.to_string(),
            "master key does not unwrap data key public.patients.ssn v1: wrong master key?"
        );
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let master = MasterKey::from_bytes(&[0x41; 32], "t").unwrap();
        let key =
            DataKey::from_material("k", 1, Algorithm::Aes256Gcm, Zeroizing::new(vec![0x42; 32]))
                .unwrap();
        let text = format!("{master:?} {key:?} {:?}", master.wrap(&key));
        assert!(
            !text.contains("65") && !text.contains("66") && !text.contains("41"),
            "{text}"
        );
        assert!(text.contains("redacted"), "{text}");
    }

    #[test]
    fn sources_validate_length_and_encoding() {
        let b64 = gen_master_key();
        assert_eq!(STANDARD.decode(&b64).unwrap().len(), 32);
        assert!(MasterKey::from_base64(&format!(" {b64}\n"), "x").is_ok());
        let short = STANDARD.encode([1u8; 16]);
        let e = MasterKey::from_base64(&short, "environment variable K").unwrap_err();
        assert_eq!(
            e,
            CryptoError::MasterKeyLength {
                source_name: "environment variable K".into(),
                len: 16
            }
        );
        assert!(e.to_string().contains("must be 32"));
        assert!(matches!(
            MasterKey::from_base64("not base64!", "x"),
            Err(CryptoError::MasterKeyBase64 { .. })
        ));
        let raw = MasterKey::from_file_bytes(&[5u8; 32], "f").unwrap();
        assert_eq!(
            raw.key_id(),
            MasterKey::from_bytes(&[5u8; 32], "f").unwrap().key_id()
        );
        let text = MasterKey::from_file_bytes(format!("{b64}\n").as_bytes(), "f").unwrap();
        assert_eq!(
            text.key_id(),
            MasterKey::from_base64(&b64, "f").unwrap().key_id()
        );
        assert!(MasterKey::from_file_bytes(&[5u8; 31], "f").is_err());
        assert!(MasterKey::from_file_bytes(&[0xff; 40], "f").is_err());
    }
}
