//! numeric: text input as PostgreSQL 15's `numeric_in`, output as `numeric_out`, binary as
//! `numeric_send`/`numeric_recv`. Canonical form = the normalised send format (`ndigits`,
//! `weight`, `sign`, `dscale`, base-10000 digits; no leading or trailing zero digits, zero is
//! positive with weight 0). The display scale is kept: `1.0` and `1.00` differ (see `codec`).

use super::error::{CodecError, NUMERIC_VALUE_OUT_OF_RANGE};
use super::scalar::{is_pg_space, trim_pg};

const POS: u16 = 0x0000;
const NEG: u16 = 0x4000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
const DSCALE_MAX: u16 = 0x3FFF;
/// Exponents beyond this are a syntax error (PostgreSQL: beyond `int` range).
const MAX_EXPONENT: i64 = i32::MAX as i64;

/// A decoded numeric value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Numeric {
    sign: u16,
    weight: i16,
    dscale: u16,
    digits: Vec<u16>,
}

impl Numeric {
    /// NaN or ±Infinity. `numeric_send` reports dscale 32 for the infinities (header bits
    /// read as a short-format scale); we send the same bytes.
    fn special(sign: u16) -> Self {
        Self {
            sign,
            weight: 0,
            dscale: if sign == NAN { 0 } else { 32 },
            digits: Vec::new(),
        }
    }

    /// The send-format bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 2 * self.digits.len());
        out.extend_from_slice(&(self.digits.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.weight.to_be_bytes());
        out.extend_from_slice(&self.sign.to_be_bytes());
        out.extend_from_slice(&self.dscale.to_be_bytes());
        for d in &self.digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    /// Parses the send format, validating as `numeric_recv` does (no normalisation).
    fn from_bytes(bin: &[u8]) -> Option<Result<Self, &'static str>> {
        let word = |i: usize| -> Option<u16> {
            Some(u16::from_be_bytes(
                bin.get(2 * i..2 * i + 2)?.try_into().ok()?,
            ))
        };
        let n = usize::from(word(0)?);
        if bin.len() != 8 + 2 * n {
            return None;
        }
        let (weight, sign, dscale) = (word(1)? as i16, word(2)?, word(3)?);
        if ![POS, NEG, NAN, PINF, NINF].contains(&sign) {
            return Some(Err("invalid sign in external \"numeric\" value"));
        }
        if dscale & DSCALE_MAX != dscale {
            return Some(Err("invalid scale in external \"numeric\" value"));
        }
        let digits: Vec<u16> = (0..n).map(|i| word(4 + i)).collect::<Option<_>>()?;
        if digits.iter().any(|d| *d >= 10000) {
            return Some(Err("invalid digit in external \"numeric\" value"));
        }
        Some(Ok(Self {
            sign,
            weight,
            dscale,
            digits,
        }))
    }

    /// Drops digits beyond `dscale` decimal places (`trunc_var`) then strips zero digits and
    /// makes zero positive (`make_result`).
    fn normalise(mut self) -> Self {
        if self.sign != POS && self.sign != NEG {
            return Self::special(self.sign);
        }
        let keep = i64::from(self.weight) + 1 + (i64::from(self.dscale) + 3) / 4;
        let keep = keep.clamp(0, self.digits.len() as i64) as usize;
        self.digits.truncate(keep);
        let frac_in_last = i64::from(self.dscale) % 4;
        let last_pos = i64::from(self.weight) + 1 + i64::from(self.dscale) / 4;
        if frac_in_last != 0 && last_pos >= 0 && (last_pos as usize) < self.digits.len() {
            let m = 10u16.pow(4 - frac_in_last as u32);
            let d = &mut self.digits[last_pos as usize];
            *d -= *d % m;
        }
        let lead = self.digits.iter().take_while(|d| **d == 0).count();
        self.digits.drain(..lead);
        self.weight = self.weight.wrapping_sub(lead as i16);
        while self.digits.last() == Some(&0) {
            self.digits.pop();
        }
        if self.digits.is_empty() {
            self.weight = 0;
            self.sign = POS;
        }
        self
    }
}

/// Text → canonical bytes.
pub(crate) fn text_to_canonical(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    parse_text(text).map(|n| n.to_bytes())
}

