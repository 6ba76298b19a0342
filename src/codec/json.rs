//! json and jsonb. json is validated and kept verbatim (PostgreSQL stores and prints json
//! text as given). jsonb is normalised exactly as PostgreSQL prints it: keys sorted by
//! (length, bytes), the last of duplicate keys kept, `": "`/`", "` separators, strings
//! re-escaped, numbers in `numeric` form (`1e2` → `100`); that text is the canonical form, so
//! jsonb values PostgreSQL stores identically encrypt identically.

use super::error::{CodecError, INVALID_TEXT_REPRESENTATION, STATEMENT_TOO_COMPLEX};

/// Deepest nesting accepted (PostgreSQL's limit is its stack depth; ours is fixed).
const MAX_DEPTH: usize = 1000;

enum Value {
    Null,
    Bool(bool),
    Number(String),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    jsonb: bool,
}

fn syntax(pg_name: &str) -> CodecError {
    CodecError::plain(
        INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {pg_name}"),
    )
}

impl Parser<'_> {
    fn err(&self) -> CodecError {
        syntax(if self.jsonb { "jsonb" } else { "json" })
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::plain(
                STATEMENT_TOO_COMPLEX,
                "stack depth limit exceeded",
            ));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'a'..=b'z' | b'A'..=b'Z') => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"true" => Ok(Value::Bool(true)),
                    b"false" => Ok(Value::Bool(false)),
                    b"null" => Ok(Value::Null),
                    _ => Err(self.err()),
                }
            }
            _ => Err(self.err()),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, CodecError> {
        self.i += 1;
        let mut pairs = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(pairs));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err());
            }
            let key = self.string()?;
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(self.err());
            }
            self.i += 1;
            pairs.push((key, self.value(depth + 1)?));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(pairs));
                }
                _ => return Err(self.err()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, CodecError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err()),
            }
        }
    }

    fn number(&mut self) -> Result<Value, CodecError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - s
        };
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return Err(self.err());
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err());
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err());
            }
        }
        if self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'.')
        {
            return Err(self.err());
        }
        let text = &self.s[start..self.i];
        if !self.jsonb {
            return Ok(Value::Null);
        }
        let n = super::numeric::parse_text(text)?;
        Ok(Value::Number(super::numeric::to_text(&n)))
    }

    fn hex4(&mut self) -> Result<u32, CodecError> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err())?;
        let mut v = 0u32;
        for c in h {
            v = v << 4 | u32::from(super::scalar::hex_val(*c).ok_or_else(|| self.err())?);
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or_else(|| self.err())?;
            self.i += 1;
            match c {
                b'"' => break,
                0..0x20 => return Err(self.err()),
                b'\\' => self.escape(&mut out)?,
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err())
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let e = *self.s.get(self.i).ok_or_else(|| self.err())?;
        self.i += 1;
        let simple = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => return self.unicode_escape(out),
            _ => return Err(self.err()),
        };
        out.push(simple);
        Ok(())
    }

    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut cp = self.hex4()?;
        if !self.jsonb {
            // json keeps its text verbatim: PostgreSQL checks only the four hex digits.
            return Ok(());
        }
        if (0xD800..0xDC00).contains(&cp) {
            if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                return Err(self.err());
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err());
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (0xDC00..0xE000).contains(&cp) {
            return Err(self.err());
        }
        if cp == 0 && self.jsonb {
            return Err(CodecError::plain(
                crate::sqlstate::UNTRANSLATABLE_CHARACTER,
                "unsupported Unicode escape sequence",
            ));
        }
        let ch = char::from_u32(cp).ok_or_else(|| self.err())?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }
}

fn parse_document(text: &[u8], jsonb: bool) -> Result<Value, CodecError> {
    let pg_name = if jsonb { "jsonb" } else { "json" };
    if std::str::from_utf8(text).is_err() {
        return Err(syntax(pg_name));
    }
    let mut p = Parser {
        s: text,
        i: 0,
        jsonb,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != text.len() {
        return Err(syntax(pg_name));
    }
    Ok(v)
}

/// json text → canonical (the same bytes, validated).
pub(crate) fn json_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    parse_document(text, false)?;
    Ok(text.to_vec())
}

/// jsonb text → canonical (PostgreSQL's normalised output text).
pub(crate) fn jsonb_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    let v = parse_document(text, true)?;
    let mut out = String::with_capacity(text.len() + 8);
    render(normalise(v), &mut out);
    Ok(out.into_bytes())
}

/// jsonb binary (version byte 1 + text) → canonical.
pub(crate) fn jsonb_binary_to_canonical(bin: &[u8]) -> Result<Vec<u8>, CodecError> {
    match bin.split_first() {
        Some((1, text)) => jsonb_to_canonical(text),
        Some(_) => Err(CodecError::plain(
            super::error::INVALID_BINARY_REPRESENTATION,
            "unsupported jsonb version number",
        )),
        None => Err(CodecError::binary("jsonb")),
    }
}

/// Sorts object keys by (length, bytes) and keeps the last of duplicates, recursively.
fn normalise(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::Object(pairs) => {
            let mut pairs: Vec<(String, Value)> =
                pairs.into_iter().map(|(k, v)| (k, normalise(v))).collect();
            // Stable sort keeps input order among equal keys; then keep the last of each run.
            pairs.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
            let mut out: Vec<(String, Value)> = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                match out.last_mut() {
                    Some(last) if last.0 == k => last.1 = v,
                    _ => out.push((k, v)),
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

fn render(v: Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n),
        Value::Str(s) => escape_json(&s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Value::Object(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                escape_json(&k, out);
                out.push_str(": ");
                render(v, out);
            }
            out.push('}');
        }
    }
}

/// PostgreSQL's `escape_json`.
fn escape_json(s: &str, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jb(s: &str) -> String {
        String::from_utf8(jsonb_to_canonical(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn jsonb_normalises_like_postgres() {
        assert_eq!(
            jb(r#"{"b":1,"a":[1e2,2.0,-0],"aa":"\u00e9\/\t"}"#),
            "{\"a\": [100, 2.0, 0], \"b\": 1, \"aa\": \"é/\\t\"}"
        );
        assert_eq!(jb(r#" {"a":1,"a":2} "#), "{\"a\": 2}");
        assert_eq!(jb("[]"), "[]");
        assert_eq!(jb("{ }"), "{}");
        assert_eq!(jb("\"\\u001f\\ud83d\\ude00\""), "\"\\u001f😀\"");
        assert_eq!(jb("-1.50E+1"), "-15.0");
        assert_eq!(jb("true"), "true");
    }

    #[test]
    fn json_is_verbatim_but_validated() {
        let text = b" {\"b\" : 1, \"a\":1e2 } ";
        assert_eq!(json_to_canonical(text).unwrap(), text);
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "tru",
            "{\"a\" 1}",
            "\"a\nb\"",
            "[1] x",
            "nul",
        ] {
            let e = json_to_canonical(bad.as_bytes()).unwrap_err();
            assert_eq!(e.sqlstate(), "22P02", "{bad}");
        }
        assert!(json_to_canonical(b"\"\\u0000\"").is_ok());
        assert!(json_to_canonical(b"\"\\ud800\"").is_ok());
        assert!(jsonb_to_canonical(b"\"\\ud800\"").is_err());
        assert_eq!(
            jsonb_to_canonical(b"\"\\u0000\"").unwrap_err().sqlstate(),
            "22P05"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(5000) + &"]".repeat(5000);
        assert_eq!(
            json_to_canonical(deep.as_bytes()).unwrap_err().sqlstate(),
            "54001"
        );
    }
}
