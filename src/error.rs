//! Errors, one mapping: every error kind a session can meet becomes the client's
//! `ErrorResponse` ([`PgError`]) in exactly one place, here — [`SessionError::pg_error`] (why
//! a session ends), and `From<&X> for PgError` for the upstream leg ([`UpstreamError`]), a
//! value ([`ValueError`]), a COPY row ([`CopyRowError`]), a refusal ([`Refusal`],
//! [`Refused`]) and the engine's own failures ([`EngineError`]). Refusals are delivered
//! through the server ([`crate::apply::refuse`]) as the same `PgError`.

use crate::apply::ValueError;
use crate::apply::copy::CopyRowError;
use crate::apply::refuse::Refused;
use crate::auth::AuthError;
use crate::control::ControlError;
use crate::control::verifiers::VerifierLookupError;
use crate::copy::CopyError;
use crate::net::upstream::UpstreamError;
use crate::protocol::sqlstate::{
    CONNECTION_FAILURE, DATA_CORRUPTED, FEATURE_NOT_SUPPORTED, INTERNAL_ERROR, INVALID_PASSWORD,
    PROTOCOL_VIOLATION, PgError, Severity,
};
use crate::protocol::{DecodeError, FrameError};
use crate::rewrite::Refusal;
use crate::sqlstate::{BAD_COPY_FILE_FORMAT, INVALID_SQL_STATEMENT_NAME as INVALID_STATEMENT_NAME};

/// Why a session ended abnormally. The log gets the whole error; the client gets
/// [`SessionError::pg_error`] (never a password, key or value).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("client TLS handshake failed: {0}")]
    ClientTls(std::io::Error),
    #[error("plaintext client refused (TLS required)")]
    TlsRequired,
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("no user name in the startup message")]
    NoUser,
    #[error("invalid message from the client: {0}")]
    Protocol(String),
    #[error("invalid message from the client: {0}")]
    ClientFrame(FrameError),
    #[error("invalid message from the client: {0}")]
    ClientDecode(DecodeError),
    #[error("invalid message from the upstream server: {0}")]
    UpstreamProtocol(String),
    #[error("invalid message from the upstream server: {0}")]
    UpstreamFrame(FrameError),
    #[error("invalid message from the upstream server: {0}")]
    UpstreamDecode(DecodeError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("authentication of user {user:?} failed: {reason}")]
    AuthFailed { user: String, reason: String },
    #[error("upstream login failed: {0}")]
    UpstreamLogin(String),
    #[error("upstream login failed: {0}")]
    UpstreamAuth(AuthError),
    #[error("upstream refused the session: {code} {message}")]
    UpstreamRefused { code: String, message: String },
    #[error("control login unusable: {0}")]
    Control(ControlError),
    #[error("control login unusable: {0}")]
    VerifierLookup(VerifierLookupError),
    #[error("the upstream database is down or unreachable: {0}")]
    UpstreamDown(ControlError),
    #[error("the upstream server closed the connection")]
    UpstreamClosed,
    #[error("the client closed the connection")]
    ClientClosed,
    #[error("login timed out")]
    Timeout,
    #[error("too many connections (listen.max_connections = {max})")]
    TooManyConnections { max: usize },
    #[error("client message of {len} bytes exceeds listen.max_message_bytes ({max})")]
    MessageTooLong { len: usize, max: usize },
}

