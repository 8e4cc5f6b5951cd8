//! A timeline of the findings that Timesketch imports: CSV or JSON lines with the columns
//! its importer requires (`message`, `datetime` in ISO 8601, `timestamp_desc`), the
//! event time in microseconds (`timestamp`), and the finding's own fields as extra
//! columns. Sorted by event time, with bounded memory (an external sort).

use crate::detection::Detection;
use crate::output::{csv_field, row_of, RuleRow, ROW_BUFFER};
use crate::report::{Report, Sink};
use crate::sort::ExternalSort;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vigil_detect::finding::LEVELS;
use vigil_event::time::format_ms;

/// The file format of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineFormat {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl TimelineFormat {
    /// The format a file name's extension says (`.csv`, `.jsonl`, `.ndjson`,
    /// `.json`), if any.
    pub fn of_name(path: &std::path::Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(TimelineFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(TimelineFormat::Jsonl),
            _ => None,
        }
    }
}

/// The columns of a timeline, in order.
pub const TIMELINE_COLUMNS: [&str; 14] = [
    "message",
    "datetime",
    "timestamp",
    "timestamp_desc",
    "rule_title",
    "rule_id",
    "level",
    "tags",
    "computer",
    "channel",
    "event_id",
    "file",
    "record",
    "details",
];

/// What `timestamp_desc` says of every row's time.
const TIMESTAMP_DESC: &str = "Event Recorded";

/// One line of the timeline.
#[derive(Serialize)]
struct Line<'a> {
    message: String,
    datetime: String,
    timestamp: i64,
    timestamp_desc: &'a str,
    rule_title: &'a str,
    rule_id: &'a str,
    level: &'a str,
    tags: &'a str,
    computer: &'a str,
    channel: &'a str,
    event_id: &'a str,
    file: &'a str,
    record: u64,
    details: &'a str,
}

/// Findings as a Timesketch timeline, written when the hunt ends.
///
/// A finding without an event time cannot be placed on a timeline (Timesketch requires
/// `datetime`): it is left out and counted ([`TimelineSink::untimed`]).
pub struct TimelineSink<W: Write> {
    out: W,
    format: TimelineFormat,
    rows: ExternalSort<RuleRow>,
    /// The ATT&CK and other tags of each rule seen, joined by commas.
    tags: HashMap<usize, String>,
    untimed: Arc<AtomicU64>,
}

impl<W: Write> TimelineSink<W> {
    /// Writes to `out` in `format`.
    pub fn new(out: W, format: TimelineFormat) -> Self {
        TimelineSink {
            out,
            format,
            rows: ExternalSort::new(ROW_BUFFER),
            tags: HashMap::new(),
            untimed: Arc::default(),
        }
    }

    /// Findings left out because they have no event time, counted as they come (read it
    /// after the hunt).
    pub fn untimed(&self) -> Arc<AtomicU64> {
        self.untimed.clone()
    }
}

/// The message of a row: what Timesketch shows first.
fn message(level: &str, title: &str, computer: &str, details: &str) -> String {
    let mut m = format!("[{level}] {title}");
    if !computer.is_empty() {
        m.push_str(" on ");
        m.push_str(computer);
    }
    if !details.is_empty() {
        m.push_str(": ");
        m.push_str(details);
    }
    m
}

impl<W: Write> Sink for TimelineSink<W> {
    fn detection(&mut self, d: &Detection<'_>) -> io::Result<()> {
        let row = row_of(d)?;
        if row.time.is_none() {
            self.untimed.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.tags
            .entry(d.rule_index)
            .or_insert_with(|| d.rule.tags.join(","));
        self.rows.push(RuleRow {
            rule: d.rule_index,
            row,
        })
    }

    fn finish(&mut self, _: &Report) -> io::Result<()> {
        if self.format == TimelineFormat::Csv {
            writeln!(self.out, "{}", TIMELINE_COLUMNS.join(","))?;
        }
        for r in self.rows.sorted()? {
            let RuleRow { rule, row: r } = r?;
            let Some(time) = r.time else { continue };
            let level = LEVELS[r.level];
            let line = Line {
                message: message(level, &r.title, &r.computer, &r.details),
                datetime: format_ms(time),
                timestamp: time.saturating_mul(1000),
                timestamp_desc: TIMESTAMP_DESC,
                rule_title: &r.title,
                rule_id: &r.id,
                level,
                tags: self.tags.get(&rule).map_or("", String::as_str),
                computer: &r.computer,
                channel: &r.channel,
                event_id: &r.event_id,
                file: &r.file,
                record: r.record,
                details: &r.details,
            };
            match self.format {
                TimelineFormat::Jsonl => {
                    serde_json::to_writer(&mut self.out, &line)?;
                    self.out.write_all(b"\n")?;
                }
                TimelineFormat::Csv => {
                    let record = line.record.to_string();
                    let timestamp = line.timestamp.to_string();
                    let fields = [
                        line.message.as_str(),
                        &line.datetime,
                        &timestamp,
                        line.timestamp_desc,
                        line.rule_title,
                        line.rule_id,
                        line.level,
                        line.tags,
                        line.computer,
                        line.channel,
                        line.event_id,
                        line.file,
                        &record,
                        line.details,
                    ];
                    let cells: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                    writeln!(self.out, "{}", cells.join(","))?;
                }
            }
        }
        self.out.flush()
    }
}
