//! The frame splitter: turns a byte buffer into whole protocol messages without decoding them.
//!
//! A normal message is `tag (1) ‖ length (i32, counts itself) ‖ body`; a startup-phase message
//! has no tag. [`split_frame`] / [`split_startup`] return `Ok(None)` while the buffer holds an
//! incomplete message (more bytes are needed), `Err` when the bytes cannot be a valid message,
//! and otherwise cut the whole message off the buffer as a zero-copy [`Bytes`].

use bytes::{Bytes, BytesMut};

/// Largest normal message accepted (PostgreSQL's own limit for a field is 1 GiB).
pub const MAX_FRAME_LEN: usize = 1 << 30;
/// Largest startup-phase message accepted (PostgreSQL uses the same limit).
pub const MAX_STARTUP_LEN: usize = 10_000;
/// The most [`split_frame`] reserves ahead for the rest of an incomplete message.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Bytes that cannot be a protocol message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("invalid message length {len} (must be at least 4)")]
    TooShort { len: i64 },
    #[error("message length {len} exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
}

/// One whole message: its tag is 0 for startup-phase messages; its bytes are the entire
/// message (tag, length and body) exactly as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    tag: u8,
    bytes: Bytes,
}

impl Frame {
    /// A frame of `bytes` (the whole message), with its `tag` (0 for a startup-phase message).
    #[inline]
    pub fn new(tag: u8, bytes: Bytes) -> Self {
        Frame { tag, bytes }
    }

    /// The tag byte (0 for a startup-phase message).
    #[inline]
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The whole message as it was on the wire.
    #[inline]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole message, taken.
    #[inline]
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The message body (after the tag and the length).
    /// Empty for a frame too short to have one (never panics).
    #[inline]
    pub fn body(&self) -> &[u8] {
        let header = if self.is_startup() { 4 } else { 5 };
        self.bytes.get(header..).unwrap_or_default()
    }

    /// A startup-phase message: no tag, and its length word (counting itself) is the whole
    /// message. A normal message may carry the tag byte 0 (a fuzzed client sent one); its
    /// length word starts one byte later, so the two readings cannot both hold.
    fn is_startup(&self) -> bool {
        self.tag == 0
            && self
                .bytes
                .get(..4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .is_some_and(|w| u32::from_be_bytes(w) as usize == self.bytes.len())
    }
}

/// Reads a length word and checks it against the limits; returns the total size of the message
/// counted from the start of the length word.
fn checked_len(word: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(word);
    if len < 4 {
        return Err(FrameError::TooShort { len: len.into() });
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLong { len, max });
    }
    Ok(len)
}

/// Cuts one tagged message off the front of `buf`. On `Ok(None)` `buf` is untouched, but room
/// for the rest of the announced message has been reserved so the next reads fill it.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = checked_len([buf[1], buf[2], buf[3], buf[4]], max)?;
    let total = len + 1;
    if buf.len() < total {
        // Grow as the bytes arrive, not by what a header announces: five bytes announcing
        // 1 GiB must not reserve it.
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    let tag = buf[0];
    Ok(Some(Frame {
        tag,
        bytes: buf.split_to(total).freeze(),
    }))
}

/// Cuts one untagged startup-phase message (StartupMessage, SSLRequest, GSSENCRequest,
/// CancelRequest) off the front of `buf`; limit [`MAX_STARTUP_LEN`]. Startup messages also
/// carry a 4-byte code, so anything shorter than 8 bytes is invalid.
pub fn split_startup(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = checked_len([buf[0], buf[1], buf[2], buf[3]], MAX_STARTUP_LEN)?;
    if len < 8 {
        return Err(FrameError::TooShort { len: len as i64 });
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(Frame {
        tag: 0,
        bytes: buf.split_to(len).freeze(),
    }))
}