impl SessionError {
    /// What the client is told before the connection closes (`None`: nothing can be sent).
    pub fn pg_error(&self) -> Option<PgError> {
        Some(match self {
            SessionError::Io(_) | SessionError::ClientTls(_) | SessionError::ClientClosed => {
                return None;
            }
            // Sent by startup on the plaintext connection, before it closes.
            SessionError::TlsRequired => PgError::fatal(
                crate::protocol::sqlstate::INVALID_AUTHORIZATION,
                "pgcloak requires TLS (use sslmode=require or stronger)",
            ),
            SessionError::UnsupportedProtocol { major, minor } => PgError::fatal(
                FEATURE_NOT_SUPPORTED,
                format!("unsupported frontend protocol {major}.{minor}: pgcloak supports 3.0"),
            ),
            SessionError::NoUser => PgError::fatal(
                crate::protocol::sqlstate::INVALID_AUTHORIZATION,
                "no PostgreSQL user name specified in startup packet",
            ),
            SessionError::Protocol(m) => {
                PgError::fatal(PROTOCOL_VIOLATION, format!("invalid message: {m}"))
            }
            SessionError::ClientFrame(e) => {
                PgError::fatal(PROTOCOL_VIOLATION, format!("invalid message: {e}"))
            }
            SessionError::ClientDecode(e) => {
                PgError::fatal(PROTOCOL_VIOLATION, format!("invalid message: {e}"))
            }
            SessionError::UpstreamProtocol(_)
            | SessionError::UpstreamFrame(_)
            | SessionError::UpstreamDecode(_) => PgError::fatal(
                PROTOCOL_VIOLATION,
                "the upstream server sent an invalid message",
            ),
            SessionError::Upstream(e) => PgError::from(e),
            SessionError::AuthFailed { user, .. } => PgError::auth_failed(user),
            SessionError::UpstreamLogin(_) | SessionError::UpstreamAuth(_) => PgError::fatal(
                INVALID_PASSWORD,
                "pgcloak could not log in to the upstream database",
            )
            .with_hint("see the pgcloak log for the cause"),
            // The upstream's own ErrorResponse has already been relayed.
            SessionError::UpstreamRefused { .. } => return None,
            SessionError::Control(_) | SessionError::VerifierLookup(_) => PgError::fatal(
                CONNECTION_FAILURE,
                "pgcloak cannot reach its control login to authenticate you",
            )
            .with_hint("see the pgcloak log for the cause"),
            SessionError::UpstreamDown(_) => PgError::fatal(
                CONNECTION_FAILURE,
                "pgcloak cannot reach the upstream database: it is down or unreachable",
            )
            .with_hint("see the pgcloak log for the cause"),
            SessionError::UpstreamClosed => PgError::fatal(
                CONNECTION_FAILURE,
                "the upstream server closed the connection",
            ),
            SessionError::Timeout => PgError::fatal(CONNECTION_FAILURE, "login timed out"),
            // PostgreSQL's own words, so clients and poolers recognise it.
            SessionError::TooManyConnections { .. } => PgError::fatal(
                crate::protocol::sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ),
            SessionError::MessageTooLong { len, max } => PgError::fatal(
                PROTOCOL_VIOLATION,
                format!("message of {len} bytes is longer than pgcloak accepts ({max} bytes)"),
            )
            .with_hint("raise listen.max_message_bytes in pgcloak.toml, or send smaller values"),
        })
    }
}

impl From<&UpstreamError> for PgError {
    /// FATAL 08006 with the class of failure (no internals).
    fn from(e: &UpstreamError) -> Self {
        let why = match e {
            UpstreamError::Connect { .. } | UpstreamError::Timeout { .. } => {
                "pgcloak could not connect to the upstream database"
            }
            UpstreamError::TlsRefused { .. } => {
                "the upstream database refused TLS; pgcloak never connects without it"
            }
            UpstreamError::NotPostgres { .. } => {
                "the upstream server did not answer like PostgreSQL"
            }
            UpstreamError::Handshake { .. } => {
                "TLS with the upstream database failed (certificate not verified or handshake error)"
            }
        };
        PgError::fatal(CONNECTION_FAILURE, why).with_hint("see the pgcloak log for the cause")
    }
}

impl From<&ValueError> for PgError {
    /// An ERROR naming the column, never a value or key.
    fn from(e: &ValueError) -> Self {
        PgError::new(Severity::Error, e.sqlstate(), e.message())
    }
}

impl From<&CopyRowError> for PgError {
    fn from(e: &CopyRowError) -> Self {
        match &e.source {
            CopyError::Malformed(m) => {
                let msg = format!("pgcloak: {m} (COPY of table {})", e.table);
                PgError::new(Severity::Error, BAD_COPY_FILE_FORMAT, msg)
            }
            CopyError::Value(v) => PgError::from(v),
        }
    }
}

impl From<&Refusal> for PgError {
    /// The analysis refused the statement: the column and the construct, never a value.
    fn from(r: &Refusal) -> Self {
        PgError::new(Severity::Error, r.sqlstate(), r.message())
    }
}