/// Parses numeric text into a normalised value.
pub(crate) fn parse_text(text: &[u8]) -> Result<Numeric, CodecError> {
    let syntax = || CodecError::syntax("numeric", text);
    let s = trim_pg(text);
    let lower = s.to_ascii_lowercase();
    match lower.as_slice() {
        b"nan" => return Ok(Numeric::special(NAN)),
        b"infinity" | b"+infinity" | b"inf" | b"+inf" => return Ok(Numeric::special(PINF)),
        b"-infinity" | b"-inf" => return Ok(Numeric::special(NINF)),
        _ => {}
    }
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut digits = Vec::with_capacity(rest.len());
    let mut int_digits: Option<usize> = None;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'0'..=b'9' => digits.push(rest[i] - b'0'),
            b'.' if int_digits.is_none() => int_digits = Some(digits.len()),
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return Err(syntax());
    }
    let int_digits = int_digits.unwrap_or(digits.len());
    let mut exponent: i64 = 0;
    if matches!(rest.get(i), Some(b'e' | b'E')) {
        i += 1;
        let (eneg, start) = match rest.get(i) {
            Some(b'-') => (true, i + 1),
            Some(b'+') => (false, i + 1),
            _ => (false, i),
        };
        let end = start
            + rest[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        if end == start {
            return Err(syntax());
        }
        for d in &rest[start..end] {
            exponent = (exponent * 10 + i64::from(d - b'0')).min(MAX_EXPONENT + 1);
        }
        if exponent > MAX_EXPONENT {
            return Err(syntax());
        }
        if eneg {
            exponent = -exponent;
        }
        i = end;
    }
    if !rest[i..].iter().all(|b| is_pg_space(*b)) {
        return Err(syntax());
    }
    let frac_digits = (digits.len() - int_digits) as i64;
    let dscale = (frac_digits - exponent).max(0);
    let point = int_digits as i64 + exponent;
    from_decimal_digits(neg, &digits, point, dscale)
}

