//! One-dimensional PostgreSQL arrays (sans-IO): the text form `{a,"b c",NULL}` and the binary
//! (send/recv) form split into their elements, and binary `bytea[]` built from elements.
//!
//! Used for `col = ANY($1)` / `col <> ALL($1)` on deterministic columns: the client sends an
//! array of the column's logical type, pgcloak encrypts every element and sends a `bytea[]`.
//! Only the element texts or bytes are returned here; each element is then decoded by the
//! logical type's own codec. A multidimensional text array is refused (the binary form is
//! flattened, which is what `ANY`/`ALL` compare against).

use super::error::{CodecError, INVALID_BINARY_REPRESENTATION, INVALID_TEXT_REPRESENTATION};
use super::types::{BYTEA_OID, LogicalType};

/// `bytea[]`.
pub const BYTEA_ARRAY_OID: u32 = 1001;

/// Most elements accepted in one array (PostgreSQL's MaxArraySize is larger; this bounds the
/// work one Bind can ask of the proxy).
const MAX_ELEMENTS: usize = 1 << 20;

impl LogicalType {
    /// The OID of the array type whose elements are of this type (`text[]` for text, …).
    pub fn array_oid(self) -> u32 {
        match self {
            Self::Text => 1009,
            Self::Varchar => 1015,
            Self::Int2 => 1005,
            Self::Int4 => 1007,
            Self::Int8 => 1016,
            Self::Float4 => 1021,
            Self::Float8 => 1022,
            Self::Numeric => 1231,
            Self::Bool => 1000,
            Self::Date => 1182,
            Self::Time => 1183,
            Self::Timestamp => 1115,
            Self::Timestamptz => 1185,
            Self::Uuid => 2951,
            Self::Json => 199,
            Self::Jsonb => 3807,
            Self::Bytea => BYTEA_ARRAY_OID,
        }
    }
}

fn malformed(text: &[u8], detail: &str) -> CodecError {
    CodecError::new(
        INVALID_TEXT_REPRESENTATION,
        format!(
            "malformed array literal: \"{}\" ({detail})",
            String::from_utf8_lossy(text)
        ),
        format!("malformed array literal ({detail})"),
    )
}

fn bad_binary(detail: &str) -> CodecError {
    let msg = format!("invalid binary array ({detail})");
    CodecError::new(INVALID_BINARY_REPRESENTATION, msg.clone(), msg)
}

/// The elements of a one-dimensional array in text form (None: NULL). Accepts PostgreSQL's
/// quoting and backslash escapes, surrounding whitespace, and a `[lo:hi]=` dimension prefix.
pub fn parse_text(text: &[u8]) -> Result<Vec<Option<Vec<u8>>>, CodecError> {
    let mut i = skip_ws(text, 0);
    if text.get(i) == Some(&b'[') {
        let eq = text[i..]
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| malformed(text, "dimension decoration without \"=\""))?;
        if text[i..i + eq].iter().filter(|&&c| c == b'[').count() > 1 {
            return Err(multidimensional(text));
        }
        i = skip_ws(text, i + eq + 1);
    }
    if text.get(i) != Some(&b'{') {
        return Err(malformed(text, "array value must start with \"{\""));
    }
    i = skip_ws(text, i + 1);
    let mut out = Vec::new();
    if text.get(i) == Some(&b'}') {
        return finish(text, i + 1, out);
    }
    loop {
        let (elem, next) = element(text, i)?;
        if out.len() >= MAX_ELEMENTS {
            return Err(malformed(text, "too many elements"));
        }
        out.push(elem);
        i = skip_ws(text, next);
        match text.get(i) {
            Some(b',') => i = skip_ws(text, i + 1),
            Some(b'}') => return finish(text, i + 1, out),
            _ => return Err(malformed(text, "unexpected character")),
        }
    }
}

