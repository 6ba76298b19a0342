//! The login phase of a session: SCRAM-SHA-256(-PLUS) with the client against the role's
//! verifier (passthrough: looked up over the control login; userlist: from the users file),
//! then the upstream connection and its SCRAM login with the recovered ClientKey (or the
//! configured password), then the upstream greeting relayed to the client with BackendKeyData's
//! secret replaced by one of the proxy's own (the pid stays the backend's). Any failed client login → the same FATAL 28P01.

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::cancel::Registration;
use super::{SessionError, Shared, read_frame};
use crate::auth::{
    ClientKey, ScramClient, ScramServer, ScramVerifier, UpstreamSecret, UserList,
    tls_server_end_point,
};
use crate::control::ControlLink;
use crate::control::verifiers::VerifierCache;
use crate::net::upstream::peer_cert_der;
use crate::net::{ClientStream, UpstreamStream};
use crate::protocol::backend::{
    Authentication, backend_key_data, decode_backend_key, decode_error_fields,
};
use crate::protocol::frontend::{SaslInitialResponse, sasl_response};
use crate::protocol::startup::StartupMessage;
use crate::protocol::{BackendTag, Frame, FrontendTag};

/// Where client verifiers come from.
pub enum VerifierSource {
    Passthrough {
        control: ControlLink,
        cache: VerifierCache,
        query: String,
    },
    Userlist(UserList),
}

/// What every login needs; built once.
pub struct LoginContext {
    pub source: VerifierSource,
    /// `tls-server-end-point` hash of the proxy's certificate (enables -PLUS).
    pub cert_hash: Option<Vec<u8>>,
    /// Per-process secret for the dummy verifiers of unknown users.
    pub dummy_secret: [u8; 32],
}

/// A logged-in session, ready to relay.
pub struct LoggedIn {
    pub upstream: UpstreamStream,
    /// Authentication end and the upstream greeting, for the client.
    pub to_client: BytesMut,
    pub upstream_in: BytesMut,
    pub client_in: BytesMut,
    pub registration: Option<Registration>,
}

fn client_closed() -> SessionError {
    SessionError::ClientClosed
}

fn upstream_closed() -> SessionError {
    SessionError::UpstreamClosed
}

/// Runs the whole login. On error nothing has been sent to the client except what the error
/// says ([`SessionError::pg_error`] is sent by the caller).
pub async fn login(
    client: &mut ClientStream,
    startup: &StartupMessage,
    shared: &Shared,
) -> Result<LoggedIn, SessionError> {
    let user = startup.user().unwrap_or_default();
    let ctx = &shared.login;
    let mut client_in = BytesMut::new();
    // The verifier lookup overlaps the client's first round trip: AuthenticationSASL out,
    // SASLInitialResponse in. Its salt goes into the server-first message, so it must be fresh.
    let (found, first) = tokio::join!(
        find_verifier(ctx, user),
        offer_sasl(client, &mut client_in, ctx, user)
    );
    let (verifier, fake) = found?;
    let first = first?;
    let server_key = verifier.server_key;
    let (server_final, client_key) =
        authenticate_client(client, &mut client_in, ctx, user, (verifier, fake), first).await?;
    let secret = match &ctx.source {
        VerifierSource::Passthrough { .. } => UpstreamSecret::ClientKey {
            client_key,
            server_key,
        },
        VerifierSource::Userlist(list) => list
            .get(user)
            .ok_or_else(|| SessionError::UpstreamLogin("user left the users file".into()))?
            .upstream_secret()
            .map_err(SessionError::UpstreamAuth)?,
    };
    let connecting = std::time::Instant::now();
    let mut upstream = shared.upstream.connect().await?;
    crate::net::metrics::observe(
        crate::net::metrics::Hist::UpstreamConnect,
        connecting.elapsed(),
    );
    let mut upstream_in = BytesMut::new();
    let mut to_client = BytesMut::with_capacity(1024);
    to_client.extend_from_slice(&Authentication::SaslFinal(Bytes::from(server_final)).encode());
    to_client.extend_from_slice(&Authentication::Ok.encode());
    let mut early = BytesMut::new();
    let res =
        authenticate_upstream(&mut upstream, &mut upstream_in, startup, secret, &mut early).await;
    if let Err(e) = res {
        if let (VerifierSource::Passthrough { cache, .. }, SessionError::UpstreamRefused { .. }) =
            (&ctx.source, &e)
        {
            cache.invalidate(user);
        }
        warn!(error = %e, "upstream login failed");
        client.write_all(&early).await?;
        client.flush().await?;
        return Err(e);
    }
    to_client.extend_from_slice(&early);
    let registration =
        match relay_greeting(&mut upstream, &mut upstream_in, &mut to_client, shared).await {
            Ok(r) => r,
            Err(e) => {
                client.write_all(&to_client).await?;
                client.flush().await?;
                return Err(e);
            }
        };
    debug!("upstream login complete");
    Ok(LoggedIn {
        upstream,
        to_client,
        upstream_in,
        client_in,
        registration,
    })
}

