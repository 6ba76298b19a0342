//! Frontend messages the proxy reads or writes itself: the SASL messages of authentication
//! (both legs) and Terminate. Everything else a client sends is relayed as raw frames.

use bytes::Bytes;

use super::wire::{Builder, Cursor, DecodeError};

/// A SASLInitialResponse: the chosen mechanism and the client-first message (`None` when the
/// client sent length -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    pub mechanism: &'a str,
    pub data: Option<&'a [u8]>,
}

impl<'a> SaslInitialResponse<'a> {
    /// Decodes the body of a 'p' frame sent in answer to AuthenticationSASL.
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body, "SASLInitialResponse");
        let mechanism = c.cstr()?;
        let data = c.value()?;
        if !c.is_empty() {
            return Err(c.err());
        }
        Ok(SaslInitialResponse { mechanism, data })
    }

    /// Encodes the whole 'p' message.
    pub fn encode(&self) -> Bytes {
        let b = Builder::new(b'p').cstr(self.mechanism);
        match self.data {
            Some(d) => b.i32(d.len() as i32).bytes(d),
            None => b.i32(-1),
        }
        .finish()
    }
}

/// A SASLResponse body is the raw mechanism data.
pub fn sasl_response(data: &[u8]) -> Bytes {
    Builder::new(b'p').bytes(data).finish()
}

/// A Terminate message.
pub fn terminate() -> Bytes {
    Bytes::from_static(&[b'X', 0, 0, 0, 4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial_round_trips() {
        let m = SaslInitialResponse {
            mechanism: "SCRAM-SHA-256",
            data: Some(b"n,,n=,r=abc"),
        };
        let wire = m.encode();
        assert_eq!(SaslInitialResponse::decode(&wire[5..]), Ok(m));
        let none = SaslInitialResponse {
            mechanism: "X",
            data: None,
        };
        assert_eq!(SaslInitialResponse::decode(&none.encode()[5..]), Ok(none));
        assert!(SaslInitialResponse::decode(b"SCRAM\0\0\0\0\x09abc").is_err());
        assert!(SaslInitialResponse::decode(b"SCRAM").is_err());
        assert_eq!(&sasl_response(b"c=biws")[5..], b"c=biws");
        assert_eq!(&terminate()[..], &[b'X', 0, 0, 0, 4]);
    }
}
