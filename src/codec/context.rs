//! `TextContext`: the session settings that change how text values are read and written
//! (`TimeZone`, `DateStyle`, `extra_float_digits`), kept current from ParameterStatus.

use chrono::{NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// Order of day, month and year in ambiguous numeric dates such as `01/02/2003`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOrder {
    Mdy,
    Dmy,
    Ymd,
}

/// The session time zone: an IANA zone or a fixed offset (seconds east of UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Named(Tz),
    Fixed(i32),
}

/// Session settings that affect text input and output of values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextContext {
    zone: Zone,
    date_order: DateOrder,
    extra_float_digits: i32,
    /// `client_encoding` is UTF8 (the only one the codecs and the SQL scanner read).
    utf8: bool,
    /// `standard_conforming_strings` is on (the only way the SQL scanner reads `'…'`).
    standard_strings: bool,
    /// DateStyle's output format is ISO (the only one the codecs write).
    iso_dates: bool,
    /// `bytea_output = escape` (not reported by the server: the session asks for it).
    bytea_escape: bool,
}

impl Default for TextContext {
    /// UTC, DateStyle `ISO, MDY`, `extra_float_digits = 1`.
    fn default() -> Self {
        Self {
            zone: Zone::Fixed(0),
            date_order: DateOrder::Mdy,
            extra_float_digits: 1,
            utf8: true,
            standard_strings: true,
            iso_dates: true,
            bytea_escape: false,
        }
    }
}

/// The range of seconds chrono can place on a calendar; instants outside are clamped to it
/// for zone lookups only (offsets there are the zone's first/last rule anyway).
const CHRONO_SAFE_SECS: i64 = 8_000_000_000_000;

impl TextContext {
    /// Follows `bytea_output` (`hex` or `escape`).
    pub fn set_bytea_output(&mut self, value: &str) {
        self.bytea_escape = value.trim().eq_ignore_ascii_case("escape");
    }

    /// True when bytea values are written in escape format.
    pub fn bytea_escape(&self) -> bool {
        self.bytea_escape
    }

    /// Applies a ParameterStatus (or SET) value. Unknown names are ignored; an unknown zone
    /// or style leaves the current setting in place.
    pub fn set_parameter(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("TimeZone") {
            if let Some(zone) = parse_zone(value) {
                self.zone = zone;
            } else {
                tracing::warn!(zone = value, "unknown TimeZone; keeping the previous one");
            }
        } else if name.eq_ignore_ascii_case("DateStyle") {
            let upper = value.to_ascii_uppercase();
            self.iso_dates = upper.trim_start().starts_with("ISO");
            if upper.contains("DMY") || upper.contains("EURO") {
                self.date_order = DateOrder::Dmy;
            } else if upper.contains("YMD") {
                self.date_order = DateOrder::Ymd;
            } else if upper.contains("MDY") || upper.contains("US") {
                self.date_order = DateOrder::Mdy;
            }
        } else if name.eq_ignore_ascii_case("client_encoding") {
            let v = value.trim().to_ascii_uppercase().replace(['-', '_'], "");
            self.utf8 = v == "UTF8" || v == "UNICODE";
        } else if name.eq_ignore_ascii_case("standard_conforming_strings") {
            self.standard_strings = !value.trim().eq_ignore_ascii_case("off");
        } else if name.eq_ignore_ascii_case("extra_float_digits")
            && let Ok(n) = value.trim().parse::<i32>()
        {
            self.extra_float_digits = n.clamp(-15, 3);
        }
    }

    /// True while the session's `client_encoding` is UTF8.
    pub fn is_utf8(&self) -> bool {
        self.utf8
    }

    /// True while `standard_conforming_strings` is on (backslashes in `'…'` are literal).
    pub fn standard_strings(&self) -> bool {
        self.standard_strings
    }

    /// True while DateStyle's output format is ISO.
    pub fn iso_dates(&self) -> bool {
        self.iso_dates
    }

    /// The session time zone.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// The DateStyle field order for ambiguous input.
    pub fn date_order(&self) -> DateOrder {
        self.date_order
    }

    /// `extra_float_digits` (> 0 means shortest round-trip output).
    pub fn extra_float_digits(&self) -> i32 {
        self.extra_float_digits
    }
}

/// Parses a `TimeZone` value as PostgreSQL reports it: an IANA name (`Europe/Paris`, `UTC`,
/// `EST5EDT`) or a POSIX fixed offset like `<+02>-02` or `<-03:30>+03:30` (sign inverted).
pub fn parse_zone(value: &str) -> Option<Zone> {
    let value = value.trim();
    if let Ok(tz) = value.parse::<Tz>() {
        return Some(Zone::Named(tz));
    }
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|t| t.name().eq_ignore_ascii_case(value))
    {
        return Some(Zone::Named(*tz));
    }
    let rest = match value.strip_prefix('<') {
        Some(r) => &r[r.find('>')? + 1..],
        None => value.trim_start_matches(|c: char| c.is_ascii_alphabetic()),
    };
    let west = parse_hms_offset(rest)?;
    Some(Zone::Fixed(-west))
}

/// `[+-]hh[:mm[:ss]]` → signed seconds.
fn parse_hms_offset(s: &str) -> Option<i32> {
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let mut total = 0i32;
    let mut parts = 0;
    for (i, part) in body.split(':').enumerate() {
        if i > 2 || part.is_empty() || part.len() > 2 && i > 0 {
            return None;
        }
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Checked: a long first part (fuzzed `TimeZone`) must not overflow.
        let n: i32 = part.parse().ok()?;
        total = total.checked_add(n.checked_mul([3600, 60, 1][i])?)?;
        parts += 1;
    }
    (parts > 0 && total <= 15 * 3600 + 59 * 60 + 59).then_some(sign * total)
}

