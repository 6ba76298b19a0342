//! SCRAM-SHA-256 verifiers (PostgreSQL's `rolpassword` format), the recovered client key, and
//! the hash primitives of RFC 5802 (`H`, `HMAC`, `Hi`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{AuthError, DEFAULT_ITERATIONS};

const PREFIX: &str = "SCRAM-SHA-256$";

/// `HMAC-SHA-256(key, parts[0] ‖ parts[1] ‖ …)`.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// `H(data)` = SHA-256.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// `Hi(Normalize(password), salt, i)`: PBKDF2-HMAC-SHA-256 with one 32-byte block.
pub(crate) fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let normalized = saslprep(password);
    let mut out = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(normalized.as_bytes(), salt, iterations, out.as_mut());
    out
}

/// SASLprep as PostgreSQL applies it: if the password is not valid SASLprep input, it is used
/// as is.
fn saslprep(password: &str) -> Zeroizing<String> {
    match stringprep::saslprep(password) {
        Ok(p) => Zeroizing::new(p.into_owned()),
        Err(_) => Zeroizing::new(password.to_owned()),
    }
}

/// XOR of two 32-byte strings.
pub(crate) fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Constant-time equality of two byte strings.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A role's SCRAM-SHA-256 secret as PostgreSQL stores it in `pg_authid.rolpassword`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .field("stored_key", &"<redacted>")
            .field("server_key", &"<redacted>")
            .finish()
    }
}

fn decode_key(b64: &str) -> Result<[u8; 32], AuthError> {
    let bytes = Zeroizing::new(
        B64.decode(b64)
            .map_err(|_| AuthError::BadVerifier("key is not base64"))?,
    );
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| AuthError::BadVerifier("key is not 32 bytes"))
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.
    pub fn parse(rolpassword: &str) -> Result<Self, AuthError> {
        let rest = rolpassword
            .strip_prefix(PREFIX)
            .ok_or(AuthError::BadVerifier("not a SCRAM-SHA-256 secret"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(AuthError::BadVerifier("missing '$' before the keys"))?;
        let (iter, salt) = params.split_once(':').ok_or(AuthError::BadVerifier(
            "missing ':' after the iteration count",
        ))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or(AuthError::BadVerifier("missing ':' between the keys"))?;
        let iterations: u32 = iter
            .parse()
            .map_err(|_| AuthError::BadVerifier("iteration count is not a number"))?;
        if iterations == 0 {
            return Err(AuthError::BadVerifier("iteration count is zero"));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| AuthError::BadVerifier("salt is not base64"))?;
        if salt.is_empty() {
            return Err(AuthError::BadVerifier("salt is empty"));
        }
        Ok(Self {
            iterations,
            salt,
            stored_key: decode_key(stored)?,
            server_key: decode_key(server)?,
        })
    }

    /// Derives the verifier PostgreSQL would store for `password` (SASLprep'd) with this salt.
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        let client_key = Zeroizing::new(hmac(salted.as_ref(), &[b"Client Key"]));
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(client_key.as_ref()),
            server_key: hmac(salted.as_ref(), &[b"Server Key"]),
        }
    }

    /// Formats the verifier as PostgreSQL stores it.
    pub fn to_rolpassword(&self) -> String {
        format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// A deterministic fake verifier for an unknown user or a role without a SCRAM secret: the
    /// same user always gets the same salt, so the exchange looks like a real one and fails only
    /// at the proof. `secret` is a per-process random value.
    pub fn dummy(user: &str, secret: &[u8; 32]) -> Self {
        let salt = hmac(secret, &[b"pgcloak mock salt\0", user.as_bytes()]);
        Self {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..16].to_vec(),
            stored_key: hmac(secret, &[b"pgcloak mock stored key\0", user.as_bytes()]),
            server_key: hmac(secret, &[b"pgcloak mock server key\0", user.as_bytes()]),
        }
    }
}

/// The role's ClientKey, recovered from a verified client proof. Redacted in `Debug`, wiped on
/// drop; it can only be used to authenticate upstream through [`super::ScramClient`].
#[derive(Clone)]
pub struct ClientKey(Zeroizing<[u8; 32]>);

