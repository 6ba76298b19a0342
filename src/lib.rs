//! pgcloak: a transparent, field-encrypting PostgreSQL wire-protocol proxy.
//!
//! The crate is laid out so that each folder is one concern:
//! - sans-IO core: [`protocol`] (framing, messages, SQLSTATEs), [`crypto`] (envelope, field
//!   ciphers, key wrapping), [`codec`] (logical value codecs), [`rewrite`] (SQL analysis → plan),
//!   [`auth`] (SCRAM-SHA-256 both sides);
//! - IO: [`net`] (listener, TLS, upstream connect), [`session`] (the per-connection state
//!   machine), [`control`] (the proxy's own login), [`devdb`] (throwaway PostgreSQL).
#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;
pub mod config;
pub mod control;
pub mod crypto;
pub mod devdb;
pub mod net;
pub mod protocol;
pub mod rewrite;
pub mod session;
