//! Text parsing for date, time, timestamp and timestamptz: the common forms PostgreSQL's
//! `ParseDateTime`/`DecodeDateTime` accept — ISO `YYYY-MM-DD`, `YYYYMMDD`, DateStyle-ordered
//! `a/b/c` and `a-b-c`, `T` or space before `HH:MM[:SS[.ffffff]]`, a zone (`Z`, `±HH[:MM[:SS]]`,
//! `±HHMM`, an IANA name), `BC`/`AD`, and `infinity`, `-infinity`, `epoch`.

use super::calendar::days_in_month;
use super::context::{DateOrder, Zone, parse_zone};

/// Why a date/time text did not parse (the caller words the message for its type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DtError {
    /// `invalid input syntax for type …` (22007).
    Syntax,
    /// `date/time field value out of range` (22008).
    FieldRange,
}

/// A special value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    PosInfinity,
    NegInfinity,
    Epoch,
}

/// The fields found in a date/time text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub special: Option<Special>,
    /// (astronomical year, month, day)
    pub date: Option<(i64, u32, u32)>,
    /// microseconds since midnight (may be 24:00:00 or roll over on second 60)
    pub time: Option<i64>,
    pub zone: Option<ParsedZone>,
}

/// An explicit zone in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParsedZone {
    /// Seconds east of UTC.
    Offset(i32),
    Named(Zone),
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn digits(&mut self) -> &[u8] {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(super::scalar::is_pg_space) {
            self.i += 1;
        }
        self.i > start
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }
}

fn num(d: &[u8]) -> Result<i64, DtError> {
    if d.is_empty() || d.len() > 9 {
        return Err(DtError::Syntax);
    }
    Ok(d.iter().fold(0i64, |a, b| a * 10 + i64::from(b - b'0')))
}

/// Parses `text` (already known to be UTF-8 or not; non-ASCII is a syntax error).
pub(crate) fn parse(text: &[u8], order: DateOrder) -> Result<Parsed, DtError> {
    let trimmed = super::scalar::trim_pg(text);
    let lower = trimmed.to_ascii_lowercase();
    let special = match lower.as_slice() {
        b"infinity" | b"+infinity" => Some(Special::PosInfinity),
        b"-infinity" => Some(Special::NegInfinity),
        b"epoch" => Some(Special::Epoch),
        _ => None,
    };
    if special.is_some() {
        return Ok(Parsed {
            special,
            ..Parsed::default()
        });
    }
    let mut c = Cursor { s: trimmed, i: 0 };
    let mut p = Parsed::default();
    let first_is_date = {
        let save = c.i;
        let d = c.digits().len();
        let next = c.peek();
        c.i = save;
        d > 0 && (matches!(next, Some(b'-' | b'/' | b'.')) || (d == 8 && next != Some(b':')))
    };
    let mut bc = false;
    if first_is_date {
        p.date = Some(parse_date(&mut c, order)?);
        if !c.eat(b'T') && !c.eat(b't') {
            c.skip_spaces();
            bc = parse_era(&mut c);
            c.skip_spaces();
        }
    }
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        p.time = Some(parse_time(&mut c)?);
    }
    c.skip_spaces();
    p.zone = parse_zone_suffix(&mut c)?;
    c.skip_spaces();
    bc |= parse_era(&mut c);
    if !c.rest().is_empty() || (p.date.is_none() && p.time.is_none()) {
        return Err(DtError::Syntax);
    }
    if let Some((y, m, d)) = p.date {
        let y = if bc { 1 - y } else { y };
        if d > days_in_month(y, m) {
            return Err(DtError::FieldRange);
        }
        p.date = Some((y, m, d));
    } else if bc {
        return Err(DtError::Syntax);
    }
    Ok(p)
}

/// Eats a `BC` or `AD` word; returns whether it was `BC`.
fn parse_era(c: &mut Cursor<'_>) -> bool {
    let rest = c.rest();
    let word_end = rest.get(2).is_none_or(|b| super::scalar::is_pg_space(*b));
    if rest.len() < 2 || !word_end {
        return false;
    }
    let w = rest[..2].to_ascii_lowercase();
    if w == b"bc" || w == b"ad" {
        c.i += 2;
    }
    w == b"bc"
}

fn parse_date(c: &mut Cursor<'_>, order: DateOrder) -> Result<(i64, u32, u32), DtError> {
    let a = c.digits().to_vec();
    let (fields, year_first) = if a.len() == 8 && !matches!(c.peek(), Some(b'-' | b'/' | b'.')) {
        ([&a[..4], &a[4..6], &a[6..]].map(<[u8]>::to_vec), true)
    } else {
        let sep = c.peek().ok_or(DtError::Syntax)?;
        c.i += 1;
        let b = c.digits().to_vec();
        if !c.eat(sep) {
            return Err(DtError::Syntax);
        }
        let d = c.digits().to_vec();
        ([a, b, d], false)
    };
    let [f0, f1, f2] = &fields;
    let (y, m, d) = if year_first || f0.len() >= 3 || order == DateOrder::Ymd {
        (f0, f1, f2)
    } else if order == DateOrder::Dmy {
        (f2, f1, f0)
    } else {
        (f2, f0, f1)
    };
    let mut year = num(y)?;
    let (month, day) = (num(m)?, num(d)?);
    if y.len() <= 2 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    if year == 0 {
        return Err(DtError::FieldRange);
    }
    // The day is checked against the month once the era is known (a BC year's leap years are
    // those of its astronomical year, 1 - year).
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(DtError::FieldRange);
    }
    Ok((year, month as u32, day as u32))
}

