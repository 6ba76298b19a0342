//! Codecs for the simple fixed-layout and byte-string types: integers, bool, uuid, text and
//! varchar, bytea. Canonical forms: big-endian integers, one byte for bool, the 16 uuid bytes,
//! the UTF-8 bytes of text, the raw bytes of bytea (each equal to PostgreSQL's binary format).

use super::error::{CHARACTER_NOT_IN_REPERTOIRE, CodecError};

// `22023` invalid_parameter_value: PostgreSQL's code for bad hex in bytea input.
use crate::sqlstate::INVALID_PARAMETER_VALUE;

/// PostgreSQL's `isspace` set (C locale).
pub(crate) fn is_pg_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Trims PostgreSQL whitespace from both ends.
pub(crate) fn trim_pg(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_pg_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_pg_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses an integer as `pg_strtoint{16,32,64}` do, into an i64 checked against `[min, max]`.
pub(crate) fn parse_int(text: &[u8], min: i64, max: i64, pg_name: &str) -> Result<i64, CodecError> {
    let s = trim_pg(text);
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::syntax(pg_name, text));
    }
    let mut acc: i128 = 0;
    for d in digits {
        acc = acc * 10 + i128::from(d - b'0');
        if acc > i128::from(i64::MAX) + 1 {
            return Err(CodecError::out_of_range(pg_name, text));
        }
    }
    let v = if neg { -acc } else { acc };
    if v < i128::from(min) || v > i128::from(max) {
        return Err(CodecError::out_of_range(pg_name, text));
    }
    Ok(v as i64)
}

/// Text → big-endian bytes of an integer type of `width` bytes (2, 4 or 8).
pub(crate) fn int_text_to_canonical(text: &[u8], width: usize) -> Result<Vec<u8>, CodecError> {
    let (min, max, name) = int_limits(width);
    let v = parse_int(text, min, max, name)?;
    Ok(v.to_be_bytes()[8 - width..].to_vec())
}

fn int_limits(width: usize) -> (i64, i64, &'static str) {
    match width {
        2 => (i16::MIN.into(), i16::MAX.into(), "smallint"),
        4 => (i32::MIN.into(), i32::MAX.into(), "integer"),
        _ => (i64::MIN, i64::MAX, "bigint"),
    }
}

/// Big-endian bytes of `width` → the signed value.
pub(crate) fn int_from_be(bytes: &[u8], width: usize) -> Option<i64> {
    Some(match width {
        2 => i16::from_be_bytes(bytes.try_into().ok()?).into(),
        4 => i32::from_be_bytes(bytes.try_into().ok()?).into(),
        _ => i64::from_be_bytes(bytes.try_into().ok()?),
    })
}

/// Canonical integer → decimal text.
pub(crate) fn int_to_text(canonical: &[u8], width: usize) -> Result<Vec<u8>, CodecError> {
    let v =
        int_from_be(canonical, width).ok_or_else(|| CodecError::corrupt(int_limits(width).2))?;
    Ok(v.to_string().into_bytes())
}

/// `boolin`: t/true/y/yes/on/1 and f/false/n/no/off/0, any unambiguous prefix, any case.
pub(crate) fn bool_text_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    let s = trim_pg(text).to_ascii_lowercase();
    let prefix_of = |word: &[u8], min: usize| s.len() >= min && word.starts_with(&s);
    let v = if prefix_of(b"true", 1) || prefix_of(b"yes", 1) || prefix_of(b"on", 2) || s == b"1" {
        1
    } else if prefix_of(b"false", 1) || prefix_of(b"no", 1) || prefix_of(b"off", 2) || s == b"0" {
        0
    } else {
        return Err(CodecError::syntax("boolean", text));
    };
    Ok(vec![v])
}

/// `uuid_in`: 32 hex digits, optional braces, a hyphen allowed after any group of 4 digits.
pub(crate) fn uuid_text_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    let err = || CodecError::syntax("uuid", text);
    let (braces, mut src) = match text.first() {
        Some(b'{') => (true, &text[1..]),
        _ => (false, text),
    };
    let mut out = Vec::with_capacity(16);
    for i in 0..16 {
        let [a, b, rest @ ..] = src else {
            return Err(err());
        };
        out.push(hex_val(*a).ok_or_else(err)? << 4 | hex_val(*b).ok_or_else(err)?);
        src = rest;
        if i % 2 == 1
            && i < 15
            && let [b'-', rest @ ..] = src
        {
            src = rest;
        }
    }
    if braces {
        src = src.strip_prefix(b"}").ok_or_else(err)?;
    }
    if !src.is_empty() {
        return Err(err());
    }
    Ok(out)
}

/// Canonical uuid → `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower case.
pub(crate) fn uuid_to_text(canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    if canonical.len() != 16 {
        return Err(CodecError::corrupt("uuid"));
    }
    let mut out = Vec::with_capacity(36);
    for (i, b) in canonical.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        push_hex(&mut out, *b);
    }
    Ok(out)
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 15)]);
}

/// Text and varchar: the bytes must be valid UTF-8 without NUL (as PostgreSQL's UTF8
/// encoding check); the canonical form is those bytes.
pub(crate) fn utf8_to_canonical(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let bad_at = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.iter().position(|b| *b == 0),
        Err(e) => Some(e.valid_up_to()),
    };
    match bad_at {
        None => Ok(bytes.to_vec()),
        Some(at) => {
            let seq: Vec<String> = bytes[at..]
                .iter()
                .take(bytes[at..].len().min(utf8_seq_len(bytes[at])))
                .map(|b| format!("0x{b:02x}"))
                .collect();
            let redacted = "invalid byte sequence for encoding \"UTF8\"".to_string();
            Err(CodecError::new(
                CHARACTER_NOT_IN_REPERTOIRE,
                format!("{redacted}: {}", seq.join(" ")),
                redacted,
            ))
        }
    }
}

