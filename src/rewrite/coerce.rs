//! What PostgreSQL does to a constant before it stores it, applied to literals bound for
//! encrypted columns so the stored value is the one PostgreSQL would have stored: a cast with
//! a type modifier (`'abcdef'::varchar(3)` is `abc`, `'12.5'::numeric(5,0)` is `13`,
//! `'ab'::char(4)` is `ab`) and the assignment of a numeric constant to an integer column
//! (`5.7` stored in an `int4` is `6`). Parameters under a cast with a type modifier are refused
//! (the value is not known when the statement is analysed).

use pg_query::NodeEnum;
use pg_query::protobuf::{TypeName, a_const};

use super::ast::sval;
use super::plan::{Coerce, CoerceError};

/// The coercion a cast to `t` applies, if any.
pub(crate) fn of_type(t: &TypeName) -> Option<Coerce> {
    let name = t
        .names
        .iter()
        .filter_map(sval)
        .next_back()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mods: Option<Vec<i64>> = t.typmods.iter().map(typmod).collect();
    let Some(mods) = mods else {
        return Some(Coerce::Unsupported);
    };
    let n = |i: usize| mods.get(i).and_then(|&m| u32::try_from(m).ok());
    match (name.as_str(), mods.len()) {
        (_, 0) if matches!(name.as_str(), "int2" | "int4" | "int8") => Some(Coerce::Integer),
        // `bpchar` without a length: no limit, but still blank-padded (trailing spaces go).
        ("bpchar", 0) => Some(Coerce::BpChars(usize::MAX)),
        (_, 0) => None,
        ("varchar", 1) => n(0).map(|m| Coerce::Chars(m as usize)),
        ("bpchar", 1) => n(0).map(|m| Coerce::BpChars(m as usize)),
        ("numeric", 1 | 2) => Some(Coerce::Numeric {
            precision: n(0)?,
            scale: n(1).unwrap_or(0),
        }),
        _ => Some(Coerce::Unsupported),
    }
}

fn typmod(n: &pg_query::protobuf::Node) -> Option<i64> {
    match n.node.as_ref() {
        Some(NodeEnum::AConst(c)) => match c.val.as_ref() {
            Some(a_const::Val::Ival(i)) => Some(i64::from(i.ival)),
            _ => None,
        },
        _ => None,
    }
}

/// True when a constant cast to `ty` (normalised name) reaches a column of logical type `col`
/// as the value its text denotes in `col` — the casts pgcloak models. Anything else (a float
/// into an integer column rounds half to even, a timestamp into a date truncates, a number
/// cast to text is re-rendered, …) is refused by the caller.
pub(crate) fn cast_fits(ty: &str, coerce: Option<Coerce>, col: crate::codec::LogicalType) -> bool {
    use crate::codec::LogicalType as L;
    let ints = matches!(ty, "int2" | "int4" | "int8");
    match col {
        // `numeric(p, s)` is applied (and so rendered as PostgreSQL renders it).
        L::Text | L::Varchar => {
            matches!(ty, "text" | "varchar" | "bpchar")
                || matches!(coerce, Some(Coerce::Numeric { .. }))
        }
        L::Int2 | L::Int4 | L::Int8 => ints || ty == "numeric",
        L::Float4 | L::Float8 => ints || matches!(ty, "numeric" | "float4" | "float8"),
        L::Numeric => ints || ty == "numeric",
        L::Bool => ty == "bool",
        L::Date => ty == "date",
        L::Time => ty == "time",
        L::Timestamp => matches!(ty, "timestamp" | "date"),
        L::Timestamptz => matches!(ty, "timestamptz" | "date"),
        L::Uuid => ty == "uuid",
        L::Json => ty == "json",
        L::Jsonb => matches!(ty, "jsonb" | "json"),
        L::Bytea => ty == "bytea",
    }
}

/// True when a numeric constant's text is the way PostgreSQL prints it: `-?digits[.digits]`
/// without superfluous leading zeros.
pub(crate) fn plain_number(v: &str) -> bool {
    let v = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int) && (int == "0" || !int.starts_with('0')) && frac.is_none_or(digits)
}

/// True when a numeric literal's text is one PostgreSQL 15 reads as a number: digits, a point,
/// an exponent — no `0x`/`0o`/`0b` prefix, no `_` (PostgreSQL 16's additions).
pub(crate) fn pg15_number(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    !lower.contains('_')
        && !lower.starts_with("0x")
        && !lower.starts_with("0o")
        && !lower.starts_with("0b")
        && lower
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e'))
}

/// Applies `c` to the text of a constant.
pub fn apply(c: Coerce, value: &str) -> Result<String, CoerceError> {
    match c {
        Coerce::Chars(n) => Ok(value.chars().take(n).collect()),
        Coerce::BpChars(n) => {
            let s: String = value.chars().take(n).collect();
            Ok(s.trim_end_matches(' ').to_owned())
        }
        Coerce::Numeric { precision, scale } => {
            let r = round_decimal(value, scale).ok_or(CoerceError::Unsupported)?;
            let int_digits = r
                .trim_start_matches('-')
                .split('.')
                .next()
                .unwrap_or("")
                .trim_start_matches('0')
                .len();
            if int_digits as u64 > u64::from(precision.saturating_sub(scale)) {
                return Err(CoerceError::Overflow);
            }
            Ok(r)
        }
        Coerce::Integer => round_decimal(value, 0).ok_or(CoerceError::Unsupported),
        Coerce::Unsupported => Err(CoerceError::Unsupported),
    }
}

