//! float4 and float8: text input as `float8in`/`float4in`, output as PostgreSQL 12+ (shortest
//! round-trip digits when `extra_float_digits > 0`, else `%.{N}g`). Canonical form: the IEEE
//! bits big-endian, every NaN folded to one quiet NaN (PostgreSQL shows and compares all NaNs
//! alike); `-0` is kept because PostgreSQL prints it.

use super::error::{CodecError, NUMERIC_VALUE_OUT_OF_RANGE};
use super::scalar::trim_pg;

/// float4 (`real`) or float8 (`double precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    F4,
    F8,
}

impl Width {
    fn pg_name(self) -> &'static str {
        match self {
            Width::F4 => "real",
            Width::F8 => "double precision",
        }
    }
}

/// Text → canonical bytes.
pub(crate) fn text_to_canonical(text: &[u8], w: Width) -> Result<Vec<u8>, CodecError> {
    let s = trim_pg(text);
    let syntax = || CodecError::syntax(w.pg_name(), text);
    let st = std::str::from_utf8(s).map_err(|_| syntax())?;
    if st.is_empty()
        || st
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))
    {
        return Err(syntax());
    }
    let lower = st.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    let special = matches!(body, "inf" | "infinity" | "nan");
    if !special && body.bytes().any(|b| b.is_ascii_alphabetic() && b != b'e') {
        return Err(syntax());
    }
    let range = || {
        let shown = String::from_utf8_lossy(s);
        CodecError::new(
            NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{shown}\" is out of range for type {}", w.pg_name()),
            format!("value is out of range for type {}", w.pg_name()),
        )
    };
    let nonzero_mantissa = || {
        body.split('e')
            .next()
            .is_some_and(|m| m.bytes().any(|b| matches!(b, b'1'..=b'9')))
    };
    match w {
        Width::F8 => {
            let v: f64 = st.parse().map_err(|_| syntax())?;
            if !special && (v.is_infinite() || (v == 0.0 && nonzero_mantissa())) {
                return Err(range());
            }
            Ok(f8_canonical(v))
        }
        Width::F4 => {
            let v: f32 = st.parse().map_err(|_| syntax())?;
            if !special && (v.is_infinite() || (v == 0.0 && nonzero_mantissa())) {
                return Err(range());
            }
            Ok(f4_canonical(v))
        }
    }
}

fn f8_canonical(v: f64) -> Vec<u8> {
    let v = if v.is_nan() { f64::NAN } else { v };
    v.to_bits().to_be_bytes().to_vec()
}

fn f4_canonical(v: f32) -> Vec<u8> {
    let v = if v.is_nan() { f32::NAN } else { v };
    v.to_bits().to_be_bytes().to_vec()
}

/// Binary (IEEE big-endian) → canonical bytes.
pub(crate) fn binary_to_canonical(bin: &[u8], w: Width) -> Result<Vec<u8>, CodecError> {
    match w {
        Width::F8 => {
            let b: [u8; 8] = bin.try_into().map_err(|_| CodecError::binary("float8"))?;
            Ok(f8_canonical(f64::from_be_bytes(b)))
        }
        Width::F4 => {
            let b: [u8; 4] = bin.try_into().map_err(|_| CodecError::binary("float4"))?;
            Ok(f4_canonical(f32::from_be_bytes(b)))
        }
    }
}

/// Canonical bytes → text, as PostgreSQL prints with the given `extra_float_digits`.
pub(crate) fn canonical_to_text(
    canonical: &[u8],
    w: Width,
    extra_float_digits: i32,
) -> Result<Vec<u8>, CodecError> {
    let (v, sci, max_fixed, dig) = match w {
        Width::F8 => {
            let b: [u8; 8] = canonical
                .try_into()
                .map_err(|_| CodecError::corrupt("float8"))?;
            let v = f64::from_be_bytes(b);
            (v, format!("{v:e}"), 15, 15)
        }
        Width::F4 => {
            let b: [u8; 4] = canonical
                .try_into()
                .map_err(|_| CodecError::corrupt("float4"))?;
            let v = f32::from_be_bytes(b);
            (f64::from(v), format!("{v:e}"), 6, 6)
        }
    };
    if v.is_nan() {
        return Ok(b"NaN".to_vec());
    }
    if v.is_infinite() {
        return Ok(if v > 0.0 {
            b"Infinity".to_vec()
        } else {
            b"-Infinity".to_vec()
        });
    }
    if extra_float_digits > 0 {
        return Ok(shortest(v, &sci, max_fixed, w == Width::F4).into_bytes());
    }
    let precision = (dig + extra_float_digits).max(1) as usize;
    Ok(printf_g(v, precision).into_bytes())
}

