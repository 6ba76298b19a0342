//! Per-message handling after startup: one handler per message kind and direction. Untouched
//! messages are appended to the other side's output buffer as raw bytes, never decoded. The
//! session's one [`Pipeline`] ties responses to requests (the raw relay queues only what ends
//! with a ReadyForQuery); ReadyForQuery and BackendKeyData are handled here for both the raw
//! relay and encrypted sessions, every other message of an encrypted session by
//! [`SessionCrypto`].

use bytes::BytesMut;

use crate::protocol::backend::decode_ready_for_query;
use crate::protocol::{BackendTag, Frame, FrontendTag};

use super::pipeline::{Expect, Pipeline};
use super::stall::AsyncWork;
use super::state::SessionCrypto;
use crate::control::encryption::Encryption;
use crate::error::SessionError;

/// Where handlers write: the two output buffers of the session.
pub struct Outputs<'a> {
    pub to_upstream: &'a mut BytesMut,
    pub to_client: &'a mut BytesMut,
}

/// What the relay loop does after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The client sent Terminate: forward it and end the session.
    Terminate,
}

/// The per-session handling state.
#[derive(Debug, Default)]
pub struct Handlers {
    pipe: Pipeline,
    /// Field encryption for this session (`None`: raw relay).
    crypto: Option<Box<SessionCrypto>>,
}

impl Handlers {
    /// True between transactions with nothing in flight: the session may be closed safely.
    pub fn is_idle(&self) -> bool {
        self.pipe.is_idle()
    }

    /// Turns on field encryption for this session; its first question to the server (the
    /// search_path) goes into `to_upstream`.
    pub fn set_crypto(&mut self, mut crypto: SessionCrypto, to_upstream: &mut bytes::BytesMut) {
        crypto.ask_path(to_upstream, &mut self.pipe);
        self.crypto = Some(Box::new(crypto));
    }

    /// An encrypted session that has not asked its search_path (the path is `public`).
    #[cfg(test)]
    pub(super) fn with_crypto(crypto: SessionCrypto) -> Self {
        Handlers {
            pipe: Pipeline::default(),
            crypto: Some(Box::new(crypto)),
        }
    }

    #[cfg(test)]
    pub(super) fn pipeline(&self) -> &Pipeline {
        &self.pipe
    }

    /// Asynchronous work the relay must await (catalog refresh, key reload), with the
    /// encryption state to run it on.
    pub fn take_work(&mut self) -> Option<(AsyncWork, std::sync::Arc<Encryption>)> {
        let c = self.crypto.as_mut()?;
        let work = c.take_work()?;
        Some((work, c.encryption().clone()))
    }

    /// True while client messages wait for the server's answer to the proxy's own question
    /// (the search_path): stop handling client input.
    #[inline]
    pub fn client_held(&self) -> bool {
        self.crypto.as_ref().is_some_and(|c| c.client_held())
    }

    /// True while a backend frame waits for a key reload: stop handling upstream input.
    #[inline]
    pub fn stalled(&self) -> bool {
        self.crypto.as_ref().is_some_and(|c| c.stalled())
    }

    /// A message from the client.
    #[inline]
    pub fn frontend(&mut self, frame: Frame, out: &mut Outputs<'_>) -> Result<Flow, SessionError> {
        let tag = FrontendTag::from(frame.tag());
        match tag {
            FrontendTag::Terminate => {
                out.to_upstream.extend_from_slice(frame.bytes());
                return Ok(Flow::Terminate);
            }
            FrontendTag::Password => {
                return Err(SessionError::Protocol(
                    "authentication message after authentication".into(),
                ));
            }
            _ => {}
        }
        if let Some(c) = self.crypto.as_mut() {
            c.frontend(frame, out, &mut self.pipe)?;
            return Ok(Flow::Continue);
        }
        match tag {
            FrontendTag::Query => self.pipe.push(Expect::query()),
            FrontendTag::Sync => self.pipe.push(Expect::Sync),
            FrontendTag::FunctionCall => self.pipe.push(Expect::FunctionCall),
            _ => {}
        }
        crate::net::metrics::plain_statement(&frame);
        out.to_upstream.extend_from_slice(frame.bytes());
        Ok(Flow::Continue)
    }

