//! The server side of SCRAM-SHA-256(-PLUS), facing the application (client leg).
//!
//! Verifies the client's proof against the role's verifier and recovers the role's ClientKey
//! (`ClientProof XOR HMAC(StoredKey, AuthMessage)`, checked by `H(ClientKey) == StoredKey`).
//! Channel-binding rules follow PostgreSQL's `auth-scram.c`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::message::{CbindFlag, parse_client_final, parse_client_first};
use super::verifier::{ct_eq, hmac, sha256, xor};
use super::{AuthError, ClientKey, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramVerifier};

/// Raw length of the server's part of the nonce (PostgreSQL uses 18).
pub(crate) const NONCE_LEN: usize = 18;

/// A fresh nonce: `NONCE_LEN` bytes from the OS RNG, base64.
pub(crate) fn fresh_nonce() -> String {
    let mut raw = [0u8; NONCE_LEN];
    crate::crypto::fill_os_random(&mut raw);
    B64.encode(raw)
}

#[derive(Debug)]
enum State {
    Initial,
    AwaitFinal {
        flag: CbindFlag,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// One SCRAM exchange with an application, as the server.
#[derive(Debug)]
pub struct ScramServer {
    verifier: ScramVerifier,
    cert_hash: Option<Vec<u8>>,
    fake: bool,
    fixed_nonce: Option<String>,
    state: State,
}

impl ScramServer {
    /// `cert_hash`: tls-server-end-point hash of the proxy's own certificate; `Some` enables
    /// SCRAM-SHA-256-PLUS. `fake`: the verifier is a dummy; the exchange runs but always fails
    /// at the proof, exactly as a wrong password does.
    pub fn new(verifier: ScramVerifier, cert_hash: Option<Vec<u8>>, fake: bool) -> Self {
        Self {
            verifier,
            cert_hash,
            fake,
            fixed_nonce: None,
            state: State::Initial,
        }
    }

    /// Test-only: use `nonce` as the server's part of the nonce.
    #[cfg(test)]
    pub(crate) fn with_nonce(mut self, nonce: &str) -> Self {
        self.fixed_nonce = Some(nonce.to_owned());
        self
    }

    /// Mechanisms to list in AuthenticationSASL, preferred first.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        Self::mechanisms_for(self.cert_hash.is_some())
    }

    /// The mechanisms of a server with (`plus`) or without a certificate hash for channel
    /// binding, before its verifier is known.
    pub fn mechanisms_for(plus: bool) -> Vec<&'static str> {
        if plus {
            vec![SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
        } else {
            vec![SCRAM_SHA_256]
        }
    }

    /// SASLInitialResponse: mechanism + client-first-message → server-first-message.
    pub fn client_first(&mut self, mechanism: &str, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::Initial) {
            return Err(AuthError::OutOfOrder);
        }
        self.state = State::Done;
        if !self.mechanisms().contains(&mechanism) {
            return Err(AuthError::UnsupportedMechanism);
        }
        let msg = parse_client_first(data)?;
        self.check_negotiation(mechanism == SCRAM_SHA_256_PLUS, msg.flag)?;
        let server_nonce = self.fixed_nonce.take().unwrap_or_else(fresh_nonce);
        let nonce = format!("{}{server_nonce}", msg.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        let out = server_first.clone().into_bytes();
        self.state = State::AwaitFinal {
            flag: msg.flag,
            gs2_header: msg.gs2_header.to_owned(),
            client_first_bare: msg.bare.to_owned(),
            server_first,
            nonce,
        };
        Ok(out)
    }

    fn check_negotiation(&self, plus: bool, flag: CbindFlag) -> Result<(), AuthError> {
        match flag {
            CbindFlag::TlsServerEndPoint if !plus => Err(AuthError::ChannelBinding(
                "channel binding data sent with SCRAM-SHA-256 (use SCRAM-SHA-256-PLUS)",
            )),
            CbindFlag::No | CbindFlag::Yes if plus => Err(AuthError::ChannelBinding(
                "SCRAM-SHA-256-PLUS selected without channel binding data",
            )),
            CbindFlag::Yes if self.cert_hash.is_some() => Err(AuthError::ChannelBinding(
                "client supports channel binding but did not use it although it was offered",
            )),
            _ => Ok(()),
        }
    }

    /// SASLResponse: client-final-message → (server-final-message, recovered ClientKey).
    pub fn client_final(&mut self, data: &[u8]) -> Result<(Vec<u8>, ClientKey), AuthError> {
        let State::AwaitFinal {
            flag,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::OutOfOrder);
        };
        let msg = parse_client_final(data)?;
        let mut expected = gs2_header.into_bytes();
        if flag == CbindFlag::TlsServerEndPoint {
            expected.extend_from_slice(self.cert_hash.as_deref().unwrap_or_default());
        }
        let sent = B64
            .decode(msg.channel_binding)
            .map_err(|_| AuthError::Malformed("channel-binding attribute is not base64"))?;
        if !ct_eq(&sent, &expected) {
            return Err(AuthError::ChannelBinding(
                "channel binding data does not match",
            ));
        }
        if msg.nonce != nonce {
            return Err(AuthError::NonceMismatch);
        }
        let proof: [u8; 32] = B64
            .decode(msg.proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(AuthError::Malformed("proof is not 32 bytes of base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{}", msg.without_proof);
        let v = &self.verifier;
        let client_signature = hmac(&v.stored_key, &[auth_message.as_bytes()]);
        let client_key = ClientKey::new(xor(&proof, &client_signature));
        let valid = ct_eq(&sha256(client_key.bytes()), &v.stored_key);
        if !valid || self.fake {
            return Err(AuthError::WrongProof);
        }
        let server_signature = hmac(&v.server_key, &[auth_message.as_bytes()]);
        let server_final = format!("v={}", B64.encode(server_signature)).into_bytes();
        Ok((server_final, client_key))
    }
}