impl Zone {
    /// Seconds east of UTC in effect at the UTC instant `utc_secs` (Unix seconds).
    pub fn offset_at_utc(self, utc_secs: i64) -> i32 {
        match self {
            Zone::Fixed(off) => off,
            Zone::Named(tz) => {
                let secs = fold_far_future(utc_secs.clamp(-CHRONO_SAFE_SECS, CHRONO_SAFE_SECS));
                match chrono::DateTime::from_timestamp(secs, 0) {
                    Some(dt) => tz
                        .offset_from_utc_datetime(&dt.naive_utc())
                        .fix()
                        .local_minus_utc(),
                    None => 0,
                }
            }
        }
    }

    /// Seconds east of UTC for the local wall-clock time `local_secs` (Unix-style seconds of
    /// the wall clock), as PostgreSQL resolves it: an ambiguous time takes the offset in
    /// effect after the transition, a skipped time the offset in effect before it.
    pub fn offset_for_local(self, local_secs: i64) -> i32 {
        let tz = match self {
            Zone::Fixed(off) => return off,
            Zone::Named(tz) => tz,
        };
        let secs = fold_far_future(local_secs.clamp(-CHRONO_SAFE_SECS, CHRONO_SAFE_SECS));
        let Some(naive) = chrono::DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc()) else {
            return 0;
        };
        match tz.offset_from_local_datetime(&naive) {
            chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
            chrono::LocalResult::Ambiguous(a, b) => {
                let (a, b) = (a.fix().local_minus_utc(), b.fix().local_minus_utc());
                a.min(b) // the later UTC instant: the smaller offset east
            }
            chrono::LocalResult::None => before_gap(tz, naive),
        }
    }
}

/// chrono-tz lists transitions only up to 2099, while PostgreSQL applies a zone's last
/// (POSIX) rule forever. Moves an instant from year 2100 or later to a year before 2100 with
/// the same calendar (same weekday of January 1st, same leap-ness: the 400-year cycle, then
/// the 28-year cycle), where chrono-tz applies that same rule.
fn fold_far_future(secs: i64) -> i64 {
    use super::calendar::{civil_from_days, days_from_civil};
    let days = secs.div_euclid(86_400);
    let (y, _, _) = civil_from_days(days);
    if y < 2100 {
        return secs;
    }
    let y400 = 2000 + (y - 2000).rem_euclid(400);
    let jan1 = |y: i64| days_from_civil(y, 1, 1);
    let leap = |y: i64| jan1(y + 1) - jan1(y) == 366;
    let target = if y400 < 2100 {
        y400
    } else {
        (2072..2100)
            .find(|c| (jan1(*c) - jan1(y400)).rem_euclid(7) == 0 && leap(*c) == leap(y400))
            .unwrap_or(y400)
    };
    secs + (jan1(target) - jan1(y)) * 86_400
}

/// The offset in effect just before a skipped (spring-forward) local time.
fn before_gap(tz: Tz, naive: NaiveDateTime) -> i32 {
    let probe = naive - chrono::Duration::hours(12);
    tz.offset_from_utc_datetime(&probe).fix().local_minus_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_signed_offset_parts_are_not_offsets() {
        // A fuzzed TimeZone: the hours part times 3600 overflowed i32 (debug panic).
        assert_eq!(parse_hms_offset("999999999"), None);
        assert_eq!(parse_hms_offset("-2147483647:00"), None);
        assert_eq!(parse_hms_offset("1:+5"), None);
        assert_eq!(parse_hms_offset("-05:30"), Some(-(5 * 3600 + 30 * 60)));
    }

    #[test]
    fn parses_postgres_zone_reports() {
        assert_eq!(parse_zone("<+02>-02"), Some(Zone::Fixed(7200)));
        assert_eq!(parse_zone("<-03:30>+03:30"), Some(Zone::Fixed(-12600)));
        assert_eq!(parse_zone("UTC"), Some(Zone::Named(Tz::UTC)));
        assert!(matches!(
            parse_zone("america/new_york"),
            Some(Zone::Named(_))
        ));
        assert_eq!(parse_zone("Not/AZone"), None);
    }

    #[test]
    fn set_parameter_updates_settings() {
        let mut ctx = TextContext::default();
        ctx.set_parameter("DateStyle", "ISO, DMY");
        ctx.set_parameter("extra_float_digits", "0");
        ctx.set_parameter("TimeZone", "Bogus/Zone");
        assert_eq!(ctx.date_order(), DateOrder::Dmy);
        assert_eq!(ctx.extra_float_digits(), 0);
        assert_eq!(ctx.zone(), Zone::Fixed(0));
    }

    #[test]
    fn dst_resolution_matches_postgres() {
        let ny = Zone::Named(chrono_tz::America::New_York);
        // 2021-11-07 01:30 local is ambiguous: PostgreSQL picks -05.
        let amb = 1_636_248_600; // 2021-11-07T01:30:00 as wall-clock seconds
        assert_eq!(ny.offset_for_local(amb), -5 * 3600);
        // 2021-03-14 02:30 local is skipped: PostgreSQL uses -05 (→ 03:30-04).
        let gap = 1_615_689_000;
        assert_eq!(ny.offset_for_local(gap), -5 * 3600);
        // PostgreSQL keeps applying the DST rule far in the future.
        let july_54345 = super::super::calendar::days_from_civil(54_345, 7, 1) * 86_400;
        assert_eq!(ny.offset_at_utc(july_54345), -4 * 3600);
        let jan_2150 = super::super::calendar::days_from_civil(2150, 1, 15) * 86_400;
        assert_eq!(ny.offset_at_utc(jan_2150), -5 * 3600);
    }
}