impl ClientKey {
    pub(crate) fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier made by PostgreSQL 15 (`SET password_encryption = 'scram-sha-256';
    /// CREATE ROLE … PASSWORD 'pencil'`) has exactly this shape; this one uses RFC 7677's salt.
    const PG_VERIFIER: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    #[test]
    fn from_password_matches_postgres_format_and_round_trips() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::from_password("pencil", &salt, 4096);
        assert_eq!(v.to_rolpassword(), PG_VERIFIER);
        let parsed = ScramVerifier::parse(PG_VERIFIER).unwrap();
        assert_eq!(parsed, v);
        assert_eq!(parsed.to_rolpassword(), PG_VERIFIER);
    }

    /// Verifiers printed by a real PostgreSQL 15 (`postgres --single`, `password_encryption =
    /// 'scram-sha-256'`, then `SELECT rolpassword FROM pg_authid`).
    const PG15_PENCIL: &str = "SCRAM-SHA-256$4096:owa9D+YR7/85qEQBmEvCIA==$X4eq2fQgogSoKdxRti4jQLyH3TeDbu8xMD2iEezD5nQ=:N0kMq3I5ICvZs2gP/eCjh56VDGXptniUv3TwiF29+iE=";
    const PG15_UNICODE: &str = "SCRAM-SHA-256$4096:FHRce7z98mEPyvuXzRrBEQ==$0R6BjC4kHVSp7gspDEya0JShrvQCzbcl5BQtCBUQ51E=:QNHvmoiWYjOMRCdDUAdGrwZzZtXEqshV7GMRaLkTS5g=";
    /// Password `a\u{a0}b\u{fb01}`: SASLprep maps the NBSP to a space and NFKC folds the ligature.
    const PG15_SASLPREP: &str = "SCRAM-SHA-256$4096:u/H9VKDt1pZKmiRiyb30kA==$o1OwseeaY6Q6MD6SKBJM40MrV+mYyP7Fe+ai0xNai2s=:67RzRGoxdE7Fqpm+hKdEvViCtfrghYOEx+HwtA30+hQ=";

    #[test]
    fn real_postgres_15_verifiers_round_trip_and_match_from_password() {
        for (rolpassword, password) in [
            (PG15_PENCIL, "pencil"),
            (PG15_UNICODE, "p\u{e4}ssw\u{f6}rd\u{c5}"),
            (PG15_SASLPREP, "a\u{a0}b\u{fb01}"),
        ] {
            let v = ScramVerifier::parse(rolpassword).unwrap();
            assert_eq!(v.to_rolpassword(), rolpassword);
            assert_eq!(
                ScramVerifier::from_password(password, &v.salt, v.iterations),
                v
            );
        }
        // SASLprep is what makes the last one match: its normalized form gives the same
        // verifier, while PBKDF2 over the raw bytes does not.
        let v = ScramVerifier::parse(PG15_SASLPREP).unwrap();
        assert_eq!(ScramVerifier::from_password("a bfi", &v.salt, 4096), v);
        let mut raw = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>("a\u{a0}b\u{fb01}".as_bytes(), &v.salt, 4096, &mut raw);
        assert_ne!(sha256(&hmac(&raw, &[b"Client Key"])), v.stored_key);
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "md5abcdef0123456789abcdef01234567",
            "SCRAM-SHA-256$4096:c2FsdA==",
            "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$0:c2FsdA==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
            "SCRAM-SHA-256$4096:!!$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        ] {
            assert!(ScramVerifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_redacts_keys() {
        let v = ScramVerifier::parse(PG_VERIFIER).unwrap();
        let dbg = format!("{v:?} {:?}", ClientKey::new([7; 32]));
        assert!(!dbg.contains("WG5d8") && !dbg.contains("88") && !dbg.contains("7, 7"));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn dummy_is_deterministic_per_user() {
        let secret = [9u8; 32];
        assert_eq!(
            ScramVerifier::dummy("a", &secret),
            ScramVerifier::dummy("a", &secret)
        );
        assert_ne!(
            ScramVerifier::dummy("a", &secret).salt,
            ScramVerifier::dummy("b", &secret).salt
        );
        assert_eq!(ScramVerifier::dummy("a", &secret).iterations, 4096);
    }
}
