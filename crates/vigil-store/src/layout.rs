//! Where things are in a store directory (the layout is stable: other tools read it).
//!
//! ```text
//! DIR/wal/<first-seq>.wal                 log segments (20-digit zero-padded first seq)
//! DIR/wal/compacted                       the last seq compacted into the lake (text)
//! DIR/lake/class=<table>/date=YYYY-MM-DD/hour=HH/<first-seq>-<last-seq>.parquet
//! DIR/lake/class=<table>/date=YYYY-MM-DD/hour=HH/<first-seq>-<last-seq>.ids   its id index
//! ```
//!
//! A file whose range lies within another's in the same partition is the input of a
//! finished merge (the `merge` module), never read.
//!
//! Partition values are the event's `time` in UTC. Sequence numbers in file names are
//! zero-padded to 20 digits, so names sort by sequence.

use std::path::{Path, PathBuf};
use vigil_event::time;

/// The directory of log segments.
pub fn wal_dir(root: &Path) -> PathBuf {
    root.join("wal")
}

/// The directory of Parquet files.
pub fn lake_dir(root: &Path) -> PathBuf {
    root.join("lake")
}

/// A log segment whose first record has sequence `first`.
pub fn segment_path(root: &Path, first: u64) -> PathBuf {
    wal_dir(root).join(format!("{first:020}.wal"))
}

/// The first sequence number of a segment file name (`00000000000000000001.wal`).
pub fn segment_first(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

/// The UTC hour an event time (ms since the epoch) falls in: its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour {
    /// Hours since the epoch.
    pub index: i64,
}

impl Hour {
    /// The hour of `time_ms`.
    pub fn of(time_ms: i64) -> Hour {
        Hour {
            index: time_ms.div_euclid(3_600_000),
        }
    }

    /// Its first millisecond.
    pub fn start_ms(self) -> i64 {
        self.index * 3_600_000
    }

    /// `date=YYYY-MM-DD/hour=HH`.
    pub fn partition(self) -> String {
        let days = self.index.div_euclid(24);
        let (y, m, d) = time::civil_from_days(days);
        format!(
            "date={y:04}-{m:02}-{d:02}/hour={:02}",
            self.index.rem_euclid(24)
        )
    }

    /// The hour of a partition's `date=YYYY-MM-DD` and `hour=HH` directory names.
    pub fn parse(date: &str, hour: &str) -> Option<Hour> {
        let date = date.strip_prefix("date=")?;
        let hour: i64 = hour.strip_prefix("hour=")?.parse().ok()?;
        let mut parts = date.split('-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let d: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some()
            || !(0..24).contains(&hour)
            || !(1..=12).contains(&m)
            || !(1..=31).contains(&d)
        {
            return None;
        }
        Some(Hour {
            index: time::days_from_civil(y, m, d) * 24 + hour,
        })
    }
}

/// The directory of a class's partition.
pub fn partition_dir(root: &Path, table: &str, hour: Hour) -> PathBuf {
    lake_dir(root)
        .join(format!("class={table}"))
        .join(hour.partition())
}

/// The name of a Parquet file holding sequences `first..=last`.
pub fn parquet_name(first: u64, last: u64) -> String {
    format!("{first:020}-{last:020}.parquet")
}

/// The sequence range of a Parquet file name.
pub fn parquet_range(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".parquet")?;
    let (a, b) = stem.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_hours_and_parse_back() {
        // 2024-03-01T13:45:00Z
        let t = 1_709_300_700_000;
        let h = Hour::of(t);
        assert_eq!(h.partition(), "date=2024-03-01/hour=13");
        assert_eq!(Hour::parse("date=2024-03-01", "hour=13"), Some(h));
        assert_eq!(Hour::of(-1).partition(), "date=1969-12-31/hour=23");
        assert_eq!(Hour::parse("date=2024-13-01", "hour=13"), None);
        assert_eq!(Hour::parse("date=2024-03-01", "hour=24"), None);
        assert_eq!(parquet_range(&parquet_name(7, 42)), Some((7, 42)));
        assert_eq!(segment_first(&format!("{:020}.wal", 9)), Some(9));
        assert_eq!(segment_first("9.wal"), None);
    }
}
