//! The per-connection state machine: [`startup`] (client TLS and StartupMessage) →
//! [`login`] (SCRAM with the client, connect and log in upstream, swap BackendKeyData) →
//! [`relay`] (both directions in one task, per-message [`crate::engine::handlers`]). CancelRequests are
//! served through the [`cancel`] registry. Errors close both legs after telling the client why.

pub mod cancel;
pub mod login;
pub use crate::net::metrics::observe;
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

pub use crate::error::SessionError;
use crate::net::upstream::UpstreamConnector;
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
    pub encryption: parking_lot::RwLock<Option<Arc<crate::control::encryption::Encryptions>>>,
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
        if let Some(f) = split_frame(buf, MAX_LOGIN_FRAME).map_err(SessionError::ClientFrame)? {
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
        | SessionError::UpstreamAuth(_)
        | SessionError::UpstreamRefused { .. }
        | SessionError::UpstreamDown(_)
        | SessionError::UpstreamClosed
        | SessionError::UpstreamProtocol(_)
        | SessionError::UpstreamFrame(_)
        | SessionError::UpstreamDecode(_) => "upstream",
        SessionError::Control(_) | SessionError::VerifierLookup(_) => "control",
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
        .and_then(|e| e.get(startup.database().unwrap_or_default()))
        .map(|e| crate::engine::SessionCrypto::new(Arc::clone(e)))
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
