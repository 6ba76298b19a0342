//! SCRAM-SHA-256 authentication on both legs of the proxy (sans-IO).
//!
//! pgcloak terminates authentication: [`ScramServer`] authenticates the application against a
//! role's [`ScramVerifier`] and, as PgBouncer does, recovers the role's [`ClientKey`] from the
//! client's proof. [`ScramClient`] then logs in upstream as the same role with that key (or with
//! a configured password in `userlist` mode). No password is ever known, stored or logged.
//!
//! The message flavour is PostgreSQL's (RFC 5802 / RFC 7677): the user name in the
//! client-first-message is empty (it travels in the StartupMessage), GS2 headers are `n,,`,
//! `y,,` or `p=tls-server-end-point,,`, and channel binding is RFC 5929's
//! `tls-server-end-point` ([`tls_server_end_point`]).
//!
//! Nothing here touches a socket: each step takes the bytes of a SASL message and returns the
//! bytes to send back.

mod cbind;
mod client;
pub(crate) mod message;
mod server;
pub mod userlist;
mod verifier;

pub use cbind::tls_server_end_point;
pub use client::{ScramClient, UpstreamSecret};
pub use server::ScramServer;
pub use userlist::{UserEntry, UserList, make_verifier};
pub use verifier::{ClientKey, ScramVerifier};

/// Mechanism name of plain SCRAM-SHA-256.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// Mechanism name of SCRAM-SHA-256 with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// Iteration count used for verifiers pgcloak creates (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Errors of the authentication layer. None of them carries a password, key or proof.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A SASL message did not follow RFC 5802's grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client chose a mechanism that was not offered.
    #[error("unsupported SASL mechanism")]
    UnsupportedMechanism,
    /// The upstream offered no mechanism pgcloak can use.
    #[error("upstream offers no usable SASL mechanism (need SCRAM-SHA-256)")]
    NoCommonMechanism,
    /// The proof did not match the verifier (wrong password or unknown user).
    #[error("password authentication failed")]
    WrongProof,
    /// Channel binding data or negotiation did not match.
    #[error("SCRAM channel binding check failed: {0}")]
    ChannelBinding(&'static str),
    /// The nonce echoed by the peer does not extend ours.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// The upstream's ServerSignature did not verify: it does not know the role's verifier.
    #[error("upstream server signature did not verify")]
    BadServerSignature,
    /// The upstream ended the exchange with `e=<error>`.
    #[error("upstream rejected SCRAM authentication: {0}")]
    ServerRejected(String),
    /// The upstream asked for an iteration count outside the accepted range.
    #[error("upstream SCRAM iteration count {0} is out of range")]
    Iterations(u32),
    /// A stored verifier string is not `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    #[error("invalid SCRAM verifier: {0}")]
    BadVerifier(&'static str),
    /// A step was called out of order.
    #[error("SCRAM exchange step out of order")]
    OutOfOrder,
    /// The users file could not be read or is invalid.
    #[error("users file {file}: {reason}")]
    UserList { file: String, reason: String },
    /// An environment variable named by the users file is unset or not UTF-8.
    #[error("environment variable {var} (upstream password of user {user:?}) is not set")]
    MissingEnv { var: String, user: String },
}

#[cfg(test)]
mod tests;