/// The size a startup-phase message announces, from its 4-byte length word (for readers that
/// must not read past the message, such as before a TLS handshake).
pub fn startup_len(word: [u8; 4]) -> Result<usize, FrameError> {
    let len = checked_len(word, MAX_STARTUP_LEN)?;
    if len < 8 {
        return Err(FrameError::TooShort { len: len as i64 });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_normal_message_with_tag_zero_has_a_five_byte_header() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 6, b'a', b'b'][..]);
        let f = split_frame(&mut buf, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(f.body(), b"ab");
        let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 0, 3, 0, 0, b'x'][..]);
        let f = split_startup(&mut buf).unwrap().unwrap();
        assert_eq!(f.body(), &[0, 3, 0, 0, b'x']);
        let short = Frame::new(b'Q', Bytes::from_static(b"Q\0"));
        assert!(
            short.body().is_empty(),
            "a short frame has no body, and no panic"
        );
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn splits_consecutive_frames_and_keeps_the_rest() {
        let mut wire = msg(b'Q', b"select 1\0");
        wire.extend(msg(b'S', b""));
        wire.extend_from_slice(&[b'X', 0, 0]);
        let mut buf = BytesMut::from(&wire[..]);
        let a = split_frame(&mut buf, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(a.tag(), b'Q');
        assert_eq!(a.body(), b"select 1\0");
        assert_eq!(&a.bytes()[..], &msg(b'Q', b"select 1\0")[..]);
        let b = split_frame(&mut buf, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!((b.tag(), b.bytes().len()), (b'S', 5));
        assert_eq!(split_frame(&mut buf, MAX_FRAME_LEN).unwrap(), None);
        assert_eq!(&buf[..], &[b'X', 0, 0]);
    }

    #[test]
    fn incomplete_frame_is_left_in_place_and_room_reserved() {
        let wire = msg(b'D', &[7u8; 100_000]);
        let mut buf = BytesMut::from(&wire[..50]);
        assert_eq!(split_frame(&mut buf, MAX_FRAME_LEN).unwrap(), None);
        assert_eq!(buf.len(), 50);
        assert!(buf.capacity() <= 50 + RESERVE_AHEAD + 64);
        buf.extend_from_slice(&wire[50..]);
        let f = split_frame(&mut buf, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(f.body().len(), 100_000);
        assert!(buf.is_empty());
    }

    #[test]
    fn an_announced_length_reserves_nothing_it_has_not_received() {
        // `Q` + 2^30: a logged-in client's five bytes must not reserve a gigabyte.
        let mut buf = BytesMut::from(&[b'Q', 0x40, 0, 0, 0][..]);
        assert_eq!(split_frame(&mut buf, MAX_FRAME_LEN).unwrap(), None);
        assert!(buf.capacity() < 1 << 20, "{}", buf.capacity());
    }

    #[test]
    fn bad_lengths_are_invalid() {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert_eq!(
            split_frame(&mut buf, MAX_FRAME_LEN),
            Err(FrameError::TooShort { len: 3 })
        );
        let mut buf = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            split_frame(&mut buf, MAX_FRAME_LEN),
            Err(FrameError::TooShort { len: -1 })
        ));
        let mut buf = BytesMut::from(&[b'D', 0x40, 0, 0, 1][..]);
        assert!(matches!(
            split_frame(&mut buf, MAX_FRAME_LEN),
            Err(FrameError::TooLong { .. })
        ));
        // The limit is a parameter: a small one rejects a big announced frame before buffering.
        let mut buf = BytesMut::from(&msg(b'D', &[0; 64])[..]);
        assert!(split_frame(&mut buf, 16).is_err());
    }

    #[test]
    fn startup_limits() {
        let mut ssl = BytesMut::from(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..]);
        let f = split_startup(&mut ssl).unwrap().unwrap();
        assert_eq!((f.tag(), f.body()), (0, &[0x04, 0xd2, 0x16, 0x2f][..]));
        let mut big = BytesMut::from(&10_001i32.to_be_bytes()[..]);
        assert!(split_startup(&mut big).is_err());
        let mut short = BytesMut::from(&[0, 0, 0, 6, 1, 2][..]);
        assert!(split_startup(&mut short).is_err());
        assert_eq!(split_startup(&mut BytesMut::from(&[0, 0][..])), Ok(None));
        assert!(startup_len(8i32.to_be_bytes()).is_ok());
        assert!(startup_len(7i32.to_be_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&data[..]);
            let mut consumed = 0;
            while let Ok(Some(f)) = split_frame(&mut buf, 4096) {
                prop_assert!(f.bytes().len() >= 5);
                consumed += f.bytes().len();
            }
            prop_assert_eq!(consumed + buf.len(), data.len());
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(f)) = split_startup(&mut buf) {
                prop_assert!(f.bytes().len() >= 8);
            }
        }
    }
}
