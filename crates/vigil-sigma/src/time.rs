//! Timestamps: parsing the forms event logs use, and the calendar parts the `minute` ..
//! `year` modifiers compare.

/// A part of a timestamp, for the time modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Milliseconds since the epoch of an RFC 3339 / ISO 8601 timestamp
/// (`2024-05-01T10:20:30.123Z`, `2024-05-01 10:20:30.123`, offsets `+02:00`), taken as UTC
/// when it carries no offset.
pub(crate) fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    if rest.len() < 5 {
        return None;
    }
    let (h, mi) = (num(&rest[0..2])?, num(&rest[3..5])?);
    let mut rest = &rest[5..];
    let mut sec = 0;
    if let Some(r) = rest.strip_prefix(':') {
        sec = num(r.get(0..2)?)?;
        rest = &r[2..];
    }
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix(['.', ',']) {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let f = &r[..digits];
        let mut v = 0i64;
        for (i, c) in f.bytes().take(3).enumerate() {
            v += i64::from(c - b'0') * [100, 10, 1][i];
        }
        frac_ms = v;
        rest = &r[digits..];
    }
    ms += ((h * 60 + mi) * 60 + sec) * 1000 + frac_ms;
    let rest = rest.trim();
    if rest.is_empty() || rest.eq_ignore_ascii_case("z") || rest.eq_ignore_ascii_case("utc") {
        return Some(ms);
    }
    let (sign, off) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let off = off.replace(':', "");
    if off.len() != 4 {
        return None;
    }
    let (oh, om) = (num(&off[0..2])?, num(&off[2..4])?);
    Some(ms - sign * (oh * 60 + om) * 60_000)
}

/// Milliseconds since the epoch of a number: seconds when it looks like seconds
/// (below 10^11), else milliseconds.
pub(crate) fn epoch_number(n: f64) -> i64 {
    if n.abs() < 1e11 {
        (n * 1000.0) as i64
    } else {
        n as i64
    }
}

/// The part of a UTC timestamp (milliseconds since the epoch).
pub(crate) fn part_of(ms: i64, part: TimePart) -> i64 {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000) / 1000;
    match part {
        TimePart::Minute => (in_day / 60) % 60,
        TimePart::Hour => in_day / 3600,
        TimePart::Day => civil_from_days(days).2,
        TimePart::Month => civil_from_days(days).1,
        TimePart::Year => civil_from_days(days).0,
        TimePart::Week => iso_week(days),
    }
}

/// ISO 8601 week number of a day.
fn iso_week(days: i64) -> i64 {
    // 1970-01-01 was a Thursday; weekday 1 = Monday .. 7 = Sunday.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - weekday + 4;
    let (y, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(y, 1, 1);
    (thursday - jan1) / 7 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_timestamp("2024-02-29 14:34:56.789+02:00"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_timestamp("2026-04-17T05:24:53.092051Z"),
            Some(1_776_403_493_092)
        );
        assert_eq!(parse_timestamp("nope"), None);
        assert_eq!(parse_timestamp("2024-01-1\u{e9}T00:00"), None);
        assert_eq!(parse_timestamp("2024-01-01T0"), None);
        assert_eq!(parse_timestamp("2024-01-01T00:00:0"), None);
        let t = 1_709_210_096_789;
        assert_eq!(part_of(t, TimePart::Hour), 12);
        assert_eq!(part_of(t, TimePart::Minute), 34);
        assert_eq!(part_of(t, TimePart::Day), 29);
        assert_eq!(part_of(t, TimePart::Month), 2);
        assert_eq!(part_of(t, TimePart::Year), 2024);
        assert_eq!(part_of(t, TimePart::Week), 9);
        // 2021-01-03 is in ISO week 53 of 2020.
        let d = parse_timestamp("2021-01-03").expect("date");
        assert_eq!(part_of(d, TimePart::Week), 53);
        assert_eq!(epoch_number(1.5), 1500);
    }
}
