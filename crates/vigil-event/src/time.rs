//! Event time: the timestamp forms logs write, read as milliseconds since the Unix epoch,
//! the calendar arithmetic behind them (proleptic Gregorian, UTC), and the fields an
//! event's time is read from. Vigil's one time module: the rule engine's time modifiers,
//! the hunter's event times and every writer of timestamps use it.

use crate::Value;

/// The fields the time of a JSON record that declares no time field is read from, the
/// first present winning: Elastic's `@timestamp`, the generic `timestamp` and `time`
/// (OCSF's), Sysmon's `UtcTime`, the flat form of an EVTX record's `TimeCreated`, and
/// NXLog's `EventTime`.
pub const DEFAULT_TIME_FIELDS: [&str; 6] = [
    "@timestamp",
    "timestamp",
    "time",
    "UtcTime",
    "TimeCreated",
    "EventTime",
];

/// Milliseconds since the epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time of a field's value: an RFC 3339 (or similar, see [`parse_timestamp`]) string,
/// or an epoch number in s, ms, us or ns; of a list, its first element.
pub fn value_time(v: &Value<'_>) -> Option<i64> {
    match v {
        Value::Str(s) => parse_timestamp(s),
        Value::Int(i) => epoch_number(*i as f64),
        Value::Float(f) => epoch_number(*f),
        Value::List(l) => l.first().and_then(value_time),
        _ => None,
    }
}

/// The time of a JSON value: a string or number as [`value_time`] reads them, or an
/// object with `#attributes.SystemTime` (an EVTX record's `TimeCreated` as the `evtx`
/// crate renders it).
pub fn json_time(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::String(s) => parse_timestamp(s),
        serde_json::Value::Number(n) => n.as_f64().and_then(epoch_number),
        serde_json::Value::Object(o) => o
            .get("#attributes")
            .and_then(|a| a.get("SystemTime"))
            .and_then(json_time),
        _ => None,
    }
}

/// A calendar part of a timestamp, as Sigma's time modifiers compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    /// Minute of the hour, 0-59.
    Minute,
    /// Hour of the day, 0-23.
    Hour,
    /// Day of the month, 1-31.
    Day,
    /// ISO 8601 week of the year, 1-53.
    Week,
    /// Month, 1-12.
    Month,
    /// Year.
    Year,
}