    /// A message from the server.
    #[inline]
    pub fn backend(&mut self, frame: Frame, out: &mut Outputs<'_>) -> Result<Flow, SessionError> {
        match BackendTag::from(frame.tag()) {
            BackendTag::ReadyForQuery => {
                let status =
                    decode_ready_for_query(frame.body()).map_err(SessionError::UpstreamDecode)?;
                let ended = self.pipe.ready(status);
                match self.crypto.as_mut() {
                    Some(c) => c.on_ready(&frame, status, ended, out, &mut self.pipe),
                    None => out.to_client.extend_from_slice(frame.bytes()),
                }
                return Ok(Flow::Continue);
            }
            // The real key never reaches the client (it got the proxy's own at startup).
            BackendTag::BackendKeyData => return Ok(Flow::Continue),
            _ => {}
        }
        if let Some(c) = self.crypto.as_mut() {
            c.backend(frame, out, &mut self.pipe)?;
            return Ok(Flow::Continue);
        }
        out.to_client.extend_from_slice(frame.bytes());
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        Frame::new(tag, Bytes::from(v))
    }

    #[test]
    fn tracks_pending_operations_and_transaction_state() {
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        let mut h = Handlers::default();
        let mut out = Outputs {
            to_upstream: &mut up,
            to_client: &mut down,
        };
        assert!(h.is_idle());
        h.frontend(frame(b'Q', b"begin\0"), &mut out).unwrap();
        h.frontend(frame(b'P', b"\0select 1\0\0\0"), &mut out)
            .unwrap();
        h.frontend(frame(b'S', b""), &mut out).unwrap();
        assert_eq!(h.pipe.len(), 2);
        h.backend(frame(b'C', b"BEGIN\0"), &mut out).unwrap();
        h.backend(frame(b'Z', b"T"), &mut out).unwrap();
        assert!(!h.is_idle());
        h.backend(frame(b'Z', b"T"), &mut out).unwrap();
        assert!(h.pipe.is_empty() && !h.is_idle());
        h.frontend(frame(b'Q', b"commit\0"), &mut out).unwrap();
        h.backend(frame(b'Z', b"I"), &mut out).unwrap();
        assert!(h.is_idle());
        assert!(h.backend(frame(b'Z', b"?"), &mut out).is_err());
        // Every frame went through unchanged, in order.
        assert_eq!(up.len(), 11 + 17 + 5 + 12);
        assert_eq!(
            &down[..],
            &[
                &frame(b'C', b"BEGIN\0").bytes()[..],
                &[
                    b'Z', 0, 0, 0, 5, b'T', b'Z', 0, 0, 0, 5, b'T', b'Z', 0, 0, 0, 5, b'I'
                ]
            ]
            .concat()[..]
        );
    }

    #[test]
    fn backend_key_data_is_dropped_and_terminate_ends() {
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        let mut h = Handlers::default();
        let mut out = Outputs {
            to_upstream: &mut up,
            to_client: &mut down,
        };
        h.backend(frame(b'K', &[0, 0, 0, 1, 1, 2, 3, 4]), &mut out)
            .unwrap();
        assert!(down.is_empty());
        let mut out = Outputs {
            to_upstream: &mut up,
            to_client: &mut down,
        };
        assert_eq!(
            h.frontend(frame(b'X', b""), &mut out).unwrap(),
            Flow::Terminate
        );
        assert!(h.frontend(frame(b'p', b"pw\0"), &mut out).is_err());
        assert_eq!(&up[..], &[b'X', 0, 0, 0, 4]);
    }
}
