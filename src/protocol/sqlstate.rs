//! The SQLSTATE codes the proxy reports (re-exported from the generated [`crate::sqlstate`]),
//! and [`PgError`]: THE one place an error becomes an `ErrorResponse` (or `NoticeResponse`).
//! Every layer's error type maps itself to a `PgError`; only [`PgError::encode`] writes the
//! bytes.

use bytes::Bytes;

use super::wire::Builder;

// The codes themselves are the generated leaf module `crate::sqlstate` (every SQLSTATE
// PostgreSQL defines); these are the ones the proxy reports, under their old paths.
pub use crate::sqlstate::INVALID_AUTHORIZATION_SPECIFICATION as INVALID_AUTHORIZATION;
pub use crate::sqlstate::{
    ADMIN_SHUTDOWN, CONFIGURATION_LIMIT_EXCEEDED, CONNECTION_FAILURE, DATA_CORRUPTED,
    FEATURE_NOT_SUPPORTED, INTERNAL_ERROR, INVALID_PASSWORD, PROTOCOL_VIOLATION, QUERY_CANCELED,
    SYNTAX_ERROR, TOO_MANY_CONNECTIONS,
};

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
    Warning,
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
        }
    }
}

/// An error as the client will see it. Messages must never hold a plaintext value, a key or
/// a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    /// An error of `severity` with `code` and `message`.
    pub fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Self {
        PgError {
            severity,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A FATAL error (the connection closes after it).
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Fatal, code, message)
    }

    /// The login failure every failed authentication gets, whatever the cause.
    pub fn auth_failed(user: &str) -> Self {
        Self::fatal(
            INVALID_PASSWORD,
            format!("password authentication failed for user \"{user}\""),
        )
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The wire message: ErrorResponse for ERROR/FATAL, NoticeResponse otherwise.
    pub fn encode(&self) -> Bytes {
        let tag = match self.severity {
            Severity::Error | Severity::Fatal => b'E',
            Severity::Warning | Severity::Notice => b'N',
        };
        let sev = self.severity.as_str();
        let mut b = Builder::new(tag)
            .u8(b'S')
            .cstr(sev)
            .u8(b'V')
            .cstr(sev)
            .u8(b'C')
            .cstr(self.code)
            .u8(b'M')
            .cstr(&self.message);
        if let Some(d) = &self.detail {
            b = b.u8(b'D').cstr(d);
        }
        if let Some(h) = &self.hint {
            b = b.u8(b'H').cstr(h);
        }
        b.u8(0).finish()
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::backend::decode_error_fields;

    #[test]
    fn encodes_error_response_fields() {
        let e = PgError::auth_failed("bob").with_hint("check it");
        let wire = e.encode();
        assert_eq!(wire[0], b'E');
        let len = i32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize;
        assert_eq!(len, wire.len() - 1);
        let f = decode_error_fields(&wire[5..]).unwrap();
        assert!(f.contains(&(b'S', "FATAL")));
        assert!(f.contains(&(b'C', "28P01")));
        assert!(f.contains(&(b'M', "password authentication failed for user \"bob\"")));
        assert!(f.contains(&(b'H', "check it")));
        let n = PgError::new(Severity::Notice, "00000", "hi").encode();
        assert_eq!(n[0], b'N');
    }
}
