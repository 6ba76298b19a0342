//! date, time, timestamp, timestamptz. Canonical form = PostgreSQL's binary form: date as
//! big-endian i32 days since 2000-01-01, time as i64 µs since midnight, timestamp as i64 µs
//! since 2000-01-01 00:00 (wall clock), timestamptz as i64 µs since 2000-01-01 00:00 UTC — so
//! the same instant written with any offset or zone encrypts the same. ±infinity are the
//! i32/i64 extremes. Text output is DateStyle ISO in the session TimeZone.

use super::calendar::{civil_from_days, days_from_civil};
use super::context::TextContext;
use super::dtparse::{DtError, ParsedZone, Special, parse};
use super::error::{CodecError, DATETIME_FIELD_OVERFLOW};

const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const UNIX_TO_PG_DAYS: i64 = 10_957;
/// First valid date (4714-11-24 BC, Julian day 0), in days since 2000-01-01.
const DATE_MIN: i64 = -2_451_545;
/// One past the last valid date (5874898-01-01).
const DATE_END: i64 = 2_147_483_494 - 2_451_545;
/// First valid timestamp (4714-11-24 00:00 BC).
const TS_MIN: i64 = -211_813_488_000_000_000;
/// One past the last valid timestamp (294277-01-01 00:00).
const TS_END: i64 = 9_223_371_331_200_000_000;

/// Which of the four date/time types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Date,
    Time,
    Timestamp,
    Timestamptz,
}

impl Kind {
    fn pg_name(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::Time => "time without time zone",
            Kind::Timestamp => "timestamp without time zone",
            Kind::Timestamptz => "timestamp with time zone",
        }
    }

    fn width(self) -> usize {
        if self == Kind::Date { 4 } else { 8 }
    }
}

fn range_error(kind: Kind, text: &[u8]) -> CodecError {
    let what = if kind == Kind::Date {
        "date"
    } else {
        "timestamp"
    };
    CodecError::quoted(
        DATETIME_FIELD_OVERFLOW,
        format!("{what} out of range"),
        text,
    )
}

fn parse_error(kind: Kind, text: &[u8], e: DtError) -> CodecError {
    match e {
        DtError::Syntax => CodecError::datetime_syntax(kind.pg_name(), text),
        DtError::FieldRange => CodecError::quoted(
            DATETIME_FIELD_OVERFLOW,
            "date/time field value out of range".into(),
            text,
        ),
    }
}

/// Text → canonical bytes.
pub(crate) fn text_to_canonical(
    kind: Kind,
    text: &[u8],
    ctx: &TextContext,
) -> Result<Vec<u8>, CodecError> {
    let p = parse(text, ctx.date_order()).map_err(|e| parse_error(kind, text, e))?;
    let syntax = || CodecError::datetime_syntax(kind.pg_name(), text);
    if kind == Kind::Time {
        if p.special.is_some() {
            return Err(syntax());
        }
        let t = p.time.ok_or_else(syntax)?;
        if t > USECS_PER_DAY {
            return Err(parse_error(kind, text, DtError::FieldRange));
        }
        return Ok(t.to_be_bytes().to_vec());
    }
    let (inf, epoch_days) = match p.special {
        Some(Special::PosInfinity) => (Some(true), 0),
        Some(Special::NegInfinity) => (Some(false), 0),
        Some(Special::Epoch) => (None, -UNIX_TO_PG_DAYS),
        None => {
            let (y, m, d) = p.date.ok_or_else(syntax)?;
            (None, days_from_civil(y, m, d) - UNIX_TO_PG_DAYS)
        }
    };
    if kind == Kind::Date {
        let days = match inf {
            Some(true) => i32::MAX,
            Some(false) => i32::MIN,
            None if (DATE_MIN..DATE_END).contains(&epoch_days) => epoch_days as i32,
            None => return Err(range_error(kind, text)),
        };
        return Ok(days.to_be_bytes().to_vec());
    }
    let ts = match inf {
        Some(true) => i64::MAX,
        Some(false) => i64::MIN,
        None => {
            let local = i128::from(epoch_days) * i128::from(USECS_PER_DAY)
                + i128::from(p.time.unwrap_or(0));
            let utc = if kind == Kind::Timestamptz && p.special.is_none() {
                local - i128::from(offset_for(p.zone, local, ctx)) * 1_000_000
            } else {
                local
            };
            if utc < i128::from(TS_MIN) || utc >= i128::from(TS_END) {
                return Err(range_error(kind, text));
            }
            utc as i64
        }
    };
    Ok(ts.to_be_bytes().to_vec())
}