fn multidimensional(text: &[u8]) -> CodecError {
    CodecError::new(
        super::error::FEATURE_NOT_SUPPORTED,
        format!(
            "pgcloak: multidimensional array \"{}\" compared with an encrypted column",
            String::from_utf8_lossy(text)
        ),
        "pgcloak: multidimensional array compared with an encrypted column".to_owned(),
    )
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn finish(
    text: &[u8],
    end: usize,
    out: Vec<Option<Vec<u8>>>,
) -> Result<Vec<Option<Vec<u8>>>, CodecError> {
    if skip_ws(text, end) == text.len() {
        Ok(out)
    } else {
        Err(malformed(text, "junk after closing right brace"))
    }
}

/// One element starting at `i` (after whitespace): its value and the index after it.
fn element(text: &[u8], mut i: usize) -> Result<(Option<Vec<u8>>, usize), CodecError> {
    let mut v = Vec::new();
    match text.get(i) {
        Some(b'{') => return Err(multidimensional(text)),
        Some(b'"') => {
            i += 1;
            loop {
                match text.get(i) {
                    None => return Err(malformed(text, "unexpected end of input")),
                    Some(b'"') => return Ok((Some(v), i + 1)),
                    Some(b'\\') => {
                        let c = text
                            .get(i + 1)
                            .ok_or_else(|| malformed(text, "unexpected end of input"))?;
                        v.push(*c);
                        i += 2;
                    }
                    Some(c) => {
                        v.push(*c);
                        i += 1;
                    }
                }
            }
        }
        _ => {}
    }
    // Unquoted: up to the next delimiter; trailing whitespace is not part of the value unless
    // escaped.
    let mut keep = 0;
    let mut escaped_any = false;
    loop {
        match text.get(i) {
            None => return Err(malformed(text, "unexpected end of input")),
            Some(b',' | b'}') => break,
            Some(b'{' | b'"') => return Err(malformed(text, "unexpected character")),
            Some(b'\\') => {
                let c = text
                    .get(i + 1)
                    .ok_or_else(|| malformed(text, "unexpected end of input"))?;
                v.push(*c);
                keep = v.len();
                escaped_any = true;
                i += 2;
            }
            Some(c) => {
                v.push(*c);
                if !c.is_ascii_whitespace() {
                    keep = v.len();
                }
                i += 1;
            }
        }
    }
    v.truncate(keep);
    if v.is_empty() {
        return Err(malformed(text, "empty unquoted element"));
    }
    if !escaped_any && v.eq_ignore_ascii_case(b"null") {
        return Ok((None, i));
    }
    Ok((Some(v), i))
}

/// The elements of a binary array (None: NULL), borrowed from the value.
pub type Elements<'a> = Vec<Option<&'a [u8]>>;

/// A binary array: its element type OID and elements, all dimensions flattened.
pub fn parse_binary(bin: &[u8]) -> Result<(u32, Elements<'_>), CodecError> {
    let mut r = Reader { bin, at: 0 };
    let ndim = r.i32()?;
    let _has_nulls = r.i32()?;
    let elem = u32::from_be_bytes(r.i32()?.to_be_bytes());
    if !(0..=6).contains(&ndim) {
        return Err(bad_binary("invalid number of dimensions"));
    }
    let mut count: usize = usize::from(ndim > 0);
    for _ in 0..ndim {
        let len = usize::try_from(r.i32()?).map_err(|_| bad_binary("negative dimension"))?;
        let _lower = r.i32()?;
        count = count
            .checked_mul(len)
            .filter(|&c| c <= MAX_ELEMENTS)
            .ok_or_else(|| bad_binary("too many elements"))?;
    }
    let mut out = Vec::with_capacity(count.min(bin.len() / 4 + 1));
    for _ in 0..count {
        let len = r.i32()?;
        if len == -1 {
            out.push(None);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| bad_binary("invalid element length"))?;
        out.push(Some(r.take(len)?));
    }
    if r.at != bin.len() {
        return Err(bad_binary("trailing bytes"));
    }
    Ok((elem, out))
}

struct Reader<'a> {
    bin: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bin.len())
            .ok_or_else(|| bad_binary("truncated"))?;
        let s = &self.bin[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A one-dimensional `bytea[]` in binary form (lower bound 1); no elements gives the empty
/// array.
pub fn bytea_array<'a>(items: impl ExactSizeIterator<Item = Option<&'a [u8]>> + Clone) -> Vec<u8> {
    let size: usize = items.clone().map(|v| 4 + v.map_or(0, <[u8]>::len)).sum();
    let count = items.len();
    let has_null = items.clone().any(|v| v.is_none());
    let mut out = Vec::with_capacity(20 + size);
    let dims: i32 = i32::from(count > 0);
    out.extend_from_slice(&dims.to_be_bytes());
    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
    out.extend_from_slice(&BYTEA_OID.to_be_bytes());
    if count > 0 {
        let n = i32::try_from(count).unwrap_or(i32::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
    for v in items {
        match v {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                let n = i32::try_from(v.len()).unwrap_or(i32::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<Option<String>> {
        parse_text(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| e.map(|v| String::from_utf8(v).unwrap()))
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn text_arrays_split_like_postgres() {
        assert_eq!(texts("{}"), Vec::<Option<String>>::new());
        assert_eq!(texts(" { } "), Vec::<Option<String>>::new());
        assert_eq!(texts("{a,b}"), vec![s("a"), s("b")]);
        assert_eq!(texts("{ a , b c }"), vec![s("a"), s("b c")]);
        assert_eq!(
            texts(r#"{"a,b","x\"y",NULL,null,"NULL",\NULL}"#),
            vec![s("a,b"), s("x\"y"), None, None, s("NULL"), s("NULL")]
        );
        assert_eq!(texts(r"{a\ ,\\}"), vec![s("a "), s("\\")]);
        assert_eq!(texts(r#"{""}"#), vec![s("")]);
        assert_eq!(texts("[1:2]={1,2}"), vec![s("1"), s("2")]);
        assert_eq!(
            texts("{2000-01-01 10:00:00+02}"),
            vec![s("2000-01-01 10:00:00+02")]
        );
    }

    #[test]
    fn malformed_text_arrays_are_22p02_and_multidimensional_0a000() {
        for bad in [
            "", "a", "{", "{a", "{a,}", "{,a}", "{a}x", "{\"a}", "{a\"b}",
        ] {
            let e = parse_text(bad.as_bytes()).unwrap_err();
            assert_eq!(e.sqlstate(), "22P02", "{bad:?}");
        }
        for multi in ["{{1,2},{3,4}}", "[1:2][1:1]={{1},{2}}", "{a,{b}}"] {
            let e = parse_text(multi.as_bytes()).unwrap_err();
            assert_eq!(e.sqlstate(), "0A000", "{multi:?}");
            assert!(!e.redacted().contains('1'));
        }
    }

    fn binary(elem: u32, dims: &[i32], items: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&i32::try_from(dims.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&elem.to_be_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
        }
        for i in items {
            match i {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    out.extend_from_slice(&i32::try_from(v.len()).unwrap().to_be_bytes());
                    out.extend_from_slice(v);
                }
            }
        }
        out
    }

    #[test]
    fn binary_arrays_split_and_flatten() {
        let one = binary(25, &[3], &[Some(b"a"), None, Some(b"")]);
        assert_eq!(
            parse_binary(&one).unwrap(),
            (25, vec![Some(&b"a"[..]), None, Some(&b""[..])])
        );
        assert_eq!(parse_binary(&binary(23, &[], &[])).unwrap(), (23, vec![]));
        let two = binary(23, &[2, 1], &[Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 2])]);
        assert_eq!(parse_binary(&two).unwrap().1.len(), 2);
        let mut trailing = one.clone();
        trailing.push(0);
        for bad in [&one[..one.len() - 1], &trailing[..], &[0, 0, 0, 1][..]] {
            assert_eq!(parse_binary(bad).unwrap_err().sqlstate(), "22P03");
        }
        let huge = binary(23, &[i32::MAX, i32::MAX], &[]);
        assert_eq!(parse_binary(&huge).unwrap_err().sqlstate(), "22P03");
    }

    #[test]
    fn bytea_arrays_round_trip() {
        let items: Vec<Option<&[u8]>> = vec![Some(b"\x01\x02"), None];
        let bin = bytea_array(items.iter().copied());
        assert_eq!(parse_binary(&bin).unwrap(), (BYTEA_OID, items));
        let empty = bytea_array(std::iter::empty());
        assert_eq!(parse_binary(&empty).unwrap(), (BYTEA_OID, vec![]));
    }

    #[test]
    fn array_oids_are_postgres_own() {
        assert_eq!(LogicalType::Text.array_oid(), 1009);
        assert_eq!(LogicalType::Uuid.array_oid(), 2951);
        assert_eq!(LogicalType::Bytea.array_oid(), BYTEA_ARRAY_OID);
    }
}