/// Builds a numeric from decimal `digits` with the decimal point after `point` of them.
fn from_decimal_digits(
    neg: bool,
    digits: &[u8],
    point: i64,
    dscale: i64,
) -> Result<Numeric, CodecError> {
    let overflow =
        || CodecError::plain(NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format");
    if dscale > i64::from(DSCALE_MAX) {
        return Err(overflow());
    }
    let zeros = digits.iter().take_while(|d| **d == 0).count();
    let digits = &digits[zeros..];
    let point = if digits.is_empty() {
        0
    } else {
        point - zeros as i64
    };
    let lead = (4 - point.rem_euclid(4)) % 4;
    let aligned_point = point + lead;
    let weight = aligned_point / 4 - 1;
    let total = lead as usize + digits.len();
    let mut groups = Vec::with_capacity(total.div_ceil(4));
    let padded = std::iter::repeat_n(0u8, lead as usize)
        .chain(digits.iter().copied())
        .chain(std::iter::repeat_n(0u8, (4 - total % 4) % 4));
    let mut acc = 0u16;
    for (k, d) in padded.enumerate() {
        acc = acc * 10 + u16::from(d);
        if k % 4 == 3 {
            groups.push(acc);
            acc = 0;
        }
    }
    let n = Numeric {
        sign: if neg { NEG } else { POS },
        weight: i16::try_from(weight).map_err(|_| overflow())?,
        // (weight ≤ 32767 is PostgreSQL's NUMERIC_WEIGHT_MAX)
        dscale: dscale as u16,
        digits: groups,
    }
    .normalise();
    Ok(n)
}

/// Binary (send format) → canonical bytes.
pub(crate) fn binary_to_canonical(bin: &[u8]) -> Result<Vec<u8>, CodecError> {
    match Numeric::from_bytes(bin) {
        None => Err(CodecError::binary("numeric")),
        Some(Err(msg)) => Err(CodecError::plain(
            super::error::INVALID_BINARY_REPRESENTATION,
            msg,
        )),
        Some(Ok(n)) => Ok(n.normalise().to_bytes()),
    }
}

/// Canonical bytes → the same bytes after validation (send format).
pub(crate) fn canonical_to_binary(canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    decode_canonical(canonical)?;
    Ok(canonical.to_vec())
}

fn decode_canonical(canonical: &[u8]) -> Result<Numeric, CodecError> {
    match Numeric::from_bytes(canonical) {
        Some(Ok(n)) => Ok(n),
        _ => Err(CodecError::corrupt("numeric")),
    }
}

/// Canonical bytes → text as `numeric_out`.
pub(crate) fn canonical_to_text(canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    let n = decode_canonical(canonical)?;
    Ok(to_text(&n).into_bytes())
}

/// Renders a numeric as `numeric_out` does.
pub(crate) fn to_text(n: &Numeric) -> String {
    match n.sign {
        NAN => return "NaN".into(),
        PINF => return "Infinity".into(),
        NINF => return "-Infinity".into(),
        _ => {}
    }
    let digit = |g: i64| -> u16 {
        usize::try_from(g)
            .ok()
            .and_then(|g| n.digits.get(g).copied())
            .unwrap_or(0)
    };
    let mut out = String::with_capacity(n.digits.len() * 4 + usize::from(n.dscale) + 3);
    if n.sign == NEG {
        out.push('-');
    }
    let weight = i64::from(n.weight);
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for g in 1..=weight {
            out.push_str(&format!("{:04}", digit(g)));
        }
    }
    if n.dscale > 0 {
        out.push('.');
        let mut left = usize::from(n.dscale);
        let mut g = weight + 1;
        while left > 0 {
            let four = format!("{:04}", digit(g));
            let take = left.min(4);
            out.push_str(&four[..take]);
            left -= take;
            g += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        String::from_utf8(canonical_to_text(&text_to_canonical(s.as_bytes()).unwrap()).unwrap())
            .unwrap()
    }

    #[test]
    fn text_output_matches_postgres() {
        assert_eq!(round("-0.00"), "0.00");
        assert_eq!(round("1e2"), "100");
        assert_eq!(round("1.5e-3"), "0.0015");
        assert_eq!(round("inf"), "Infinity");
        assert_eq!(round(" -Infinity "), "-Infinity");
        assert_eq!(round("nan"), "NaN");
        assert_eq!(round("  +0012345.678900 "), "12345.678900");
        assert_eq!(round("1.2345e2"), "123.45");
        assert_eq!(round(".5"), "0.5");
        assert_eq!(round("5."), "5");
        assert_eq!(round("100000000.00000001"), "100000000.00000001");
        assert_eq!(
            round("-123456789012345678901234567890"),
            "-123456789012345678901234567890"
        );
    }

    #[test]
    fn canonical_layout_is_send_format() {
        // 12345.67 → ndigits 3, weight 1, pos, dscale 2, digits [1, 2345, 6700]
        let c = text_to_canonical(b"12345.67").unwrap();
        assert_eq!(c, [0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29, 0x1a, 0x2c]);
        assert_eq!(
            text_to_canonical(b"NaN").unwrap(),
            [0, 0, 0, 0, 0xc0, 0, 0, 0]
        );
    }

    #[test]
    fn binary_is_normalised_and_validated() {
        // 0012.3400 sent with zero digits around and dscale 2 with a hidden digit.
        let sent = [0, 4, 0, 1, 0, 0, 0, 2, 0, 0, 0, 12, 0x0d, 0x48, 0, 5];
        let want = text_to_canonical(b"12.34").unwrap();
        // weight 1 → digits [0, 12, 3400, 5] mean 0012.3400 0005 → truncated to 12.34
        let got = binary_to_canonical(&sent).unwrap();
        assert_eq!(canonical_to_text(&got).unwrap(), b"12.34");
        assert_eq!(got, want);
        assert!(binary_to_canonical(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_err());
        assert!(binary_to_canonical(&[0, 0, 0, 0, 0x12, 0, 0, 0]).is_err());
        assert!(binary_to_canonical(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn bad_input_is_rejected() {
        for bad in ["", "abc", "1e", "1.2.3", "--1", "1e9999999999", "e5", ". 5"] {
            let e = text_to_canonical(bad.as_bytes()).unwrap_err();
            assert_eq!(e.sqlstate(), "22P02", "{bad}");
        }
        let e = text_to_canonical(b"12x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input syntax for type numeric: \"12x\""
        );
    }
}
