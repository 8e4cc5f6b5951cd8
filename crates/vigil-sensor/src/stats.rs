//! The sensor's counters, and when to report them as a `Statistics` event.
//!
//! Kept apart from the backends and from the OCSF conversion: both read the counters,
//! and neither needs the other for it.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Counters of what the sensor has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records read from the kernel (ring buffer records, proc connector events,
    /// fanotify events), malformed ones included.
    pub received: u64,
    /// Records the kernel could not queue, per kind (index: record kind).
    pub lost_by_kind: Vec<u64>,
    /// Inputs that could not be decoded: ring buffer records, netlink messages, /proc
    /// files, syscall records that do not say what their call needs (a DNS payload that
    /// is not a DNS query, a socket call without its socket). Each is also logged with
    /// what was wrong.
    pub malformed: u64,
    /// Events handed to the sink.
    pub emitted: u64,
}

impl Stats {
    /// All records lost in the kernel (saturating).
    pub fn lost(&self) -> u64 {
        self.lost_by_kind
            .iter()
            .fold(0, |a, &n| a.saturating_add(n))
    }
}

/// When the sensor's next `Statistics` event is due.
#[derive(Debug)]
pub(crate) struct StatsReport {
    interval: Option<Duration>,
    last: Instant,
    lost_at_last: u64,
}

impl StatsReport {
    /// Every `secs` seconds; never for 0.
    pub(crate) fn every(secs: u64) -> Self {
        StatsReport {
            interval: (secs > 0).then(|| Duration::from_secs(secs)),
            last: Instant::now(),
            lost_at_last: 0,
        }
    }

    /// When a report is due: the records lost since the previous one.
    pub(crate) fn due(&mut self, stats: &Stats) -> Option<u64> {
        let interval = self.interval?;
        if self.last.elapsed() < interval {
            return None;
        }
        self.last = Instant::now();
        let lost = stats.lost();
        let since = lost.saturating_sub(self.lost_at_last);
        self.lost_at_last = lost;
        Some(since)
    }
}

/// Malformed inputs logged as warnings; past this, at debug level (still counted), so
/// that a flood of them cannot flood the log.
const MALFORMED_WARNINGS: u64 = 100;

/// The count of malformed inputs (see [`Stats::malformed`]); each is logged with what
/// was wrong. Counting needs only a shared reference, so code that reads the converter's
/// host or table can count too.
#[derive(Debug, Default)]
pub(crate) struct Malformed {
    count: Cell<u64>,
}

impl Malformed {
    /// Counts one malformed input and logs `what` was wrong with it.
    pub(crate) fn note(&self, what: &dyn std::fmt::Display) {
        let n = self.count.get() + 1;
        self.count.set(n);
        if n <= MALFORMED_WARNINGS {
            tracing::warn!(malformed = n, "malformed sensor input: {what}");
            if n == MALFORMED_WARNINGS {
                tracing::warn!("further malformed inputs are logged at debug level only");
            }
        } else {
            tracing::debug!(malformed = n, "malformed sensor input: {what}");
        }
    }

    /// How many so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.get()
    }
}
