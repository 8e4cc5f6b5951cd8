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

use vigil_event::time::{civil_from_days, days_from_civil};
pub(crate) use vigil_event::time::{epoch_number, parse_timestamp};

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
        assert_eq!(epoch_number(1.5), Some(1500));
    }
}
