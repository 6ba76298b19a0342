//! The per-connection state machine: [`startup`] (client TLS and StartupMessage) →
//! [`login`] (SCRAM with the client, connect and log in upstream, swap BackendKeyData) →
//! [`relay`] (both directions in one task, per-message [`handlers`]). CancelRequests are
//! served through the [`cancel`] registry. Errors close both legs after telling the client why.

pub mod cancel;
pub mod crypto;
pub mod handlers;
pub mod login;
pub mod observe;
pub mod relay;
pub mod startup;
pub mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

use crate::net::upstream::{UpstreamConnector, UpstreamError};
use crate::protocol::sqlstate::{
    CONNECTION_FAILURE, FEATURE_NOT_SUPPORTED, INVALID_PASSWORD, PROTOCOL_VIOLATION, PgError,
};
use crate::protocol::{Frame, split_frame};

use cancel::CancelRegistry;
use relay::Relay;
use startup::Opened;

/// Time a client has from connecting to being logged in (PostgreSQL's authentication_timeout).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed to write what is left and close both legs.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message accepted during login (SASL messages and server greetings are small).
const MAX_LOGIN_FRAME: usize = 1 << 20;

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

/// Everything sessions share; built once by [`crate::run`].
pub struct Shared {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub upstream: UpstreamConnector,
    pub cancels: Arc<CancelRegistry>,
    pub login: login::LoginContext,
    pub shutdown: watch::Receiver<bool>,
    /// The audit trail, when `[audit]` is set.
    pub audit: Option<Arc<crate::audit::Audit>>,
    /// Field encryption, when rules are configured.
    /// Swapped by a reload (SIGHUP); sessions take the current one when they start.
    pub encryption: parking_lot::RwLock<Option<Arc<crypto::Encryptions>>>,
    /// `listen.max_connections`, `listen.max_message_bytes` and the shutdown deadline.
    pub limits: crate::net::limits::Limits,
}

/// Reads one tagged frame during login, keeping any extra bytes in `buf`.
pub(crate) async fn read_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    closed: fn() -> SessionError,
) -> Result<Frame, SessionError> {
    loop {
        if let Some(f) =
            split_frame(buf, MAX_LOGIN_FRAME).map_err(|e| SessionError::Protocol(e.to_string()))?
        {
            return Ok(f);
        }
        buf.reserve(4096);
        if s.read_buf(buf).await? == 0 {
            return Err(closed());
        }
    }
}

/// Serves one accepted connection to the end. Never panics; closes everything it opened.
pub async fn serve(tcp: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let span = tracing::info_span!(
        "conn",
        id,
        %peer,
        user = tracing::field::Empty,
        db = tracing::field::Empty
    );
    async move {
        let _active = crate::net::metrics::session_started();
        if let Err(e) = serve_inner(tcp, peer, &shared).await {
            match &e {
                SessionError::Io(_) | SessionError::ClientClosed => debug!(error = %e, "closed"),
                _ => warn!(error = %e, "session failed"),
            }
        }
    }
    .instrument(span)
    .await
}

/// The `pgcloak_logins_failed` reason of a login error.
fn login_failure(e: &SessionError) -> &'static str {
    match e {
        SessionError::AuthFailed { .. } => "auth",
        SessionError::ClientTls(_) | SessionError::TlsRequired => "tls",
        SessionError::Upstream(_)
        | SessionError::UpstreamLogin(_)
        | SessionError::UpstreamRefused { .. }
        | SessionError::UpstreamDown(_)
        | SessionError::UpstreamClosed
        | SessionError::UpstreamProtocol(_) => "upstream",
        SessionError::Control(_) => "control",
        SessionError::Timeout => "timeout",
        _ => "protocol",
    }
}

/// The audit trail's view of the client leg: TLS version and the client certificate's
/// SHA-256 fingerprint and RFC 4514 subject (when one was presented).
fn tls_fields(client: &crate::net::ClientStream) -> Vec<(&'static str, serde_json::Value)> {
    let conn = client.get_ref().1;
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "other",
    };
    let cert = conn.peer_certificates().and_then(|c| c.first());
    let sha256 = cert.map(|c| hex::encode(ring::digest::digest(&ring::digest::SHA256, c.as_ref())));
    let subject = cert.and_then(|c| crate::audit::subject::subject_of(c.as_ref()));
    let or_null = |v: Option<String>| v.map_or(serde_json::Value::Null, Into::into);
    vec![
        ("tls_version", version.into()),
        ("client_cert_sha256", or_null(sha256)),
        ("client_cert_subject", or_null(subject)),
    ]
}

