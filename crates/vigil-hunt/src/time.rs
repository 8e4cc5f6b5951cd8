//! Event time: reading timestamps in the forms logs write them.

use serde_json::Value;

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

/// (year, month, day, hour, minute, second, millisecond) of ms since the epoch, UTC.
pub(crate) fn civil(ms: i64) -> (i64, i64, i64, i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    )
}

/// RFC 3339 text of ms since the epoch, UTC, with milliseconds (`2024-05-01T12:00:00.000Z`).
pub fn format_ms(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// An epoch number in seconds, milliseconds, microseconds or nanoseconds (told apart by
/// magnitude: anything below 10^11 is seconds, i.e. before the year 5138) as ms.
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

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Parses `YYYY-MM-DD[T ]hh:mm[:ss[.fraction]][Z|±hh:mm|±hhmm]` (a missing zone is UTC,
/// as in Sysmon's `UtcTime`), or an epoch number written as text. Returns ms since the
/// epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() >= 16 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ') {
        let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
        let (h, mi) = (digits(b, 11, 2)?, digits(b, 14, 2)?);
        if b[13] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
            return None;
        }
        let mut i = 16;
        let mut sec = 0;
        let mut frac_ms = 0i64;
        if b.get(i) == Some(&b':') {
            sec = digits(b, i + 1, 2)?;
            i += 3;
            if matches!(b.get(i), Some(b'.' | b',')) {
                i += 1;
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                let frac = &s[start..i];
                if frac.is_empty() {
                    return None;
                }
                let mut ms = 0i64;
                for (k, c) in frac.bytes().take(3).enumerate() {
                    ms += i64::from(c - b'0') * [100, 10, 1][k];
                }
                frac_ms = ms;
            }
        }
        let offset_min = match b.get(i) {
            None => 0,
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&c @ (b'+' | b'-')) => {
                let oh = digits(b, i + 1, 2)?;
                let om = if b.get(i + 3) == Some(&b':') {
                    digits(b, i + 4, 2)?
                } else {
                    digits(b, i + 3, 2).unwrap_or(0)
                };
                let m = oh * 60 + om;
                if c == b'+' {
                    m
                } else {
                    -m
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
        return Some(secs * 1000 + frac_ms);
    }
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return s.parse::<f64>().ok().and_then(epoch_number);
    }
    None
}

/// The time of a JSON value: an RFC 3339 string or an epoch number.
pub fn value_time(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_timestamp(s),
        Value::Number(n) => n.as_f64().and_then(epoch_number),
        Value::Object(o) => {
            // `TimeCreated` as the evtx crate renders it.
            o.get("#attributes")
                .and_then(|a| a.get("SystemTime"))
                .and_then(value_time)
        }
        _ => None,
    }
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
        assert_eq!(parse_timestamp("1553038465"), Some(1_553_038_465_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2019-13-01T00:00:00Z"), None);
        assert_eq!(epoch_number(1_553_038_465_123.0), Some(1_553_038_465_123));
        assert_eq!(format_ms(1_553_038_465_123), "2019-03-19T23:34:25.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