/// The part of a UTC timestamp (milliseconds since the epoch).
pub fn part_of(ms: i64, part: TimePart) -> i64 {
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

/// ISO 8601 week number of a day (days since 1970-01-01).
fn iso_week(days: i64) -> i64 {
    // 1970-01-01 was a Thursday; weekday 1 = Monday .. 7 = Sunday.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - weekday + 4;
    let (y, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(y, 1, 1);
    (thursday - jan1) / 7 + 1
}

/// Days since 1970-01-01 of a date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

/// RFC 3339 text of ms since the epoch, UTC, with milliseconds
/// (`2024-05-01T12:00:00.000Z`).
pub fn format_ms(ms: i64) -> String {
    let (y, mo, d) = civil_from_days(ms.div_euclid(86_400_000));
    let rem = ms.rem_euclid(86_400_000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// An epoch number in seconds, milliseconds, microseconds or nanoseconds (told apart by
/// magnitude: below 10^11 is seconds, i.e. before the year 5138) as ms; `None` for
/// NaN and infinities.
pub fn epoch_number(n: f64) -> Option<i64> {
    if !n.is_finite() {
        return None;
    }
    let a = n.abs();
    let ms = if a < 1e11 {
        n * 1000.0
    } else if a < 1e14 {
        n
    } else if a < 1e17 {
        n / 1000.0
    } else {
        n / 1_000_000.0
    };
    Some(ms.floor() as i64)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Milliseconds since the epoch of a timestamp: `YYYY-MM-DD`, optionally followed by
/// `T` or a space and `hh:mm[:ss[.fraction]]`, then `Z`, `UTC`, `±hh:mm` or `±hhmm` (no
/// zone is UTC, as in Sysmon's `UtcTime`); or an epoch number written as text.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_ascii() || s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        if s.bytes()
            .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-')
        {
            return s.parse::<f64>().ok().and_then(epoch_number);
        }
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
    if rest.len() < 5 || rest.as_bytes()[2] != b':' {
        return None;
    }
    let (h, mi) = (num(&rest[0..2])?, num(&rest[3..5])?);
    let mut rest = &rest[5..];
    let mut sec = 0;
    if let Some(r) = rest.strip_prefix(':') {
        sec = num(r.get(0..2)?)?;
        rest = &r[2..];
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix(['.', ',']) {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in r[..digits].bytes().take(3).enumerate() {
            frac_ms += i64::from(c - b'0') * [100, 10, 1][i];
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2019-03-19T23:34:25.1234567Z"),
            Some(1_553_038_465_123)
        );
        assert_eq!(
            parse_timestamp("2019-03-19 23:34:25.123"),
            Some(1_553_038_465_123)
        );
        assert_eq!(
            parse_timestamp("2019-03-20T01:34:25+02:00"),
            Some(1_553_038_465_000)
        );
        assert_eq!(
            parse_timestamp("2019-03-20T01:34:25+0200"),
            Some(1_553_038_465_000)
        );
        assert_eq!(
            parse_timestamp("2019-03-19 23:34:25 UTC"),
            Some(1_553_038_465_000)
        );
        assert_eq!(parse_timestamp("2019-03-19"), Some(1_552_953_600_000));
        assert_eq!(parse_timestamp("1553038465"), Some(1_553_038_465_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2019-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2019-03-19T24:00:00Z"), None);
        assert_eq!(parse_timestamp("2019-03-19T23:34:25.Z"), None);
        assert_eq!(parse_timestamp("2019-03-19T23:34:25 bogus"), None);
    }

    #[test]
    fn epochs_and_formatting() {
        assert_eq!(epoch_number(1_553_038_465.0), Some(1_553_038_465_000));
        assert_eq!(epoch_number(1_553_038_465_123.0), Some(1_553_038_465_123));
        assert_eq!(
            epoch_number(1_553_038_465_123_456.0),
            Some(1_553_038_465_123)
        );
        assert_eq!(epoch_number(f64::NAN), None);
        assert_eq!(format_ms(1_553_038_465_123), "2019-03-19T23:34:25.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        for days in [-800_000, -1, 0, 1, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn calendar_parts_and_field_values() {
        let t = 1_709_210_096_789; // 2024-02-29T12:34:56.789Z
        assert_eq!(part_of(t, TimePart::Hour), 12);
        assert_eq!(part_of(t, TimePart::Minute), 34);
        assert_eq!(part_of(t, TimePart::Day), 29);
        assert_eq!(part_of(t, TimePart::Month), 2);
        assert_eq!(part_of(t, TimePart::Year), 2024);
        assert_eq!(part_of(t, TimePart::Week), 9);
        // 2021-01-03 is in ISO week 53 of 2020.
        let d = parse_timestamp("2021-01-03").expect("date");
        assert_eq!(part_of(d, TimePart::Week), 53);
        assert_eq!(parse_timestamp("2024-01-1\u{e9}T00:00"), None);
        assert_eq!(parse_timestamp("2024-01-01T0"), None);
        assert_eq!(parse_timestamp("2024-01-01T00:00:0"), None);
        assert_eq!(
            value_time(&Value::Int(1_553_038_465)),
            Some(1_553_038_465_000)
        );
        assert_eq!(
            value_time(&Value::Str("2019-03-19T23:34:25.123Z".into())),
            Some(1_553_038_465_123)
        );
        assert_eq!(value_time(&Value::Bool(true)), None);
        let evtx: serde_json::Value = serde_json::json!({
            "#attributes": { "SystemTime": "2019-03-19T23:34:25.123456Z" }
        });
        assert_eq!(json_time(&evtx), Some(1_553_038_465_123));
        assert_eq!(
            json_time(&serde_json::json!(1_553_038_465_123_i64)),
            Some(1_553_038_465_123)
        );
        assert!(now_ms() > 1_700_000_000_000);
    }
}
