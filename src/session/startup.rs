//! The client leg's startup phase: TLS negotiation (SSLRequest → `S`, PostgreSQL 17 direct
//! TLS with ALPN `postgresql`, GSSENCRequest → `N`), refusal of plaintext, CancelRequests, and
//! reading the StartupMessage inside TLS with protocol-version checks.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::SessionError;
use crate::net::ClientStream;
use crate::net::tls::ALPN_POSTGRESQL;
use crate::protocol::frame::startup_len;
use crate::protocol::startup::{CancelKey, StartupMessage, StartupRequest};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What a new client connection turned out to be.
pub enum Opened {
    /// A client that wants a session, over TLS.
    Session(Box<ClientStream>, StartupMessage),
    /// A CancelRequest: plaintext (`None`), or inside TLS (after SSLRequest or direct TLS;
    /// libpq >= 17's `PQcancelConn`), with the TLS session to close once it is served.
    Cancel(CancelKey, Option<Box<ClientStream>>),
    /// The client went away before asking anything.
    Closed,
}

/// Reads one startup-phase message without reading past it. `None` on a clean EOF before it.
async fn read_startup<S: AsyncRead + Unpin>(s: &mut S) -> Result<Option<Bytes>, SessionError> {
    let mut word = [0u8; 4];
    match s.read_exact(&mut word).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = startup_len(word).map_err(SessionError::ClientFrame)?;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).await?;
    Ok(Some(Bytes::from(body)))
}

fn decode(body: &[u8]) -> Result<StartupRequest, SessionError> {
    StartupRequest::decode(body).map_err(SessionError::ClientDecode)
}

/// Negotiates the client leg up to (and including) the StartupMessage.
pub async fn open(mut tcp: TcpStream, acceptor: &TlsAcceptor) -> Result<Opened, SessionError> {
    let mut gss_declined = false;
    loop {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Ok(Opened::Closed);
        }
        if first[0] == TLS_HANDSHAKE {
            let tls = acceptor
                .accept(tcp)
                .await
                .map_err(SessionError::ClientTls)?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
                return Err(SessionError::Protocol(
                    "direct TLS connection without ALPN \"postgresql\"".into(),
                ));
            }
            return after_tls(tls).await;
        }
        let Some(body) = read_startup(&mut tcp).await? else {
            return Ok(Opened::Closed);
        };
        match decode(&body)? {
            StartupRequest::Ssl => {
                tcp.write_all(b"S").await?;
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(SessionError::ClientTls)?;
                return after_tls(tls).await;
            }
            StartupRequest::GssEnc if !gss_declined => {
                gss_declined = true;
                tcp.write_all(b"N").await?;
            }
            StartupRequest::GssEnc => {
                return Err(SessionError::Protocol("repeated GSSENCRequest".into()));
            }
            StartupRequest::Cancel(key) => return Ok(Opened::Cancel(key, None)),
            StartupRequest::Startup(_) => {
                if let Some(e) = SessionError::TlsRequired.pg_error() {
                    let _ = tcp.write_all(&e.encode()).await;
                }
                let _ = tcp.shutdown().await;
                return Err(SessionError::TlsRequired);
            }
        }
    }
}

/// Inside TLS: the StartupMessage (or a CancelRequest).
async fn after_tls(tls: ClientStream) -> Result<Opened, SessionError> {
    let mut tls = Box::new(tls);
    let Some(body) = read_startup(&mut tls).await? else {
        return Ok(Opened::Closed);
    };
    let request = match decode(&body) {
        Ok(r) => r,
        Err(e) => {
            send_fatal(&mut tls, &e).await;
            return Err(e);
        }
    };
    match request {
        StartupRequest::Cancel(key) => Ok(Opened::Cancel(key, Some(tls))),
        StartupRequest::Startup(m) if m.major == 3 => {
            let refusal = if let Some(name) = m.duplicate() {
                Some(SessionError::Protocol(format!(
                    "startup packet names parameter \"{name}\" more than once"
                )))
            } else if m.user().is_none_or(str::is_empty) {
                Some(SessionError::NoUser)
            } else {
                None
            };
            if let Some(e) = refusal {
                send_fatal(&mut tls, &e).await;
                return Err(e);
            }
            if let Some(v) = m.negotiation() {
                tls.write_all(&v).await?;
                tls.flush().await?;
            }
            Ok(Opened::Session(tls, m))
        }
        StartupRequest::Startup(m) => {
            let e = SessionError::UnsupportedProtocol {
                major: m.major,
                minor: m.minor,
            };
            send_fatal(&mut tls, &e).await;
            Err(e)
        }
        StartupRequest::Ssl | StartupRequest::GssEnc => Err(SessionError::Protocol(
            "encryption request inside TLS".into(),
        )),
    }
}

/// Ends a CancelRequest's TLS session as PostgreSQL does: close_notify, then the TCP write
/// side (a bare TCP close is "SSL error: unexpected eof" to the client). Best effort.
pub(crate) async fn close_cancel(tls: &mut ClientStream) {
    let _ = tls.shutdown().await;
}

/// Best effort: tell the client why before closing.
pub(crate) async fn send_fatal<S: AsyncWrite + Unpin>(s: &mut S, e: &SessionError) {
    if let Some(pg) = e.pg_error() {
        let _ = s.write_all(&pg.encode()).await;
        let _ = s.flush().await;
    }
}
