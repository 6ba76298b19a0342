//! COPY text format: rows end at a newline that no backslash escapes; fields are split at the
//! delimiter; `\N` (the NULL marker, compared before unescaping) is NULL; values are
//! backslash-escaped as PostgreSQL's `CopyReadAttributesText` / `CopyAttributeOutText` do.

use super::{CopyError, CopyOptions, MapFn};

/// The length of the row at the front of `buf` (through its `\n`), scanning from `from`;
/// `escaped` says the byte at `from` follows a backslash. `Err(n)`: no row end in the first
/// `n` bytes (resume there).
pub(super) fn row_end(buf: &[u8], from: usize, escaped: &mut bool) -> Result<usize, usize> {
    let mut i = from;
    while i < buf.len() {
        if *escaped {
            *escaped = false;
        } else if buf[i] == b'\\' {
            *escaped = true;
        } else if buf[i] == b'\n' {
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(i)
}

/// The fields of a row body (no line ending): byte ranges split at unescaped delimiters.
fn fields(body: &[u8], delim: u8) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(8);
    let (mut start, mut i) = (0, 0);
    while i < body.len() {
        match body[i] {
            b'\\' => i += 1,
            c if c == delim => {
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push((start, body.len().max(start)));
    out
}

/// Transforms one row body: mapped fields are unescaped, mapped and escaped again.
pub(super) fn transform<E>(
    body: &[u8],
    opts: &CopyOptions,
    mapped: &[bool],
    map: &mut MapFn<'_, E>,
    out: &mut Vec<u8>,
) -> Result<(), CopyError<E>> {
    if contains_bare_cr(body) {
        return Err(CopyError::Malformed(
            "literal carriage return found in COPY data (use \\r)",
        ));
    }
    for (idx, (s, e)) in fields(body, opts.delimiter).into_iter().enumerate() {
        if idx > 0 {
            out.push(opts.delimiter);
        }
        let raw = &body[s..e.min(body.len())];
        if !mapped.get(idx).copied().unwrap_or(false) {
            out.extend_from_slice(raw);
            continue;
        }
        let value = if raw == opts.null.as_slice() {
            None
        } else {
            Some(unescape(raw)?)
        };
        match map(idx, value.as_deref()).map_err(CopyError::Value)? {
            None => out.extend_from_slice(&opts.null),
            Some(v) => escape(&v, opts.delimiter, out),
        }
    }
    Ok(())
}

/// A carriage return that no backslash escapes.
fn contains_bare_cr(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 1,
            b'\r' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A field's value: `\b \f \n \r \t \v`, `\ooo` (octal), `\xhh` (hex), `\c` = c.
pub(super) fn unescape<E>(raw: &[u8]) -> Result<Vec<u8>, CopyError<E>> {
    let mut v = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != b'\\' {
            v.push(c);
            continue;
        }
        let Some(&n) = raw.get(i) else {
            return Err(CopyError::Malformed("COPY data ends with a backslash"));
        };
        i += 1;
        v.push(match n {
            b'0'..=b'7' => {
                let mut val = u32::from(n - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            val = val * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                (val & 0xff) as u8
            }
            b'x' => match raw.get(i).copied().and_then(hex) {
                Some(h) => {
                    i += 1;
                    match raw.get(i).copied().and_then(hex) {
                        Some(l) => {
                            i += 1;
                            h * 16 + l
                        }
                        None => h,
                    }
                }
                None => b'x',
            },
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'.' => {
                return Err(CopyError::Malformed(
                    "end-of-copy marker \\. is not alone on its line",
                ));
            }
            other => other,
        });
    }
    Ok(v)
}

/// Appends `v` escaped for the text format.
pub(super) fn escape(v: &[u8], delim: u8, out: &mut Vec<u8>) {
    out.reserve(v.len() + 2);
    for &c in v {
        let esc = match c {
            8 => Some(b'b'),
            12 => Some(b'f'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            11 => Some(b'v'),
            b'\\' => Some(b'\\'),
            c if c == delim => Some(c),
            _ => None,
        };
        match esc {
            Some(e) => {
                out.push(b'\\');
                out.push(e);
            }
            None => out.push(c),
        }
    }
}