/// A decimal constant (`12.5`, `-0.005`, `1e3`, `.5`) rounded half away from zero to `scale`
/// decimals, as PostgreSQL's numeric rounds; None when it is not a finite decimal number.
pub(crate) fn round_decimal(text: &str, scale: u32) -> Option<String> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (ip.is_empty() && fp.is_empty()) || !all_digits(ip) || !all_digits(fp) || exp.abs() > 1000 {
        return None;
    }
    // digits × 10^(point) where point counts the integer digits.
    let digits: Vec<u8> = ip.bytes().chain(fp.bytes()).map(|b| b - b'0').collect();
    let point = ip.len() as i64 + exp;
    let keep = point + i64::from(scale);
    let mut kept: Vec<u8> = (0..keep.max(0))
        .map(|i| {
            usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    let next = usize::try_from(keep)
        .ok()
        .and_then(|i| digits.get(i))
        .copied()
        .unwrap_or(0);
    if next >= 5 {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, 1);
                break;
            }
            i -= 1;
            if kept[i] == 9 {
                kept[i] = 0;
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let scale = scale as usize;
    while kept.len() < scale + 1 {
        kept.insert(0, 0);
    }
    let split = kept.len() - scale;
    let int: String = kept[..split].iter().map(|d| char::from(b'0' + d)).collect();
    let int = match int.trim_start_matches('0') {
        "" => "0".to_owned(),
        s => s.to_owned(),
    };
    let frac: String = kept[split..].iter().map(|d| char::from(b'0' + d)).collect();
    let zero = int == "0" && frac.bytes().all(|b| b == b'0');
    let sign = if neg && !zero { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero_like_numeric() {
        for (v, s, want) in [
            ("12.5", 0, "13"),
            ("-12.5", 0, "-13"),
            ("5.7", 0, "6"),
            ("5.4", 0, "5"),
            ("0.005", 2, "0.01"),
            ("-0.004", 2, "0.00"),
            ("9.99", 1, "10.0"),
            ("1e3", 0, "1000"),
            ("12.5e-1", 0, "1"),
            (".5", 0, "1"),
            ("123", 2, "123.00"),
            ("99.5", 0, "100"),
        ] {
            assert_eq!(round_decimal(v, s).as_deref(), Some(want), "{v} scale {s}");
        }
        for bad in ["", ".", "abc", "1e", "NaN", "1.2.3", "--1"] {
            assert_eq!(round_decimal(bad, 0), None, "{bad}");
        }
    }

    #[test]
    fn applies_type_modifiers() {
        assert_eq!(apply(Coerce::Chars(3), "abcdef"), Ok("abc".into()));
        assert_eq!(apply(Coerce::Chars(3), "äöüß"), Ok("äöü".into()));
        assert_eq!(apply(Coerce::BpChars(4), "ab  cd"), Ok("ab".into()));
        let n = Coerce::Numeric {
            precision: 5,
            scale: 0,
        };
        assert_eq!(apply(n, "12.5"), Ok("13".into()));
        assert_eq!(apply(n, "123456"), Err(CoerceError::Overflow));
        let n = Coerce::Numeric {
            precision: 4,
            scale: 2,
        };
        assert_eq!(apply(n, "99.995"), Err(CoerceError::Overflow));
        assert_eq!(apply(n, "-1.005"), Ok("-1.01".into()));
        assert_eq!(apply(Coerce::Integer, "5.5"), Ok("6".into()));
        assert_eq!(
            apply(Coerce::Unsupported, "x"),
            Err(CoerceError::Unsupported)
        );
    }

    #[test]
    fn reads_the_modifier_of_a_cast() {
        let cast = |sql: &str| {
            let parsed = pg_query::parse(&format!("SELECT {sql}"), 0).unwrap();
            let stmt = parsed.protobuf.stmts[0].stmt.as_ref().unwrap();
            let Some(NodeEnum::SelectStmt(s)) = stmt.node.as_ref() else {
                panic!("a SELECT")
            };
            let Some(NodeEnum::ResTarget(rt)) = s.target_list[0].node.as_ref() else {
                panic!("a target")
            };
            let Some(NodeEnum::TypeCast(tc)) = rt.val.as_ref().unwrap().node.as_ref() else {
                panic!("a cast")
            };
            of_type(tc.type_name.as_ref().unwrap())
        };
        assert_eq!(cast("'a'::varchar(3)"), Some(Coerce::Chars(3)));
        assert_eq!(cast("'a'::character varying(20)"), Some(Coerce::Chars(20)));
        assert_eq!(cast("CAST('a' AS char(2))"), Some(Coerce::BpChars(2)));
        assert_eq!(
            cast("'1'::numeric(5,2)"),
            Some(Coerce::Numeric {
                precision: 5,
                scale: 2
            })
        );
        assert_eq!(cast("'1'::int"), Some(Coerce::Integer));
        assert_eq!(cast("'1'::text"), None);
        assert_eq!(cast("'1'::timestamp(0)"), Some(Coerce::Unsupported));
    }
}