/// Seconds east of UTC for local µs since 2000-01-01 under the input's zone or the session's.
fn offset_for(zone: Option<ParsedZone>, local_us: i128, ctx: &TextContext) -> i32 {
    let unix_secs = (local_us.div_euclid(1_000_000) + i128::from(UNIX_TO_PG_DAYS) * 86_400)
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    match zone {
        Some(ParsedZone::Offset(o)) => o,
        Some(ParsedZone::Named(z)) => z.offset_for_local(unix_secs),
        None => ctx.zone().offset_for_local(unix_secs),
    }
}

/// Binary → canonical bytes (validated as the type's `recv` function does).
pub(crate) fn binary_to_canonical(kind: Kind, bin: &[u8]) -> Result<Vec<u8>, CodecError> {
    let v = read(kind, bin).ok_or_else(|| CodecError::binary(kind.pg_name()))?;
    if !valid(kind, v) {
        let msg = match kind {
            Kind::Date => "date out of range",
            Kind::Time => "time out of range",
            _ => "timestamp out of range",
        };
        return Err(CodecError::plain(DATETIME_FIELD_OVERFLOW, msg));
    }
    Ok(bin.to_vec())
}

fn read(kind: Kind, bytes: &[u8]) -> Option<i64> {
    if bytes.len() != kind.width() {
        return None;
    }
    super::scalar::int_from_be(bytes, kind.width())
}

fn valid(kind: Kind, v: i64) -> bool {
    match kind {
        Kind::Date => {
            v == i64::from(i32::MAX)
                || v == i64::from(i32::MIN)
                || (DATE_MIN..DATE_END).contains(&v)
        }
        Kind::Time => (0..=USECS_PER_DAY).contains(&v),
        _ => v == i64::MAX || v == i64::MIN || (TS_MIN..TS_END).contains(&v),
    }
}

/// Canonical bytes → the same bytes after validation.
pub(crate) fn canonical_to_binary(kind: Kind, canonical: &[u8]) -> Result<Vec<u8>, CodecError> {
    match read(kind, canonical) {
        Some(v) if valid(kind, v) => Ok(canonical.to_vec()),
        _ => Err(CodecError::corrupt(kind.pg_name())),
    }
}

/// Canonical bytes → ISO text.
pub(crate) fn canonical_to_text(
    kind: Kind,
    canonical: &[u8],
    ctx: &TextContext,
) -> Result<Vec<u8>, CodecError> {
    let v = match read(kind, canonical) {
        Some(v) if valid(kind, v) => v,
        _ => return Err(CodecError::corrupt(kind.pg_name())),
    };
    let mut out = String::with_capacity(40);
    match kind {
        Kind::Date if v == i64::from(i32::MAX) => out.push_str("infinity"),
        Kind::Date if v == i64::from(i32::MIN) => out.push_str("-infinity"),
        Kind::Date => {
            let bc = push_date(&mut out, v + UNIX_TO_PG_DAYS);
            push_bc(&mut out, bc);
        }
        Kind::Time => push_time(&mut out, v),
        _ if v == i64::MAX => out.push_str("infinity"),
        _ if v == i64::MIN => out.push_str("-infinity"),
        Kind::Timestamp => {
            let bc = push_date(&mut out, v.div_euclid(USECS_PER_DAY) + UNIX_TO_PG_DAYS);
            out.push(' ');
            push_time(&mut out, v.rem_euclid(USECS_PER_DAY));
            push_bc(&mut out, bc);
        }
        Kind::Timestamptz => {
            let unix_secs = v.div_euclid(1_000_000) + UNIX_TO_PG_DAYS * 86_400;
            let off = ctx.zone().offset_at_utc(unix_secs);
            let local = v + i64::from(off) * 1_000_000;
            let bc = push_date(&mut out, local.div_euclid(USECS_PER_DAY) + UNIX_TO_PG_DAYS);
            out.push(' ');
            push_time(&mut out, local.rem_euclid(USECS_PER_DAY));
            push_offset(&mut out, off);
            push_bc(&mut out, bc);
        }
    }
    Ok(out.into_bytes())
}

/// Writes `YYYY-MM-DD` (year of era); returns whether the date is BC.
fn push_date(out: &mut String, unix_days: i64) -> bool {
    use std::fmt::Write;
    let (y, m, d) = civil_from_days(unix_days);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    let _ = write!(out, "{year:04}-{m:02}-{d:02}");
    bc
}

fn push_bc(out: &mut String, bc: bool) {
    if bc {
        out.push_str(" BC");
    }
}

