//! COPY binary format: the file header (signature, flags, header extension), then tuples (a
//! 16-bit field count, each field a 32-bit length or -1 for NULL, then its bytes), then the
//! trailer (a field count of -1).

use super::{CopyError, MapFn};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

fn be32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The length of the file header at the front of `buf`; `None`: more bytes are needed.
pub(super) fn header<E>(buf: &[u8]) -> Result<Option<(usize, bool)>, CopyError<E>> {
    let n = buf.len().min(SIGNATURE.len());
    if buf[..n] != SIGNATURE[..n] {
        return Err(CopyError::Malformed("COPY file signature not recognized"));
    }
    if buf.len() < 19 {
        return Ok(None);
    }
    let ext = usize::try_from(be32(&buf[15..19]))
        .map_err(|_| CopyError::Malformed("invalid COPY file header (wrong length)"))?;
    Ok((buf.len() >= 19 + ext).then_some((19 + ext, false)))
}

/// Transforms the tuple (or trailer) at the front of `buf` into `out`: its length and whether
/// it was the trailer; `None`: more bytes are needed (nothing written).
pub(super) fn row<E>(
    buf: &[u8],
    mapped: &[bool],
    map: &mut MapFn<'_, E>,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, bool)>, CopyError<E>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let count = i16::from_be_bytes([buf[0], buf[1]]);
    if count == -1 {
        out.extend_from_slice(&buf[..2]);
        return Ok(Some((2, true)));
    }
    let count =
        usize::try_from(count).map_err(|_| CopyError::Malformed("invalid COPY field count"))?;
    // Find the whole tuple first, so an incomplete one writes nothing.
    let mut ranges = Vec::with_capacity(count);
    let mut at = 2usize;
    for _ in 0..count {
        let Some(len) = buf.get(at..at + 4).map(be32) else {
            return Ok(None);
        };
        at += 4;
        if len == -1 {
            ranges.push(None);
            continue;
        }
        let len =
            usize::try_from(len).map_err(|_| CopyError::Malformed("invalid COPY field length"))?;
        if buf.len() < at + len {
            return Ok(None);
        }
        ranges.push(Some((at, at + len)));
        at += len;
    }
    out.extend_from_slice(&buf[..2]);
    for (idx, r) in ranges.into_iter().enumerate() {
        let value = r.map(|(s, e)| &buf[s..e]);
        let value = if mapped.get(idx).copied().unwrap_or(false) {
            map(idx, value).map_err(CopyError::Value)?
        } else {
            match value {
                None => {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    continue;
                }
                Some(v) => {
                    push_len(v.len(), out)?;
                    out.extend_from_slice(v);
                    continue;
                }
            }
        };
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                push_len(v.len(), out)?;
                out.extend_from_slice(&v);
            }
        }
    }
    Ok(Some((at, false)))
}

fn push_len<E>(n: usize, out: &mut Vec<u8>) -> Result<(), CopyError<E>> {
    let n = i32::try_from(n).map_err(|_| CopyError::Malformed("COPY field too long"))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}