impl From<&Refused> for PgError {
    fn from(r: &Refused) -> Self {
        match r {
            Refused::Statement(r) => PgError::from(r),
            Refused::Value(e) => PgError::from(e),
            Refused::Unrewritable { column } => PgError::new(
                Severity::Error,
                FEATURE_NOT_SUPPORTED,
                format!(
                    "pgcloak: this comparison on encrypted column {column} cannot match values \
                     stored under every version of its key (the key was rotated); compare the \
                     column directly with a parameter or literal"
                ),
            ),
            Refused::TooManyParams => PgError::new(
                Severity::Error,
                FEATURE_NOT_SUPPORTED,
                "pgcloak: too many parameters after rewriting comparisons on encrypted columns",
            ),
        }
    }
}

/// Why the proxy ends a session that did nothing wrong (the client gets FATAL 57P01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The proxy stops, or reloaded this database's rules: the session was idle.
    Drained,
    /// The shutdown timeout passed with the session still busy.
    Deadline,
}

impl From<Shutdown> for PgError {
    fn from(s: Shutdown) -> Self {
        let msg = match s {
            Shutdown::Drained => {
                "terminating connection because pgcloak is shutting down or reloaded the rules \
                 of this database"
            }
            // PostgreSQL's own words.
            Shutdown::Deadline => "terminating connection due to administrator command",
        };
        PgError::fatal(crate::protocol::sqlstate::ADMIN_SHUTDOWN, msg)
    }
}

/// What the engine itself refuses or withholds (the client gets an ERROR; the session goes on).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("transaction aborted after a decryption failure")]
    AbortedAfterDecryptFailure,
    #[error(
        "a FunctionCall of a function whose body names a rules table or runs dynamic SQL is \
         not supported"
    )]
    FunctionCall,
    #[error("invalid {0} message")]
    Malformed(&'static str),
    #[error("prepared statement \"{0}\" does not exist")]
    UnknownStatement(String),
    #[error("cannot tell which columns of this result are encrypted")]
    UnknownColumns,
    #[error("the server's COPY response does not match the statement")]
    CopyMismatch,
    #[error(
        "COPY data was sent before the server started the COPY, and the COPY it was sent for \
         failed; this COPY is failed rather than given partial data"
    )]
    CopyPoisoned,
}

impl From<&EngineError> for PgError {
    fn from(e: &EngineError) -> Self {
        let code = match e {
            EngineError::AbortedAfterDecryptFailure => DATA_CORRUPTED,
            EngineError::FunctionCall => FEATURE_NOT_SUPPORTED,
            EngineError::Malformed(_) | EngineError::CopyPoisoned => PROTOCOL_VIOLATION,
            // PostgreSQL's own words.
            EngineError::UnknownStatement(_) => {
                return PgError::new(Severity::Error, INVALID_STATEMENT_NAME, e.to_string());
            }
            EngineError::UnknownColumns | EngineError::CopyMismatch => INTERNAL_ERROR,
        };
        PgError::new(Severity::Error, code, format!("pgcloak: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_maps_to_its_sqlstate_and_names_no_value() {
        let e = PgError::from(&EngineError::UnknownStatement("s1".into()));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("26000", "prepared statement \"s1\" does not exist")
        );
        let e = PgError::from(&EngineError::Malformed("Bind"));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("08P01", "pgcloak: invalid Bind message")
        );
        let e = PgError::from(&EngineError::AbortedAfterDecryptFailure);
        assert_eq!(e.code, "XX001");
        let e = PgError::from(&Refused::Unrewritable {
            column: "public.t.ssn".into(),
        });
        assert_eq!(e.code, "0A000");
        assert!(e.message.contains("public.t.ssn") && e.message.contains("rotated"));
        let v = ValueError::UnknownVersion {
            column: "public.t.ssn".into(),
        };
        let e = PgError::from(&Refused::Value(v));
        assert_eq!((e.code, e.severity), ("XX001", Severity::Error));
        let row = CopyRowError {
            table: "public.t".into(),
            source: CopyError::Malformed("extra data after last expected column"),
        };
        let e = PgError::from(&row);
        assert_eq!(e.code, "22P04");
        assert!(e.message.ends_with("(COPY of table public.t)"));
        // Session errors from typed sources keep the client's words.
        let s = SessionError::ClientFrame(crate::protocol::FrameError::TooLong { len: 9, max: 8 });
        let e = s.pg_error().expect("told");
        assert_eq!(e.code, "08P01");
        assert!(e.message.starts_with("invalid message: "));
    }
}