fn utf8_seq_len(first: u8) -> usize {
    match first {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// `byteain`: `\x` followed by hex pairs (whitespace between pairs allowed), or the escape
/// format (`\\` and `\ooo` octal escapes, any other byte literal).
pub(crate) fn bytea_text_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    if let Some(hex) = text.strip_prefix(b"\\x") {
        return bytea_hex(hex);
    }
    let err = || CodecError::syntax("bytea", text);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
        } else if text.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = text.get(i + 1..i + 4).ok_or_else(err)?;
            let ok = matches!(oct[0], b'0'..=b'3')
                && matches!(oct[1], b'0'..=b'7')
                && matches!(oct[2], b'0'..=b'7');
            if !ok {
                return Err(err());
            }
            out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
            i += 4;
        }
    }
    Ok(out)
}

fn bytea_hex(hex: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(hex.len() / 2);
    let mut i = 0;
    while i < hex.len() {
        if is_pg_space(hex[i]) {
            i += 1;
            continue;
        }
        let bad = |c: u8| {
            let shown = String::from_utf8_lossy(&[c]).into_owned();
            CodecError::new(
                INVALID_PARAMETER_VALUE,
                format!("invalid hexadecimal digit: \"{shown}\""),
                "invalid hexadecimal digit".into(),
            )
        };
        let hi = hex_val(hex[i]).ok_or_else(|| bad(hex[i]))?;
        let Some(&lo_c) = hex.get(i + 1) else {
            return Err(CodecError::plain(
                INVALID_PARAMETER_VALUE,
                "invalid hexadecimal data: odd number of digits",
            ));
        };
        let lo = hex_val(lo_c).ok_or_else(|| bad(lo_c))?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    Ok(out)
}

/// Canonical bytea → hex output (`\x` + lower-case hex), as `bytea_output = hex`.
pub(crate) fn bytea_to_text(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + canonical.len() * 2);
    out.extend_from_slice(b"\\x");
    for b in canonical {
        push_hex(&mut out, *b);
    }
    out
}

/// Canonical bytea → escape output, as `bytea_output = escape`: printable ASCII as is, `\`
/// doubled, every other byte as `\ooo`.
pub(crate) fn bytea_to_escape(canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len());
    for &b in canonical {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\{b:03o}").as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_escape_output_is_postgresqls() {
        assert_eq!(
            bytea_to_escape(b"\x01A\\ \x7f\xff"),
            b"\\001A\\\\ \\177\\377".to_vec()
        );
    }

    #[test]
    fn ints_follow_pg_strtoint() {
        assert_eq!(
            int_text_to_canonical(b"  -42 ", 4).unwrap(),
            (-42i32).to_be_bytes()
        );
        assert_eq!(int_text_to_canonical(b"+7", 2).unwrap(), 7i16.to_be_bytes());
        let e = int_text_to_canonical(b"abc", 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input syntax for type integer: \"abc\""
        );
        assert_eq!(e.sqlstate(), "22P02");
        let e = int_text_to_canonical(b"99999", 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "value \"99999\" is out of range for type smallint"
        );
        assert_eq!(e.sqlstate(), "22003");
        assert!(int_text_to_canonical(b"-9223372036854775808", 8).is_ok());
        assert!(int_text_to_canonical(b"9223372036854775808", 8).is_err());
        assert!(int_text_to_canonical(b"", 8).is_err());
        assert!(int_text_to_canonical(b"1 2", 8).is_err());
    }

    #[test]
    fn bool_forms() {
        for t in ["t", "TRUE", " yes ", "on", "1", "y", "tr"] {
            assert_eq!(bool_text_to_canonical(t.as_bytes()).unwrap(), [1], "{t}");
        }
        for f in ["f", "false", "no", "off", "0", "n", "of"] {
            assert_eq!(bool_text_to_canonical(f.as_bytes()).unwrap(), [0], "{f}");
        }
        for bad in ["o", "", "2", "truee", "yess"] {
            assert!(bool_text_to_canonical(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn uuid_forms() {
        let want = uuid_text_to_canonical(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        for form in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        ] {
            assert_eq!(
                uuid_text_to_canonical(form.as_bytes()).unwrap(),
                want,
                "{form}"
            );
        }
        for bad in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11",
            " a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
        ] {
            assert!(uuid_text_to_canonical(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            uuid_to_text(&want).unwrap(),
            b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }

    #[test]
    fn bytea_forms() {
        assert_eq!(
            bytea_text_to_canonical(b"\\xDE ad\nbe").unwrap(),
            [0xde, 0xad, 0xbe]
        );
        assert_eq!(
            bytea_text_to_canonical(b"a\\\\b\\001").unwrap(),
            b"a\\b\x01"
        );
        assert!(bytea_text_to_canonical(b"\\x1").is_err());
        assert!(bytea_text_to_canonical(b"\\q").is_err());
        assert_eq!(bytea_to_text(&[0, 255]), b"\\x00ff");
    }

    #[test]
    fn text_rejects_bad_utf8_and_nul() {
        assert_eq!(
            utf8_to_canonical("héllo".as_bytes()).unwrap(),
            "héllo".as_bytes()
        );
        let e = utf8_to_canonical(b"a\xc3(").unwrap_err();
        assert_eq!(e.sqlstate(), "22021");
        assert!(utf8_to_canonical(b"a\0b").is_err());
    }
}
