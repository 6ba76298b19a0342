//! Little readers and writers for message bodies: a bounds-checked cursor (never panics on
//! short or malformed input) and a builder that patches the length word.

use bytes::{BufMut, Bytes, BytesMut};

/// A message body that does not have the shape its tag promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} message")]
pub struct DecodeError {
    pub what: &'static str,
}

/// A bounds-checked reader over a message body.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Cursor { buf, what }
    }

    pub(crate) fn err(&self) -> DecodeError {
        DecodeError { what: self.what }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// A NUL-terminated string (UTF-8 required).
    pub(crate) fn cstr(&mut self) -> Result<&'a str, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError { what: self.what })?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| self.err())?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A NUL-terminated byte string (any encoding).
    pub(crate) fn cbytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError { what: self.what })?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A length-prefixed value (Bind parameter, DataRow cell, SASL data): length -1 is NULL
    /// (`None`); any other negative length is malformed, as in PostgreSQL.
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            len if len < 0 => Err(self.err()),
            len => self.take(len as usize).map(Some),
        }
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

/// Builds one message: `tag` (0 = untagged) then a length word patched by [`Builder::finish`].
pub(crate) struct Builder {
    buf: BytesMut,
    start: usize,
}

impl Builder {
    pub(crate) fn new(tag: u8) -> Self {
        let mut buf = BytesMut::with_capacity(64);
        if tag != 0 {
            buf.put_u8(tag);
        }
        let start = buf.len();
        buf.put_i32(0);
        Builder { buf, start }
    }

    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.buf.put_i32(v);
        self
    }

    pub(crate) fn i16(mut self, v: i16) -> Self {
        self.buf.put_i16(v);
        self
    }

    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.buf.put_u8(v);
        self
    }

    pub(crate) fn bytes(mut self, v: &[u8]) -> Self {
        self.buf.put_slice(v);
        self
    }

    pub(crate) fn cstr(mut self, v: &str) -> Self {
        // An interior NUL would cut the field; PostgreSQL strings cannot hold one anyway.
        self.buf.extend(v.bytes().filter(|&b| b != 0));
        self.buf.put_u8(0);
        self
    }

    pub(crate) fn finish(mut self) -> Bytes {
        let len = (self.buf.len() - self.start) as i32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_be_bytes());
        self.buf.freeze()
    }
}
