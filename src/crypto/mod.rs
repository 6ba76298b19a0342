//! Field crypto (sans-IO): the stored envelope (spec §6), the two field ciphers (AES-256-GCM
//! for randomized columns, AES-SIV for deterministic ones), data keys wrapped under the master
//! key (spec §7), and the [`KeyRing`] the proxy encrypts and decrypts with.
//!
//! Nothing here does IO except reading the master key from its source; the database side of
//! key management lives in `control::keys`. Key bytes live in `Zeroizing` buffers, and no
//! `Debug` or error message in this module ever shows key material or plaintext.

mod datakey;
mod envelope;
mod error;
mod keyring;
mod master;
pub mod nonce_budget;
mod siv;

pub use datakey::{Algorithm, DataKey, KekRef, WrappedKey};
pub use envelope::{
    FORMAT_VERSION, FieldCipher, HEADER_LEN, Header, MODE_DETERMINISTIC, MODE_RANDOMIZED,
    parse_header,
};
pub use error::CryptoError;
pub use keyring::{KeyEntry, KeyRing, KeyRingView, SharedKeyRing};
pub use master::{MasterKey, gen_master_key};

/// Fills `buf` from the operating system's CSPRNG (`getrandom`): data and master keys, wrap
/// nonces, SCRAM salts and nonces. A failing OS RNG is not recoverable and must never yield
/// predictable bytes, so it panics (fail closed), as `rand`'s `OsRng` did.
pub fn fill_os_random(buf: &mut [u8]) {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .expect("the operating system's random number generator failed");
}

/// HKDF-SHA256 of `material` (no salt) expanded under `label` to 32 bytes: a key for another
/// purpose from a key provider's secret, e.g. the audit trail's HMAC key.
pub fn derive_key(material: &[u8], label: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(None, material)
        .expand(label, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}