/// The control login failed: when the server could not be reached at all (no answer from
/// PostgreSQL), the upstream database is down, and the client is told so.
fn control_unusable(e: crate::control::ControlError) -> SessionError {
    match &e {
        crate::control::ControlError::Connect { source, .. }
            if std::error::Error::source(source).is_some_and(|s| s.is::<std::io::Error>()) =>
        {
            SessionError::UpstreamDown(e)
        }
        _ => SessionError::Control(e),
    }
}

/// The role's verifier, or a dummy (`fake = true`) for an unknown or non-SCRAM role.
async fn find_verifier(
    ctx: &LoginContext,
    user: &str,
) -> Result<(ScramVerifier, bool), SessionError> {
    let found = match &ctx.source {
        VerifierSource::Userlist(list) => list.get(user).map(|e| e.verifier.clone()),
        VerifierSource::Passthrough {
            control,
            cache,
            query,
        } => {
            let client = match control.client().await {
                Ok(c) => c,
                Err(e) => match cache.fallback(user, &e) {
                    Some(v) => return Ok((v, false)),
                    None => return Err(control_unusable(e)),
                },
            };
            match cache.lookup(&client, query, user).await {
                Ok(v) => v,
                Err(e) => {
                    if client.is_closed() {
                        control.reset().await;
                    }
                    return Err(SessionError::VerifierLookup(e));
                }
            }
        }
    };
    Ok(match found {
        Some(v) => (v, false),
        None => (ScramVerifier::dummy(user, &ctx.dummy_secret), true),
    })
}

async fn expect_password(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    user: &str,
) -> Result<Frame, SessionError> {
    let f = read_frame(client, buf, client_closed).await?;
    if FrontendTag::from(f.tag()) != FrontendTag::Password {
        return Err(SessionError::AuthFailed {
            user: user.into(),
            reason: "expected a SASL response".into(),
        });
    }
    Ok(f)
}

/// Sends AuthenticationSASL and reads the client's SASLInitialResponse.
async fn offer_sasl(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    ctx: &LoginContext,
    user: &str,
) -> Result<Frame, SessionError> {
    let mechs = ScramServer::mechanisms_for(ctx.cert_hash.is_some())
        .iter()
        .map(|m| m.to_string())
        .collect();
    client
        .write_all(&Authentication::Sasl(mechs).encode())
        .await?;
    client.flush().await?;
    expect_password(client, buf, user).await
}

/// SCRAM with the client from its SASLInitialResponse `first` on, against `verifier`
/// (`.1`: a dummy); returns the ClientKey recovered from its proof.
async fn authenticate_client(
    client: &mut ClientStream,
    buf: &mut BytesMut,
    ctx: &LoginContext,
    user: &str,
    (verifier, fake): (ScramVerifier, bool),
    first: Frame,
) -> Result<(Vec<u8>, ClientKey), SessionError> {
    let failed = |reason: String| SessionError::AuthFailed {
        user: user.into(),
        reason,
    };
    let mut server = ScramServer::new(verifier, ctx.cert_hash.clone(), fake);
    let init = SaslInitialResponse::decode(first.body()).map_err(|e| failed(e.to_string()))?;
    let server_first = server
        .client_first(init.mechanism, init.data.unwrap_or_default())
        .map_err(|e| failed(e.to_string()))?;
    client
        .write_all(&Authentication::SaslContinue(Bytes::from(server_first)).encode())
        .await?;
    client.flush().await?;
    let f = expect_password(client, buf, user).await?;
    let (server_final, key) = server
        .client_final(f.body())
        .map_err(|e| failed(e.to_string()))?;
    Ok((server_final, key))
}

fn refused(frame: &Frame) -> SessionError {
    let fields = decode_error_fields(frame.body()).unwrap_or_default();
    let field = |t: u8| {
        fields
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.to_string())
    };
    SessionError::UpstreamRefused {
        code: field(b'C').unwrap_or_default(),
        message: field(b'M').unwrap_or_default(),
    }
}

/// The proxy's side of the upstream SCRAM exchange.
struct UpstreamScram {
    secret: Option<UpstreamSecret>,
    client: Option<ScramClient>,
    cert_hash: Option<Vec<u8>>,
}

