//! Server errors and notices that quote a stored value (`DETAIL: Key (ssn)=(\x0102…) already
//! exists.`, `Failing row contains (8, \x0101…)`) would show the client ciphertext as a value:
//! every envelope in them — a bytea in hex (`\x0101…`, `\x0102…`) or escape (`\001\001…`)
//! output whose header is pgcloak's (spec §6) — is replaced by `<encrypted>`.

use std::borrow::Cow;

use bytes::Bytes;

use crate::protocol::Frame;
use crate::protocol::backend::{decode_error_fields, encode_error_fields};

/// What an envelope in a server message is replaced by.
const REDACTED: &str = "<encrypted>";

/// The message with every envelope redacted; None when it quotes none (forward it as is).
pub(super) fn redact_message(frame: &Frame) -> Option<Bytes> {
    let fields = decode_error_fields(frame.body()).ok()?;
    if !fields.iter().any(|(_, v)| find_envelope(v, 0).is_some()) {
        return None;
    }
    let redacted: Vec<(u8, Cow<'_, str>)> = fields.iter().map(|&(t, v)| (t, redact(v))).collect();
    Some(encode_error_fields(
        frame.tag(),
        redacted.iter().map(|(t, v)| (*t, v.as_ref())),
    ))
}

/// The start and end of the first envelope in `s` at or after `from`.
fn find_envelope(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while let Some(off) = b.get(i..)?.iter().position(|&c| c == b'\\') {
        let at = i + off;
        if let Some(end) = hex_envelope(b, at).or_else(|| escape_envelope(b, at)) {
            return Some((at, end));
        }
        i = at + 1;
    }
    None
}

/// `\x01 01|02 <hex…>` at `at`: its end.
fn hex_envelope(b: &[u8], at: usize) -> Option<usize> {
    let rest = b.get(at + 1..)?;
    let digits = rest.strip_prefix(b"x")?;
    let head = digits.get(..4)?;
    let ours = head.eq_ignore_ascii_case(b"0101") || head.eq_ignore_ascii_case(b"0102");
    let n = digits.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    (ours && n >= 4).then_some(at + 2 + n)
}

/// `\001\001…` / `\001\002…` (bytea_output = escape) at `at`: its end, the rest of the value
/// being escapes and printable bytes up to a delimiter PostgreSQL puts around values.
fn escape_envelope(b: &[u8], at: usize) -> Option<usize> {
    let head = b.get(at..at + 8)?;
    if head != b"\\001\\001" && head != b"\\001\\002" {
        return None;
    }
    let n = b[at..]
        .iter()
        .take_while(|&&c| !matches!(c, b',' | b')' | b' ' | b'\n'))
        .count();
    Some(at + n)
}

fn redact(v: &str) -> Cow<'_, str> {
    let Some(first) = find_envelope(v, 0) else {
        return Cow::Borrowed(v);
    };
    let mut out = String::with_capacity(v.len());
    let (mut pos, mut next) = (0, Some(first));
    while let Some((s, e)) = next {
        out.push_str(&v[pos..s]);
        out.push_str(REDACTED);
        pos = e;
        next = find_envelope(v, e);
    }
    out.push_str(&v[pos..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_hex_and_escape_envelopes_only() {
        let d = r"Key (tax_id)=(\x0102000000017a9f) already exists.";
        assert_eq!(redact(d), "Key (tax_id)=(<encrypted>) already exists.");
        let c = r"Failing row contains (8, \x01010000000aabb, \x00ff, plain).";
        assert_eq!(
            redact(c),
            r"Failing row contains (8, <encrypted>, \x00ff, plain)."
        );
        let e = r"Failing row contains (\001\002\000\000\000\001abc, x).";
        assert_eq!(redact(e), "Failing row contains (<encrypted>, x).");
        assert!(matches!(redact("no values here"), Cow::Borrowed(_)));
        assert_eq!(redact(r"\x01"), r"\x01");
    }

    #[test]
    fn rebuilds_the_message_with_every_field() {
        let fields = [
            (b'S', "ERROR"),
            (b'C', "23505"),
            (b'D', r"Key (ssn)=(\x0102aa) already exists."),
        ];
        let wire = encode_error_fields(b'E', fields);
        let mut buf = bytes::BytesMut::from(&wire[..]);
        let frame = crate::protocol::split_frame(&mut buf, 1 << 20)
            .unwrap()
            .unwrap();
        let out = redact_message(&frame).expect("redacted");
        let mut buf = bytes::BytesMut::from(&out[..]);
        let f = crate::protocol::split_frame(&mut buf, 1 << 20)
            .unwrap()
            .unwrap();
        let got = decode_error_fields(f.body()).unwrap();
        assert_eq!(got[1], (b'C', "23505"));
        assert_eq!(got[2], (b'D', "Key (ssn)=(<encrypted>) already exists."));
        assert!(redact_message(&frame_of(&[(b'S', "ERROR")])).is_none());
    }

    fn frame_of(fields: &[(u8, &str)]) -> Frame {
        let wire = encode_error_fields(b'E', fields.iter().copied());
        let mut buf = bytes::BytesMut::from(&wire[..]);
        crate::protocol::split_frame(&mut buf, 1 << 20)
            .unwrap()
            .unwrap()
    }
}
