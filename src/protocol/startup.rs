//! Startup-phase messages (untagged): StartupMessage, SSLRequest, GSSENCRequest, CancelRequest,
//! and the protocol-version negotiation PostgreSQL performs for them.

use bytes::Bytes;

use super::wire::{Builder, Cursor, DecodeError};

/// Request code of an SSLRequest (1234.5679).
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of a GSSENCRequest (1234.5680).
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Request code of a CancelRequest (1234.5678).
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol 3.0, the version the proxy speaks on both legs.
pub const PROTOCOL_3_0: i32 = 3 << 16;

/// A backend's cancel key: process id and secret (4 bytes in protocol 3.0).
#[derive(Clone, PartialEq, Eq)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for CancelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is a credential: never print it.
        f.debug_struct("CancelKey").field("pid", &self.pid).finish()
    }
}

/// A StartupMessage: protocol version and the parameters (user, database, options, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    pub params: Vec<(String, String)>,
}

/// What a client may send first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    Ssl,
    GssEnc,
    Cancel(CancelKey),
    Startup(StartupMessage),
}

impl StartupRequest {
    /// Decodes the body of an untagged startup-phase frame (after its length word).
    pub fn decode(body: &[u8]) -> Result<StartupRequest, DecodeError> {
        let mut c = Cursor::new(body, "startup");
        let code = c.i32()?;
        match code {
            SSL_REQUEST_CODE if c.is_empty() => Ok(StartupRequest::Ssl),
            GSSENC_REQUEST_CODE if c.is_empty() => Ok(StartupRequest::GssEnc),
            CANCEL_REQUEST_CODE => {
                let pid = c.i32()?;
                let secret = c.rest();
                if !(4..=256).contains(&secret.len()) {
                    return Err(c.err());
                }
                Ok(StartupRequest::Cancel(CancelKey {
                    pid,
                    secret: secret.to_vec(),
                }))
            }
            _ => {
                let (major, minor) = ((code >> 16) as u16, (code & 0xffff) as u16);
                let mut params = Vec::new();
                loop {
                    let name = c.cstr()?;
                    if name.is_empty() {
                        break;
                    }
                    params.push((name.to_owned(), c.cstr()?.to_owned()));
                }
                if !c.is_empty() {
                    return Err(c.err());
                }
                Ok(StartupRequest::Startup(StartupMessage {
                    major,
                    minor,
                    params,
                }))
            }
        }
    }
}

impl StartupMessage {
    /// The value of parameter `name`, if the client sent it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The user name (required by PostgreSQL).
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// The database: `database`, defaulting to the user name when absent or empty, as
    /// PostgreSQL does.
    pub fn database(&self) -> Option<&str> {
        self.get("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
    }

    /// A parameter the client named more than once. PostgreSQL takes the last value and the
    /// proxy read the first, so such a packet is refused rather than read two ways (a second
    /// `database` could pick a rules database behind a session the proxy relays raw).
    pub fn duplicate(&self) -> Option<&str> {
        self.params
            .iter()
            .enumerate()
            .find(|(i, (n, _))| self.params[..*i].iter().any(|(m, _)| m == n))
            .map(|(_, (n, _))| n.as_str())
    }

    /// Protocol options (`_pq_.*`) the client asked for; the proxy supports none.
    fn protocol_options(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.starts_with("_pq_."))
    }

    /// The NegotiateProtocolVersion message PostgreSQL would send for this request (a 3.x
    /// minor version above 0, or `_pq_.` options), or `None` when 3.0 was asked plainly.
    /// The caller must have checked `major == 3`.
    pub fn negotiation(&self) -> Option<Bytes> {
        let options: Vec<&str> = self.protocol_options().collect();
        if self.minor == 0 && options.is_empty() {
            return None;
        }
        let mut b = Builder::new(b'v').i32(0).i32(options.len() as i32);
        for o in options {
            b = b.cstr(o);
        }
        Some(b.finish())
    }

    /// The StartupMessage to send upstream: protocol 3.0 and every parameter unchanged,
    /// except the `_pq_.` options already declined to the client.
    pub fn encode_v3_0(&self) -> Bytes {
        let mut b = Builder::new(0).i32(PROTOCOL_3_0);
        for (n, v) in self.params.iter().filter(|(n, _)| !n.starts_with("_pq_.")) {
            b = b.cstr(n).cstr(v);
        }
        b.u8(0).finish()
    }
}