async fn serve_inner(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<(), SessionError> {
    let _ = tcp.set_nodelay(true);
    let opened = tokio::time::timeout(LOGIN_TIMEOUT, startup::open(tcp, &shared.acceptor))
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut client, startup) = match opened {
        Opened::Closed => return Ok(()),
        Opened::Cancel(key, tls) => {
            let served = forward_cancel(shared, key).await;
            if let Some(mut tls) = tls {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, startup::close_cancel(&mut tls)).await;
            }
            return served;
        }
        Opened::Session(client, startup) => (client, startup),
    };
    let Some(_slot) = shared.limits.admit() else {
        let e = SessionError::TooManyConnections {
            max: shared.limits.max_connections(),
        };
        let mut client = client;
        startup::send_fatal(&mut client, &e).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, startup::close_cancel(&mut client)).await;
        return Err(e);
    };
    let span = tracing::Span::current();
    span.record("user", startup.user().unwrap_or_default());
    span.record("db", startup.database().unwrap_or_default());
    let started = std::time::Instant::now();
    let login = tokio::time::timeout(LOGIN_TIMEOUT, login::login(&mut client, &startup, shared))
        .await
        .unwrap_or(Err(SessionError::Timeout));
    let done = match login {
        Ok(done) => done,
        Err(e) => {
            crate::net::metrics::login_failed(login_failure(&e));
            startup::send_fatal(&mut client, &e).await;
            return Err(e);
        }
    };
    crate::net::metrics::observe(crate::net::metrics::Hist::Login, started.elapsed());
    info!("session started");
    let (role, database) = (
        startup.user().unwrap_or_default(),
        startup.database().unwrap_or_default(),
    );
    let obs = observe::SessionObs::new(role, database, shared.audit.clone());
    let mut fields = vec![
        (
            "application_name",
            startup.get("application_name").unwrap_or_default().into(),
        ),
        ("client_addr", peer.to_string().into()),
    ];
    fields.extend(tls_fields(&client));
    obs.login(fields);
    let _registration = done.registration;
    let encryption = shared.encryption.read().clone();
    let crypto = encryption
        .as_ref()
        .and_then(|e| e.session(startup.database().unwrap_or_default()))
        .map(|mut c| {
            c.greeting(&done.to_client);
            c
        });
    let mut relay = Relay::new(*client, done.upstream, done.to_client, done.upstream_in);
    // Sessions under rules drain when the proxy stops or their rules are reloaded.
    let mut shutdown = match &crypto {
        Some(c) => c.encryption().drain_signal(),
        None => shared.shutdown.clone(),
    };
    if let Some(c) = crypto {
        relay.set_crypto(c);
    }
    relay.set_limits(shared.limits.max_message_bytes(), shared.limits.deadline());
    relay.obs = Some(Box::new(obs));
    relay.push_client_input(&done.client_in);
    let result = relay.run(&mut shutdown).await;
    let end = match &result {
        Ok(end) => Some(*end),
        Err(e) => {
            if let Some(pg) = e.pg_error() {
                relay.send_to_client(&pg.encode());
            }
            None
        }
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, relay.close(end)).await;
    let outcome = match end {
        Some(relay::End::Shutdown) => "shutdown",
        Some(_) => "ok",
        None => "error",
    };
    crate::net::metrics::session_ended(database, outcome);
    if let Some(obs) = relay.obs.take() {
        obs.logout(end.map_or("error", relay::End::name));
    }
    info!(end = end.map_or("error", relay::End::name), "session ended");
    result.map(|_| ())
}

async fn forward_cancel(
    shared: &Shared,
    key: crate::protocol::startup::CancelKey,
) -> Result<(), SessionError> {
    // PostgreSQL answers nothing to a CancelRequest, valid or not; so do we.
    match shared.cancels.lookup(&key) {
        Some(upstream_key) => {
            debug!(pid = key.pid, "forwarding cancel request");
            shared.upstream.cancel(&upstream_key).await?;
        }
        None => debug!(pid = key.pid, "cancel request for an unknown key ignored"),
    }
    Ok(())
}