/// Splits Rust's `{:e}` output (`-1.25e-7`) into (negative, digits, decimal exponent).
fn split_sci(sci: &str) -> (bool, String, i32) {
    let (neg, rest) = match sci.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, sci),
    };
    let (mant, exp) = rest.split_once('e').unwrap_or((rest, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (neg, digits, exp.parse().unwrap_or(0))
}

/// PostgreSQL's Ryu output layout: fixed notation when `-4 <= exp < max_fixed`, else
/// `d.ddde±XX`.
fn shortest(v: f64, sci: &str, max_fixed: i32, f4: bool) -> String {
    let (neg, mut digits, mut exp) = split_sci(sci);
    if on_boundary(v, &digits, exp, f4) {
        (digits, exp) = strictly_inside(v, digits.len(), f4);
    } else if let Some((d, e)) = tie_to_even(v, &digits, f4) {
        (digits, exp) = (d, e);
    }
    layout(neg, &digits, exp, (-4..max_fixed).contains(&exp))
}

/// Parses `d.ddd × 10^exp`; with `nudge`, plus (`true`) or minus (`false`) an amount far
/// below any gap between a ≤17-digit decimal and a float's rounding boundary.
fn parses_to(digits: &str, exp: i32, nudge: Option<bool>, f4: bool) -> f64 {
    const TAIL: usize = 43;
    let body = match nudge {
        None => digits.to_string(),
        Some(true) => format!("{digits}{}1", "0".repeat(TAIL)),
        Some(false) => match decrement(digits) {
            Some(low) => format!("{low}{}", "9".repeat(TAIL + 1)),
            None => return f64::NAN,
        },
    };
    let s = format!("{}.{}e{exp}", &body[..1], &body[1..]);
    if f4 {
        s.parse::<f32>().map(f64::from).unwrap_or(f64::NAN)
    } else {
        s.parse::<f64>().unwrap_or(f64::NAN)
    }
}

fn decrement(digits: &str) -> Option<String> {
    let mut b = digits.as_bytes().to_vec();
    for i in (0..b.len()).rev() {
        if b[i] > b'0' {
            b[i] -= 1;
            return String::from_utf8(b).ok();
        }
        b[i] = b'9';
    }
    None
}

/// Whether the shortest candidate Rust chose lies exactly on a rounding boundary of `v`.
/// Rust (like strict Ryu) accepts boundaries for even mantissas; PostgreSQL's Ryu never does.
fn on_boundary(v: f64, digits: &str, exp: i32, f4: bool) -> bool {
    let even = if f4 {
        (v as f32).to_bits() & 1 == 0
    } else {
        v.to_bits() & 1 == 0
    };
    if !even || v == 0.0 || !dyadic_near_boundary(v, digits, exp, f4) {
        return false;
    }
    let a = v.abs();
    parses_to(digits, exp, Some(true), f4) != a || parses_to(digits, exp, Some(false), f4) != a
}

/// Cheap necessary condition for a decimal to equal a rounding boundary of `v`: a boundary is
/// `v ± 2^(E-1)` (or `v - 2^(E-2)` just above a power of two), where `2^E` is `v`'s last
/// mantissa bit, so the decimal must be dyadic with 2-adic valuation `E-1` or `E-2`.
fn dyadic_near_boundary(v: f64, digits: &str, exp: i32, f4: bool) -> bool {
    let e_low = if f4 {
        let b = ((v as f32).to_bits() >> 23 & 0xff) as i32;
        if b == 0 { -149 } else { b - 150 }
    } else {
        let b = (v.to_bits() >> 52 & 0x7ff) as i32;
        if b == 0 { -1074 } else { b - 1075 }
    };
    let Ok(n) = digits.parse::<u64>() else {
        return true;
    };
    let q = exp - (digits.len() as i32 - 1);
    let v2 = if q >= 0 {
        n.trailing_zeros() as i32 + q
    } else {
        let Some(pow5) = 5u64.checked_pow(q.unsigned_abs()) else {
            return false;
        };
        if n % pow5 != 0 {
            return false;
        }
        (n / pow5).trailing_zeros() as i32 + q
    };
    v2 == e_low - 1 || v2 == e_low - 2
}

/// The shortest correctly rounded decimal of `v` that lies strictly inside its rounding
/// interval, searching from `from` digits.
fn strictly_inside(v: f64, from: usize, f4: bool) -> (String, i32) {
    let a = v.abs();
    let max = if f4 { 9 } else { 17 };
    for n in from..=max {
        let (_, d, e) = split_sci(&format!("{a:.*e}", n - 1));
        let d = d.trim_end_matches('0');
        let d = if d.is_empty() { "0" } else { d };
        if parses_to(d, e, None, f4) == a && !on_boundary(v, d, e, f4) {
            return (d.to_string(), e);
        }
    }
    let (_, d, e) = split_sci(&format!("{a:.*e}", max - 1));
    (d, e)
}

/// Ryu breaks an exact tie between two shortest candidates towards the even digit; Rust's
/// shortest formatting rounds such ties up. Returns the even candidate when `digits` (odd,
/// rounded up) sits exactly as far from `v` as the candidate just below it.
fn tie_to_even(v: f64, digits: &str, f4: bool) -> Option<(String, i32)> {
    let n = digits.len();
    if !digits.ends_with(['1', '3', '5', '7', '9']) {
        return None;
    }
    let a = v.abs();
    let probe = format!("{a:.n$e}");
    let (_, d1, e1) = split_sci(&probe);
    if !d1.ends_with('5') {
        return None;
    }
    let exact = format!("{a:.800e}");
    let (_, dx, _) = split_sci(&exact);
    if dx[n + 1..].bytes().any(|b| b != b'0') {
        return None;
    }
    let lower = &d1[..n];
    if lower.bytes().last().is_none_or(|b| (b - b'0') % 2 == 1) {
        return None;
    }
    let candidate = format!("{lower}e{}", e1 - (n as i32 - 1));
    let back_ok = if f4 {
        candidate.parse::<f32>().ok().map(f64::from) == Some(a)
    } else {
        candidate.parse::<f64>().ok() == Some(a)
    };
    back_ok.then(|| (lower.to_string(), e1))
}

/// Lays out significant `digits` with decimal exponent `exp` (value = d.ddd × 10^exp).
fn layout(neg: bool, digits: &str, exp: i32, fixed: bool) -> String {
    let mut out = String::with_capacity(digits.len() + 8);
    if neg {
        out.push('-');
    }
    if fixed {
        if exp < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

/// C's `%.{p}g` (no `#` flag): `p` significant digits, trailing zeros removed.
fn printf_g(v: f64, p: usize) -> String {
    let sci = format!("{:.*e}", p - 1, v);
    let (neg, digits, exp) = split_sci(&sci);
    let trimmed = digits.trim_end_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    layout(neg, trimmed, exp, exp >= -4 && exp < p as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out8(s: &str) -> String {
        let c = text_to_canonical(s.as_bytes(), Width::F8).unwrap();
        String::from_utf8(canonical_to_text(&c, Width::F8, 1).unwrap()).unwrap()
    }

    fn out4(s: &str) -> String {
        let c = text_to_canonical(s.as_bytes(), Width::F4).unwrap();
        String::from_utf8(canonical_to_text(&c, Width::F4, 1).unwrap()).unwrap()
    }

    #[test]
    fn shortest_output_matches_postgres() {
        assert_eq!(out8("1e15"), "1e+15");
        assert_eq!(out8("1e14"), "100000000000000");
        assert_eq!(out8("1e-5"), "1e-05");
        assert_eq!(out8("0.0001"), "0.0001");
        assert_eq!(out8("1.5e-7"), "1.5e-07");
        assert_eq!(out8("-0"), "-0");
        assert_eq!(out8("0.1"), "0.1");
        assert_eq!(out8(" -inf "), "-Infinity");
        assert_eq!(out8("nan"), "NaN");
        assert_eq!(out8("1e300"), "1e+300");
        assert_eq!(out4("1e6"), "1e+06");
        assert_eq!(out4("1e5"), "100000");
        assert_eq!(out4("123456.7"), "123456.7");
        assert_eq!(out4("1234567"), "1.234567e+06");
        assert_eq!(out4("-2633454.1610"), "-2.6334542e+06");
        // PostgreSQL's Ryu never accepts a decimal lying exactly on a rounding boundary.
        assert_eq!(out8("370.88979e17"), "3.7088979000000004e+19");
    }

    #[test]
    fn g_format_for_low_extra_digits() {
        let c = text_to_canonical(b"0.1", Width::F8).unwrap();
        assert_eq!(canonical_to_text(&c, Width::F8, 0).unwrap(), b"0.1");
        let c = text_to_canonical(b"123456789012345678", Width::F8).unwrap();
        assert_eq!(
            canonical_to_text(&c, Width::F8, 0).unwrap(),
            b"1.23456789012346e+17"
        );
        let c = text_to_canonical(b"1e-5", Width::F4).unwrap();
        assert_eq!(canonical_to_text(&c, Width::F4, 0).unwrap(), b"1e-05");
    }

    #[test]
    fn errors_match_postgres() {
        let e = text_to_canonical(b"abc", Width::F8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input syntax for type double precision: \"abc\""
        );
        let e = text_to_canonical(b"1e400", Width::F8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"1e400\" is out of range for type double precision"
        );
        assert_eq!(e.sqlstate(), "22003");
        assert!(text_to_canonical(b"1e-400", Width::F8).is_err());
        assert!(text_to_canonical(b"1e39", Width::F4).is_err());
        assert!(text_to_canonical(b"0e-400", Width::F8).is_ok());
        assert!(text_to_canonical(b"", Width::F8).is_err());
    }

    #[test]
    fn nan_payloads_fold() {
        let odd = f64::from_bits(0x7ff8_0000_0000_1234).to_be_bytes();
        assert_eq!(
            binary_to_canonical(&odd, Width::F8).unwrap(),
            f64::NAN.to_be_bytes()
        );
    }
}