/// Writes `HH:MM:SS[.ffffff]` with trailing zeros of the fraction removed.
fn push_time(out: &mut String, usec: i64) {
    use std::fmt::Write;
    let secs = usec / 1_000_000;
    let frac = usec % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac > 0 {
        let f = format!("{frac:06}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// Writes `+HH`, `+HH:MM` or `+HH:MM:SS`.
fn push_offset(out: &mut String, east: i32) {
    use std::fmt::Write;
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.unsigned_abs();
    let _ = write!(out, "{sign}{:02}", a / 3600);
    if !a.is_multiple_of(3600) {
        let _ = write!(out, ":{:02}", a / 60 % 60);
        if !a.is_multiple_of(60) {
            let _ = write!(out, ":{:02}", a % 60);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(kind: Kind, s: &str, ctx: &TextContext) -> String {
        let c = text_to_canonical(kind, s.as_bytes(), ctx).unwrap();
        String::from_utf8(canonical_to_text(kind, &c, ctx).unwrap()).unwrap()
    }

    #[test]
    fn calendar_bounds_match_postgres() {
        assert_eq!(days_from_civil(2000, 1, 1), UNIX_TO_PG_DAYS);
        assert_eq!(days_from_civil(-4713, 11, 24) - UNIX_TO_PG_DAYS, DATE_MIN);
        assert_eq!(days_from_civil(5_874_898, 1, 1) - UNIX_TO_PG_DAYS, DATE_END);
        assert_eq!(
            civil_from_days(days_from_civil(-4713, 11, 24)),
            (-4713, 11, 24)
        );
    }

    #[test]
    fn iso_output() {
        let utc = TextContext::default();
        assert_eq!(round(Kind::Date, "4714-11-24 BC", &utc), "4714-11-24 BC");
        assert_eq!(round(Kind::Date, "5874897-12-31", &utc), "5874897-12-31");
        assert_eq!(round(Kind::Date, "-infinity", &utc), "-infinity");
        assert_eq!(round(Kind::Time, "24:00", &utc), "24:00:00");
        assert_eq!(
            round(Kind::Time, "01:02:03.1234567", &utc),
            "01:02:03.123457"
        );
        assert_eq!(
            round(Kind::Timestamp, "0001-01-01 BC", &utc),
            "0001-01-01 00:00:00 BC"
        );
        assert_eq!(
            round(Kind::Timestamp, "2021-06-01 12:00+02", &utc),
            "2021-06-01 12:00:00"
        );
        let mut ny = TextContext::default();
        ny.set_parameter("TimeZone", "America/New_York");
        assert_eq!(
            round(Kind::Timestamptz, "2021-11-07 01:30", &ny),
            "2021-11-07 01:30:00-05"
        );
        assert_eq!(
            round(Kind::Timestamptz, "2021-03-14 02:30", &ny),
            "2021-03-14 03:30:00-04"
        );
        assert_eq!(
            round(Kind::Timestamptz, "1800-01-01", &ny),
            "1800-01-01 00:00:00-04:56:02"
        );
        assert_eq!(
            round(Kind::Timestamptz, "2021-06-01T12:00Z", &ny),
            "2021-06-01 08:00:00-04"
        );
        assert_eq!(
            round(Kind::Timestamptz, "epoch", &ny),
            "1969-12-31 19:00:00-05"
        );
        assert_eq!(
            round(Kind::Timestamptz, "2021-06-01 12:00 Europe/Paris", &ny),
            "2021-06-01 06:00:00-04"
        );
        assert_eq!(
            round(Kind::Timestamptz, "2000-01-01 00:00:00+05:30:30", &utc),
            "1999-12-31 18:29:30+00"
        );
    }

    #[test]
    fn same_instant_same_canonical() {
        let utc = TextContext::default();
        let a = text_to_canonical(Kind::Timestamptz, b"2021-06-01 12:00+02", &utc).unwrap();
        let b = text_to_canonical(Kind::Timestamptz, b"2021-06-01T10:00:00Z", &utc).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_match_postgres() {
        let utc = TextContext::default();
        let e = text_to_canonical(Kind::Date, b"4714-11-23 BC", &utc).unwrap_err();
        assert_eq!(e.to_string(), "date out of range: \"4714-11-23 BC\"");
        let e = text_to_canonical(Kind::Date, b"2021-13-01", &utc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "date/time field value out of range: \"2021-13-01\""
        );
        assert_eq!(e.sqlstate(), "22008");
        let e = text_to_canonical(Kind::Date, b"abc", &utc).unwrap_err();
        assert_eq!(e.to_string(), "invalid input syntax for type date: \"abc\"");
        assert_eq!(e.sqlstate(), "22007");
        assert!(text_to_canonical(Kind::Timestamp, b"294277-01-01", &utc).is_err());
        assert!(binary_to_canonical(Kind::Time, &(USECS_PER_DAY + 1).to_be_bytes()).is_err());
        assert!(binary_to_canonical(Kind::Date, &[0, 0, 0]).is_err());
    }
}
