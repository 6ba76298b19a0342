//! The client side of SCRAM-SHA-256(-PLUS), facing the upstream PostgreSQL (server leg).
//!
//! In passthrough mode the proof is computed from the ClientKey recovered on the client leg
//! (`ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage)`), so the proxy logs in as the
//! application's role without knowing its password; the upstream's ServerSignature is checked
//! with the role's ServerKey. In userlist mode a configured password is used.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::message::{CbindFlag, ServerFinal, gs2_header, parse_server_final, parse_server_first};
use super::server::fresh_nonce;
use super::verifier::{ct_eq, hmac, salted_password, sha256, xor};
use super::{AuthError, ClientKey, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};

/// A 32-byte key wiped on drop.
type Key = Zeroizing<[u8; 32]>;

/// Largest iteration count accepted from an upstream (bounds the PBKDF2 work in password mode).
const MAX_ITERATIONS: u32 = 1_000_000;

/// What the proxy authenticates upstream with.
pub enum UpstreamSecret {
    /// Passthrough: the key recovered from the application's proof, and the role's ServerKey.
    ClientKey {
        client_key: ClientKey,
        server_key: [u8; 32],
    },
    /// Userlist: a login password.
    Password(Zeroizing<String>),
}

impl std::fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientKey { .. } => f.write_str("UpstreamSecret::ClientKey(<redacted>)"),
            Self::Password(_) => f.write_str("UpstreamSecret::Password(<redacted>)"),
        }
    }
}

enum State {
    Initial,
    AwaitServerFirst { client_first_bare: String },
    AwaitServerFinal { server_signature: [u8; 32] },
    Done,
}

/// One SCRAM exchange with the upstream, as the client.
pub struct ScramClient {
    secret: UpstreamSecret,
    mechanism: &'static str,
    flag: CbindFlag,
    cert_hash: Option<Vec<u8>>,
    nonce: String,
    user: String,
    state: State,
}

impl ScramClient {
    /// `offered`: mechanisms from the upstream's AuthenticationSASL. Uses -PLUS when offered and
    /// `upstream_cert_hash` is `Some`; else SCRAM-SHA-256 with GS2 header `y,,` if we could
    /// have bound, `n,,` if not.
    pub fn new(
        secret: UpstreamSecret,
        offered: &[&str],
        upstream_cert_hash: Option<Vec<u8>>,
    ) -> Result<Self, AuthError> {
        Self::build(secret, offered, upstream_cert_hash, fresh_nonce(), "")
    }

    /// Test-only: fixed client nonce and user name (RFC 7677's example names its user).
    #[cfg(test)]
    pub(crate) fn with_nonce(
        secret: UpstreamSecret,
        offered: &[&str],
        upstream_cert_hash: Option<Vec<u8>>,
        nonce: &str,
        user: &str,
    ) -> Result<Self, AuthError> {
        Self::build(secret, offered, upstream_cert_hash, nonce.to_owned(), user)
    }

    fn build(
        secret: UpstreamSecret,
        offered: &[&str],
        cert_hash: Option<Vec<u8>>,
        nonce: String,
        user: &str,
    ) -> Result<Self, AuthError> {
        let (mechanism, flag) = if offered.contains(&SCRAM_SHA_256_PLUS) && cert_hash.is_some() {
            (SCRAM_SHA_256_PLUS, CbindFlag::TlsServerEndPoint)
        } else if offered.contains(&SCRAM_SHA_256) {
            let flag = if cert_hash.is_some() {
                CbindFlag::Yes
            } else {
                CbindFlag::No
            };
            (SCRAM_SHA_256, flag)
        } else {
            return Err(AuthError::NoCommonMechanism);
        };
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Ok(Self {
            secret,
            mechanism,
            flag,
            cert_hash,
            nonce,
            user,
            state: State::Initial,
        })
    }

    /// The mechanism to name in SASLInitialResponse.
    pub fn mechanism(&self) -> &'static str {
        self.mechanism
    }

    /// The client-first-message for SASLInitialResponse.
    pub fn client_first(&mut self) -> Vec<u8> {
        let bare = format!("n={},r={}", self.user, self.nonce);
        let msg = format!("{}{bare}", gs2_header(self.flag));
        self.state = State::AwaitServerFirst {
            client_first_bare: bare,
        };
        msg.into_bytes()
    }

    /// AuthenticationSASLContinue (server-first-message) → client-final-message.
    pub fn server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let State::AwaitServerFirst { client_first_bare } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let msg = parse_server_first(data)?;
        if msg.nonce.len() <= self.nonce.len() || !msg.nonce.starts_with(&self.nonce) {
            return Err(AuthError::NonceMismatch);
        }
        let salt = B64
            .decode(msg.salt)
            .map_err(|_| AuthError::Malformed("salt is not base64"))?;
        let (client_key, server_key) = self.keys(&salt, msg.iterations)?;
        let mut cbind = gs2_header(self.flag).as_bytes().to_vec();
        if self.flag == CbindFlag::TlsServerEndPoint {
            cbind.extend_from_slice(self.cert_hash.as_deref().unwrap_or_default());
        }
        let without_proof = format!("c={},r={}", B64.encode(cbind), msg.nonce);
        let auth_message = format!(
            "{client_first_bare},{},{without_proof}",
            String::from_utf8_lossy(data)
        );
        let stored_key = sha256(client_key.as_ref());
        let client_signature = hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof = xor(&client_key, &client_signature);
        let server_signature = hmac(server_key.as_ref(), &[auth_message.as_bytes()]);
        self.state = State::AwaitServerFinal { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// (ClientKey, ServerKey) for this exchange.
    fn keys(&self, salt: &[u8], iterations: u32) -> Result<(Key, Key), AuthError> {
        match &self.secret {
            UpstreamSecret::ClientKey {
                client_key,
                server_key,
            } => Ok((
                Zeroizing::new(*client_key.bytes()),
                Zeroizing::new(*server_key),
            )),
            UpstreamSecret::Password(password) => {
                if iterations == 0 || iterations > MAX_ITERATIONS {
                    return Err(AuthError::Iterations(iterations));
                }
                let salted = salted_password(password, salt, iterations);
                Ok((
                    Zeroizing::new(hmac(salted.as_ref(), &[b"Client Key"])),
                    Zeroizing::new(hmac(salted.as_ref(), &[b"Server Key"])),
                ))
            }
        }
    }

    /// AuthenticationSASLFinal (server-final-message): verifies the ServerSignature.
    pub fn server_final(&mut self, data: &[u8]) -> Result<(), AuthError> {
        let State::AwaitServerFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::OutOfOrder);
        };
        match parse_server_final(data)? {
            ServerFinal::Error(e) => Err(AuthError::ServerRejected(e.chars().take(64).collect())),
            ServerFinal::Verifier(v) => {
                let sent = B64
                    .decode(v)
                    .map_err(|_| AuthError::Malformed("server signature is not base64"))?;
                if ct_eq(&sent, &server_signature) {
                    Ok(())
                } else {
                    Err(AuthError::BadServerSignature)
                }
            }
        }
    }
}
