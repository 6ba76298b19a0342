//! Backend messages the proxy reads or writes itself during startup and authentication:
//! Authentication*, BackendKeyData, ParameterStatus, ReadyForQuery, and the fields of an
//! ErrorResponse/NoticeResponse (building one is [`super::sqlstate::PgError::encode`]).
//! Everything else the server sends is relayed as raw frames.

use bytes::Bytes;

use super::startup::CancelKey;
use super::wire::{Builder, Cursor, DecodeError};

/// An Authentication ('R') message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    Ok,
    CleartextPassword,
    Md5Password,
    /// AuthenticationSASL with the offered mechanisms.
    Sasl(Vec<String>),
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, GSS, SSPI, …: not supported by the proxy.
    Other(i32),
}

const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;
const AUTH_SASL_FINAL: i32 = 12;

impl Authentication {
    /// Decodes the body of an 'R' frame.
    pub fn decode(body: &[u8]) -> Result<Authentication, DecodeError> {
        let mut c = Cursor::new(body, "Authentication");
        Ok(match c.i32()? {
            AUTH_OK => Authentication::Ok,
            AUTH_CLEARTEXT => Authentication::CleartextPassword,
            AUTH_MD5 => Authentication::Md5Password,
            AUTH_SASL => {
                let mut mechs = Vec::new();
                loop {
                    let m = c.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechs.push(m.to_owned());
                }
                Authentication::Sasl(mechs)
            }
            AUTH_SASL_CONTINUE => Authentication::SaslContinue(Bytes::copy_from_slice(c.rest())),
            AUTH_SASL_FINAL => Authentication::SaslFinal(Bytes::copy_from_slice(c.rest())),
            other => Authentication::Other(other),
        })
    }

    /// Encodes the whole 'R' message.
    pub fn encode(&self) -> Bytes {
        let b = Builder::new(b'R');
        match self {
            Authentication::Ok => b.i32(AUTH_OK),
            Authentication::CleartextPassword => b.i32(AUTH_CLEARTEXT),
            Authentication::Md5Password => b.i32(AUTH_MD5).bytes(&[0; 4]),
            Authentication::Sasl(mechs) => {
                mechs.iter().fold(b.i32(AUTH_SASL), |b, m| b.cstr(m)).u8(0)
            }
            Authentication::SaslContinue(d) => b.i32(AUTH_SASL_CONTINUE).bytes(d),
            Authentication::SaslFinal(d) => b.i32(AUTH_SASL_FINAL).bytes(d),
            Authentication::Other(code) => b.i32(*code),
        }
        .finish()
    }
}

/// Decodes a BackendKeyData ('K') body.
pub fn decode_backend_key(body: &[u8]) -> Result<CancelKey, DecodeError> {
    let mut c = Cursor::new(body, "BackendKeyData");
    let pid = c.i32()?;
    let secret = c.rest();
    if !(4..=256).contains(&secret.len()) {
        return Err(c.err());
    }
    Ok(CancelKey {
        pid,
        secret: secret.to_vec(),
    })
}

/// Encodes a BackendKeyData message.
pub fn backend_key_data(key: &CancelKey) -> Bytes {
    Builder::new(b'K').i32(key.pid).bytes(&key.secret).finish()
}

/// Decodes a ParameterStatus ('S') body into (name, value).
pub fn decode_parameter_status(body: &[u8]) -> Result<(&str, &str), DecodeError> {
    let mut c = Cursor::new(body, "ParameterStatus");
    Ok((c.cstr()?, c.cstr()?))
}

/// Encodes a ParameterStatus message.
pub fn parameter_status(name: &str, value: &str) -> Bytes {
    Builder::new(b'S').cstr(name).cstr(value).finish()
}

/// Transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

/// Decodes a ReadyForQuery ('Z') body.
pub fn decode_ready_for_query(body: &[u8]) -> Result<TxStatus, DecodeError> {
    match body {
        [b'I'] => Ok(TxStatus::Idle),
        [b'T'] => Ok(TxStatus::InTransaction),
        [b'E'] => Ok(TxStatus::Failed),
        _ => Err(DecodeError {
            what: "ReadyForQuery",
        }),
    }
}

/// Encodes a ReadyForQuery message.
pub fn ready_for_query(status: TxStatus) -> Bytes {
    let b = match status {
        TxStatus::Idle => b'I',
        TxStatus::InTransaction => b'T',
        TxStatus::Failed => b'E',
    };
    Builder::new(b'Z').u8(b).finish()
}

/// Reads the fields of an ErrorResponse/NoticeResponse body as (field type, value) pairs.
pub fn decode_error_fields(body: &[u8]) -> Result<Vec<(u8, &str)>, DecodeError> {
    let mut c = Cursor::new(body, "ErrorResponse");
    let mut fields = Vec::new();
    loop {
        let t = c.u8()?;
        if t == 0 {
            return Ok(fields);
        }
        fields.push((t, c.cstr()?));
    }
}

/// Encodes an ErrorResponse/NoticeResponse (`tag`) from (field type, value) pairs.
pub fn encode_error_fields<'a>(tag: u8, fields: impl IntoIterator<Item = (u8, &'a str)>) -> Bytes {
    let mut b = Builder::new(tag);
    for (t, v) in fields {
        b = b.u8(t).cstr(v);
    }
    b.u8(0).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_round_trips() {
        let cases = [
            Authentication::Ok,
            Authentication::CleartextPassword,
            Authentication::Sasl(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]),
            Authentication::SaslContinue(Bytes::from_static(b"r=abc,s=xyz,i=4096")),
            Authentication::SaslFinal(Bytes::from_static(b"v=zzz")),
            Authentication::Other(7),
        ];
        for a in cases {
            let wire = a.encode();
            assert_eq!(wire[0], b'R');
            assert_eq!(
                i32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize,
                wire.len() - 1
            );
            assert_eq!(Authentication::decode(&wire[5..]), Ok(a));
        }
        assert!(Authentication::decode(&[0, 0]).is_err());
        assert!(Authentication::decode(&[0, 0, 0, 10, b'x']).is_err());
    }

    #[test]
    fn key_status_and_ready() {
        let key = CancelKey {
            pid: 1234,
            secret: vec![9, 8, 7, 6],
        };
        let wire = backend_key_data(&key);
        assert_eq!(wire.len(), 13);
        assert_eq!(decode_backend_key(&wire[5..]), Ok(key));
        assert!(decode_backend_key(&[0, 0, 0, 1]).is_err());
        let ps = parameter_status("TimeZone", "UTC");
        assert_eq!(decode_parameter_status(&ps[5..]), Ok(("TimeZone", "UTC")));
        let z = ready_for_query(TxStatus::Failed);
        assert_eq!(&z[..], &[b'Z', 0, 0, 0, 5, b'E']);
        assert_eq!(decode_ready_for_query(&z[5..]), Ok(TxStatus::Failed));
        assert!(decode_ready_for_query(b"X").is_err());
    }

    #[test]
    fn error_fields() {
        let body = b"SFATAL\0C28P01\0Mno\0\0";
        let f = decode_error_fields(body).unwrap();
        assert_eq!(f, vec![(b'S', "FATAL"), (b'C', "28P01"), (b'M', "no")]);
        assert!(decode_error_fields(b"SFATAL").is_err());
    }
}