/// What to do after an upstream Authentication message.
enum Step {
    Reply(Bytes),
    Wait,
    Done,
}

impl UpstreamScram {
    fn step(&mut self, auth: Authentication) -> Result<Step, SessionError> {
        let login_err = SessionError::UpstreamAuth;
        Ok(match (auth, self.client.as_mut()) {
            (Authentication::Ok, _) => Step::Done,
            (Authentication::Sasl(mechs), None) => {
                let offered: Vec<&str> = mechs.iter().map(String::as_str).collect();
                let secret = self.secret.take().ok_or_else(|| {
                    SessionError::UpstreamProtocol("repeated SASL request".into())
                })?;
                let mut c = ScramClient::new(secret, &offered, self.cert_hash.clone())
                    .map_err(login_err)?;
                let first = c.client_first();
                let msg = SaslInitialResponse {
                    mechanism: c.mechanism(),
                    data: Some(&first),
                }
                .encode();
                self.client = Some(c);
                Step::Reply(msg)
            }
            (Authentication::SaslContinue(d), Some(c)) => {
                Step::Reply(sasl_response(&c.server_first(&d).map_err(login_err)?))
            }
            (Authentication::SaslFinal(d), Some(c)) => {
                c.server_final(&d).map_err(login_err)?;
                Step::Wait
            }
            (other, _) => {
                let what = match other {
                    Authentication::CleartextPassword => "a cleartext password",
                    Authentication::Md5Password => "an MD5 password",
                    Authentication::Other(_) => "an unsupported method",
                    _ => "a SASL message out of order",
                };
                return Err(SessionError::UpstreamLogin(format!(
                    "upstream asked for {what}; pgcloak logs in upstream with SCRAM-SHA-256 only"
                )));
            }
        })
    }
}

/// Sends the StartupMessage upstream and logs in by SCRAM. Upstream errors and notices are
/// appended to `to_client` (errors also end the login).
async fn authenticate_upstream(
    up: &mut UpstreamStream,
    buf: &mut BytesMut,
    startup: &StartupMessage,
    secret: UpstreamSecret,
    to_client: &mut BytesMut,
) -> Result<(), SessionError> {
    let mut scram = UpstreamScram {
        secret: Some(secret),
        client: None,
        cert_hash: peer_cert_der(up).and_then(|der| tls_server_end_point(&der)),
    };
    up.write_all(&startup.encode_v3_0()).await?;
    up.flush().await?;
    loop {
        let f = read_frame(up, buf, upstream_closed).await?;
        match BackendTag::from(f.tag()) {
            BackendTag::Authentication => {}
            BackendTag::ErrorResponse => {
                to_client.extend_from_slice(f.bytes());
                return Err(refused(&f));
            }
            BackendTag::NoticeResponse => {
                to_client.extend_from_slice(f.bytes());
                continue;
            }
            BackendTag::NegotiateProtocolVersion => continue,
            _ => {
                return Err(SessionError::UpstreamProtocol(
                    "unexpected message during login".into(),
                ));
            }
        }
        let auth = Authentication::decode(f.body()).map_err(SessionError::UpstreamDecode)?;
        match scram.step(auth)? {
            Step::Done => return Ok(()),
            Step::Wait => {}
            Step::Reply(msg) => {
                up.write_all(&msg).await?;
                up.flush().await?;
            }
        }
    }
}

/// Relays the upstream greeting (ParameterStatus, notices, BackendKeyData with the backend's
/// pid and the proxy's secret) up to and including the first ReadyForQuery.
async fn relay_greeting(
    up: &mut UpstreamStream,
    buf: &mut BytesMut,
    to_client: &mut BytesMut,
    shared: &Shared,
) -> Result<Option<Registration>, SessionError> {
    let mut registration = None;
    loop {
        let f = read_frame(up, buf, upstream_closed).await?;
        match BackendTag::from(f.tag()) {
            BackendTag::BackendKeyData => {
                let real = decode_backend_key(f.body()).map_err(SessionError::UpstreamDecode)?;
                let (mine, reg) = shared.cancels.register(real);
                to_client.extend_from_slice(&backend_key_data(&mine));
                registration = Some(reg);
            }
            BackendTag::ReadyForQuery => {
                to_client.extend_from_slice(f.bytes());
                return Ok(registration);
            }
            BackendTag::ErrorResponse => {
                to_client.extend_from_slice(f.bytes());
                return Err(refused(&f));
            }
            _ => to_client.extend_from_slice(f.bytes()),
        }
    }
}
