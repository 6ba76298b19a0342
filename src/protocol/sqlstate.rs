//! SQLSTATE codes the proxy reports, and [`PgError`]: THE one place an error becomes an
//! `ErrorResponse` (or `NoticeResponse`). Every layer's error type maps itself to a `PgError`;
//! only [`PgError::encode`] writes the bytes.

use bytes::Bytes;

use super::wire::Builder;

/// 08006 connection_failure (upstream refused TLS, failed verification, went away).
pub const CONNECTION_FAILURE: &str = "08006";
/// 08P01 protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// 0A000 feature_not_supported (also the fail-closed refusal of issue 4).
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// 42601 syntax_error (a statement naming a rules table that pg_query cannot parse).
pub const SYNTAX_ERROR: &str = "42601";
/// 28000 invalid_authorization_specification (e.g. TLS required).
pub const INVALID_AUTHORIZATION: &str = "28000";
/// 28P01 invalid_password: every failed login, whatever the cause.
pub const INVALID_PASSWORD: &str = "28P01";
/// 53300 too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// 53400 configuration_limit_exceeded (`[audit] max_decrypts_per_minute`).
pub const CONFIGURATION_LIMIT_EXCEEDED: &str = "53400";
/// 57P01 admin_shutdown (the proxy is shutting down).
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// 57014 query_canceled.
pub const QUERY_CANCELED: &str = "57014";
/// XX000 internal_error.
pub const INTERNAL_ERROR: &str = "XX000";
/// XX001 data_corrupted (a stored value failed to decrypt).
pub const DATA_CORRUPTED: &str = "XX001";

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
