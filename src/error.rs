//! Why a session ends, and what its client is told: every error kind a session can meet
//! becomes the client's `ErrorResponse` ([`PgError`]) here.

use crate::net::upstream::UpstreamError;
use crate::protocol::sqlstate::{
    CONNECTION_FAILURE, FEATURE_NOT_SUPPORTED, INVALID_PASSWORD, PROTOCOL_VIOLATION, PgError,
};

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
    #[error("invalid message from the upstream server: {0}")]
    UpstreamProtocol(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("authentication of user {user:?} failed: {reason}")]
    AuthFailed { user: String, reason: String },
    #[error("upstream login failed: {0}")]
    UpstreamLogin(String),
    #[error("upstream refused the session: {code} {message}")]
    UpstreamRefused { code: String, message: String },
    #[error("control login unusable: {0}")]
    Control(String),
    #[error("the upstream database is down or unreachable: {0}")]
    UpstreamDown(String),
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
            SessionError::TlsRequired => return None, // answered in startup
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
            SessionError::UpstreamProtocol(_) => PgError::fatal(
                PROTOCOL_VIOLATION,
                "the upstream server sent an invalid message",
            ),
            SessionError::Upstream(e) => e.pg_error(),
            SessionError::AuthFailed { user, .. } => PgError::auth_failed(user),
            SessionError::UpstreamLogin(_) => PgError::fatal(
                INVALID_PASSWORD,
                "pgcloak could not log in to the upstream database",
            )
            .with_hint("see the pgcloak log for the cause"),
            // The upstream's own ErrorResponse has already been relayed.
            SessionError::UpstreamRefused { .. } => return None,
            SessionError::Control(_) => PgError::fatal(
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