/// An SSLRequest.
pub fn ssl_request() -> Bytes {
    Builder::new(0).i32(SSL_REQUEST_CODE).finish()
}

/// A CancelRequest for `key`.
pub fn cancel_request(key: &CancelKey) -> Bytes {
    Builder::new(0)
        .i32(CANCEL_REQUEST_CODE)
        .i32(key.pid)
        .bytes(&key.secret)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &Bytes) -> &[u8] {
        &b[4..]
    }

    fn startup(minor: u16, params: &[(&str, &str)]) -> StartupMessage {
        StartupMessage {
            major: 3,
            minor,
            params: params
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn decodes_requests() {
        assert_eq!(
            StartupRequest::decode(body(&ssl_request())),
            Ok(StartupRequest::Ssl)
        );
        assert_eq!(
            StartupRequest::decode(&GSSENC_REQUEST_CODE.to_be_bytes()),
            Ok(StartupRequest::GssEnc)
        );
        let key = CancelKey {
            pid: 42,
            secret: vec![1, 2, 3, 4],
        };
        let wire = cancel_request(&key);
        assert_eq!(wire.len(), 16);
        assert_eq!(
            StartupRequest::decode(body(&wire)),
            Ok(StartupRequest::Cancel(key))
        );
        assert!(StartupRequest::decode(&CANCEL_REQUEST_CODE.to_be_bytes()).is_err());
        let shown = format!(
            "{:?}",
            CancelKey {
                pid: 7,
                secret: vec![0xab; 4]
            }
        );
        assert!(
            !shown.contains("171") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn startup_message_round_trips_every_parameter() {
        let m = startup(
            0,
            &[("user", "app"), ("database", "db"), ("options", "-c x=1")],
        );
        let wire = m.encode_v3_0();
        assert_eq!(
            StartupRequest::decode(body(&wire)),
            Ok(StartupRequest::Startup(m.clone()))
        );
        assert_eq!(m.user(), Some("app"));
        assert_eq!(m.database(), Some("db"));
        assert_eq!(startup(0, &[("user", "u")]).database(), Some("u"));
        assert_eq!(m.negotiation(), None);
    }

    #[test]
    fn empty_database_is_the_user_name_and_duplicates_are_found() {
        let m = startup(0, &[("user", "app"), ("database", "")]);
        assert_eq!(m.database(), Some("app"));
        let m = startup(0, &[("user", "app")]);
        assert_eq!(m.database(), Some("app"));
        let m = startup(0, &[("user", "app"), ("database", "shop")]);
        assert_eq!(m.database(), Some("shop"));
        assert_eq!(m.duplicate(), None);
        let m = startup(0, &[("database", "a"), ("user", "app"), ("database", "b")]);
        assert_eq!(m.duplicate(), Some("database"));
        let m = startup(
            0,
            &[("user", "app"), ("DateStyle", "ISO"), ("DateStyle", "SQL")],
        );
        assert_eq!(m.duplicate(), Some("DateStyle"));
        // Names are case-sensitive, as PostgreSQL's.
        let m = startup(0, &[("user", "app"), ("User", "x")]);
        assert_eq!(m.duplicate(), None);
    }

    #[test]
    fn negotiation_for_newer_minor_and_options() {
        let m = startup(2, &[("user", "u"), ("_pq_.compress", "on")]);
        let v = m.negotiation().unwrap();
        assert_eq!(v[0], b'v');
        let mut c = Cursor::new(&v[5..], "v");
        assert_eq!((c.i32(), c.i32()), (Ok(0), Ok(1)));
        assert_eq!(c.cstr(), Ok("_pq_.compress"));
        // The declined option does not go upstream.
        let up = m.encode_v3_0();
        assert!(!up.windows(4).any(|w| w == b"_pq_"));
        assert_eq!(&up[4..8], &PROTOCOL_3_0.to_be_bytes());
    }

    #[test]
    fn malformed_startup_is_an_error() {
        let mut b = PROTOCOL_3_0.to_be_bytes().to_vec();
        b.extend_from_slice(b"user\0app");
        assert!(StartupRequest::decode(&b).is_err());
        assert!(StartupRequest::decode(&[0, 3]).is_err());
        b.extend_from_slice(b"\0\0trailing");
        assert!(StartupRequest::decode(&b).is_err());
    }
}