fn parse_time(c: &mut Cursor<'_>) -> Result<i64, DtError> {
    let h = num(c.digits())?;
    if !c.eat(b':') {
        return Err(DtError::Syntax);
    }
    let m = num(c.digits())?;
    let mut s = 0;
    let mut usec = 0i64;
    if c.eat(b':') {
        s = num(c.digits())?;
        if c.peek() == Some(b'.') {
            let start = c.i;
            c.i += 1;
            c.digits();
            let frac: f64 = std::str::from_utf8(&c.s[start..c.i])
                .ok()
                .and_then(|f| f.parse().ok())
                .ok_or(DtError::Syntax)?;
            usec = (frac * 1_000_000.0).round_ties_even() as i64;
        }
    }
    let bad = m > 59 || s > 60 || h > 24 || (h == 24 && (m > 0 || s > 0 || usec > 0));
    if bad {
        return Err(DtError::FieldRange);
    }
    Ok(((h * 60 + m) * 60 + s) * 1_000_000 + usec)
}

fn parse_zone_suffix(c: &mut Cursor<'_>) -> Result<Option<ParsedZone>, DtError> {
    match c.peek() {
        Some(b'+' | b'-') => {
            let neg = c.peek() == Some(b'-');
            c.i += 1;
            let h = c.digits().to_vec();
            let (mut hours, mut mins, mut secs) = (num(&h)?, 0, 0);
            if h.len() == 4 {
                (hours, mins) = (hours / 100, hours % 100);
            } else if h.len() > 2 {
                return Err(DtError::Syntax);
            } else if c.eat(b':') {
                mins = num(c.digits())?;
                if c.eat(b':') {
                    secs = num(c.digits())?;
                }
            }
            if hours > 15 || mins > 59 || secs > 59 {
                return Err(DtError::FieldRange);
            }
            let east = (hours * 3600 + mins * 60 + secs) as i32;
            Ok(Some(ParsedZone::Offset(if neg { -east } else { east })))
        }
        Some(b) if b.is_ascii_alphabetic() => {
            let start = c.i;
            while c
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
            {
                c.i += 1;
            }
            let word = std::str::from_utf8(&c.s[start..c.i]).map_err(|_| DtError::Syntax)?;
            let lower = word.to_ascii_lowercase();
            if lower == "bc" || lower == "ad" {
                c.i = start;
                return Ok(None);
            }
            if matches!(lower.as_str(), "z" | "utc" | "gmt" | "zulu") {
                return Ok(Some(ParsedZone::Offset(0)));
            }
            match parse_zone(word) {
                Some(Zone::Named(tz)) => Ok(Some(ParsedZone::Named(Zone::Named(tz)))),
                _ => Err(DtError::Syntax),
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Parsed, DtError> {
        parse(s.as_bytes(), DateOrder::Mdy)
    }

    #[test]
    fn iso_forms() {
        let got = p("2021-06-01T12:34:56.5+02:30").unwrap();
        assert_eq!(got.date, Some((2021, 6, 1)));
        assert_eq!(
            got.time,
            Some((12 * 3600 + 34 * 60 + 56) * 1_000_000 + 500_000)
        );
        assert_eq!(got.zone, Some(ParsedZone::Offset(9000)));
        assert_eq!(p("20210601").unwrap().date, Some((2021, 6, 1)));
        assert_eq!(p(" 2021-06-01 ").unwrap().time, None);
        assert_eq!(p("0001-01-01 BC").unwrap().date, Some((0, 1, 1)));
        // Leap years BC are those of the astronomical year (4333 BC = -4332, 1 BC = 0).
        assert_eq!(p("4333-02-29 BC").unwrap().date, Some((-4332, 2, 29)));
        assert_eq!(p("0001-02-29 BC").unwrap().date, Some((0, 2, 29)));
        assert_eq!(p("0004-02-29 BC"), Err(DtError::FieldRange));
        assert_eq!(p("2023-02-29"), Err(DtError::FieldRange));
        assert_eq!(p("2024-02-29").unwrap().date, Some((2024, 2, 29)));
        assert_eq!(p("12:00Z").unwrap().zone, Some(ParsedZone::Offset(0)));
        assert!(matches!(
            p("2021-06-01 12:00 Europe/Paris").unwrap().zone,
            Some(ParsedZone::Named(_))
        ));
        assert_eq!(
            p("2021-06-01 12:00-0330").unwrap().zone,
            Some(ParsedZone::Offset(-12600))
        );
    }

    #[test]
    fn datestyle_order() {
        assert_eq!(p("01/02/2003").unwrap().date, Some((2003, 1, 2)));
        let dmy = parse(b"01/02/2003", DateOrder::Dmy).unwrap();
        assert_eq!(dmy.date, Some((2003, 2, 1)));
        assert_eq!(p("1/2/99").unwrap().date, Some((1999, 1, 2)));
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(p("2021-13-01"), Err(DtError::FieldRange));
        assert_eq!(p("2021-02-29"), Err(DtError::FieldRange));
        assert!(p("2020-02-29").is_ok());
        assert_eq!(p("0000-01-01"), Err(DtError::FieldRange));
        assert_eq!(p("25:00"), Err(DtError::FieldRange));
        assert_eq!(p("abc"), Err(DtError::Syntax));
        assert_eq!(p(""), Err(DtError::Syntax));
        assert_eq!(p("2021-06-01 12"), Err(DtError::Syntax));
        assert_eq!(p("2021-06-01 junk"), Err(DtError::Syntax));
    }
}
