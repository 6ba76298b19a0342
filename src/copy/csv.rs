//! COPY CSV format: fields split at the delimiter outside quotes; a quoted section may hold
//! delimiters and newlines; inside quotes the escape character (default: the quote itself)
//! makes the next quote or escape literal; an unquoted field equal to the NULL marker is NULL.
//! Output quotes a value when PostgreSQL's `CopyAttributeOutCSV` would.

use super::{CopyError, CopyOptions, MapFn};

/// The length of the row at the front of `buf` (through the newline that ends it outside
/// quotes), scanning from `from`; `quoted` says `from` is inside quotes. `Err(n)`: no row end
/// in the first `n` bytes (resume there).
pub(super) fn row_end(
    buf: &[u8],
    from: usize,
    quoted: &mut bool,
    opts: &CopyOptions,
) -> Result<usize, usize> {
    let mut i = from;
    while i < buf.len() {
        let c = buf[i];
        if *quoted {
            if c == opts.escape && opts.escape != opts.quote {
                match buf.get(i + 1) {
                    None => return Err(i),
                    Some(&n) if n == opts.quote || n == opts.escape => i += 1,
                    Some(_) => {}
                }
            } else if c == opts.quote {
                *quoted = false;
            }
        } else if c == opts.quote {
            *quoted = true;
        } else if c == b'\n' {
            return Ok(i + 1);
        }
        i += 1;
    }
    Err(i)
}

/// One parsed field: its raw range, value, and whether any part was quoted.
struct Parsed {
    range: (usize, usize),
    value: Vec<u8>,
    quoted: bool,
}

fn parse<E>(body: &[u8], opts: &CopyOptions) -> Result<Vec<Parsed>, CopyError<E>> {
    let mut out = Vec::with_capacity(8);
    let mut cur = Parsed {
        range: (0, 0),
        value: Vec::new(),
        quoted: false,
    };
    let (mut i, mut inside) = (0, false);
    while i < body.len() {
        let c = body[i];
        if inside {
            if c == opts.escape
                && body
                    .get(i + 1)
                    .is_some_and(|&n| n == opts.quote || n == opts.escape)
            {
                cur.value.push(body[i + 1]);
                i += 2;
                continue;
            }
            if c == opts.quote {
                inside = false;
            } else {
                cur.value.push(c);
            }
        } else if c == opts.quote {
            inside = true;
            cur.quoted = true;
        } else if c == opts.delimiter {
            cur.range.1 = i;
            let next = Parsed {
                range: (i + 1, i + 1),
                value: Vec::new(),
                quoted: false,
            };
            out.push(std::mem::replace(&mut cur, next));
        } else if c == b'\r' {
            return Err(CopyError::Malformed(
                "unquoted carriage return found in CSV data",
            ));
        } else {
            cur.value.push(c);
        }
        i += 1;
    }
    if inside {
        return Err(CopyError::Malformed("unterminated CSV quoted field"));
    }
    cur.range.1 = body.len();
    out.push(cur);
    Ok(out)
}

/// Transforms one row body (no line ending): mapped fields are unquoted, mapped and quoted
/// again where needed.
pub(super) fn transform<E>(
    body: &[u8],
    opts: &CopyOptions,
    mapped: &[bool],
    map: &mut MapFn<'_, E>,
    out: &mut Vec<u8>,
) -> Result<(), CopyError<E>> {
    let fields = parse(body, opts)?;
    let single = fields.len() == 1;
    for (idx, f) in fields.into_iter().enumerate() {
        if idx > 0 {
            out.push(opts.delimiter);
        }
        if !mapped.get(idx).copied().unwrap_or(false) {
            out.extend_from_slice(&body[f.range.0..f.range.1]);
            continue;
        }
        let value = (f.quoted || f.value != opts.null).then_some(f.value);
        match map(idx, value.as_deref()).map_err(CopyError::Value)? {
            None => out.extend_from_slice(&opts.null),
            Some(v) => quote(&v, opts, single, out),
        }
    }
    Ok(())
}

/// Appends `v`, quoted when it equals the NULL marker or holds the delimiter, the quote, a
/// newline or a carriage return (or is `\.` alone on its line).
pub(super) fn quote(v: &[u8], opts: &CopyOptions, single: bool, out: &mut Vec<u8>) {
    let needs = v == opts.null.as_slice()
        || (single && v == b"\\.")
        || v.iter()
            .any(|&c| c == opts.delimiter || c == opts.quote || c == b'\n' || c == b'\r');
    if !needs {
        out.extend_from_slice(v);
        return;
    }
    out.reserve(v.len() + 2);
    out.push(opts.quote);
    for &c in v {
        if c == opts.quote || c == opts.escape {
            out.push(opts.escape);
        }
        out.push(c);
    }
    out.push(opts.quote);
}
