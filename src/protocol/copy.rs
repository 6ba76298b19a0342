//! The COPY sub-protocol's messages that pgcloak writes itself: CopyData with a rewritten
//! payload, CopyDone, and CopyFail when it refuses a client's rows.

use bytes::Bytes;

use super::wire::Builder;

/// A CopyData ('d') message.
pub fn copy_data(payload: &[u8]) -> Bytes {
    Builder::new(b'd').bytes(payload).finish()
}

/// A CopyDone ('c') message.
pub fn copy_done() -> Bytes {
    Builder::new(b'c').finish()
}

/// A CopyFail ('f') message.
pub fn copy_fail(message: &str) -> Bytes {
    Builder::new(b'f').cstr(message).finish()
}

/// The overall format of a CopyInResponse / CopyOutResponse body: true for binary.
pub fn response_is_binary(body: &[u8]) -> bool {
    body.first() == Some(&1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_their_tags_and_lengths() {
        assert_eq!(&copy_data(b"ab")[..], b"d\0\0\0\x06ab");
        assert_eq!(&copy_done()[..], b"c\0\0\0\x04");
        assert_eq!(&copy_fail("x")[..], b"f\0\0\0\x06x\0");
        assert!(response_is_binary(&[1, 0, 0]) && !response_is_binary(&[0, 0, 1, 0, 0]));
    }
}
