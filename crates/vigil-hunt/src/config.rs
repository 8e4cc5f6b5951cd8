//! How a hunt runs: [`HuntConfig`], and the `--logsource` declaration it may carry.

use crate::error::HuntError;
use vigil_event::time;
use vigil_sigma::{Level, LogSource};

/// The longest record read by default: a JSON line, or a value of a `.json` file (16 MiB).
/// A longer one is reported (file, line or offset) and skipped, and the rest of the file
/// is read: memory stays bounded whatever the input holds.
pub const MAX_RECORD: usize = 16 << 20;

/// How to hunt.
#[derive(Debug, Clone)]
pub struct HuntConfig {
    /// Matching threads (at least 1). With more than one, reader threads come on top (one
    /// per two workers) and the calling thread collects; with one, the calling thread does
    /// everything, reading, matching and writing, with no thread beside it.
    pub threads: usize,
    /// Report only findings of rules at this level or above.
    pub min_level: Option<Level>,
    /// The logsource of JSON records that do not say what they are (not EVTX-shaped, not
    /// OCSF): without one, only rules without a logsource see them.
    pub logsource: Option<LogSource>,
    /// The field holding the event time of JSON records (dotted path). Default: the first
    /// present of [`vigil_event::time::DEFAULT_TIME_FIELDS`].
    pub time_field: Option<String>,
    /// Bytes of base findings of correlation rules kept in memory before they are sorted
    /// and spilled to a temporary file (see the `correlate` module docs).
    pub correlation_buffer: usize,
    /// Bytes of recent events kept to attach to correlation findings.
    pub correlation_events: usize,
    /// Errors kept in detail per file (the rest are counted).
    pub max_errors_per_file: usize,
    /// Have the matching threads prepare each finding for the sink, in parallel
    /// ([`crate::Detection::rendered`]). The sink then gets single-event findings with `events`
    /// empty: what it needs of them is in the rendering.
    pub render: Render,
    /// `finding_info.created_time` of the findings (ms since the epoch; default: now).
    pub now_ms: i64,
    /// The longest record (a JSON line, a value of a `.json` file) read, in bytes: a
    /// longer one is reported and skipped (default [`MAX_RECORD`]).
    pub max_record: usize,
    /// Indicators matched beside the rules (default: none).
    pub intel: Option<std::sync::Arc<crate::HuntIntel>>,
}

impl Default for HuntConfig {
    fn default() -> Self {
        HuntConfig {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_level: None,
            logsource: None,
            time_field: None,
            correlation_buffer: 4 << 20,
            correlation_events: 4 << 20,
            max_errors_per_file: 20,
            render: Render::None,
            now_ms: time::now_ms(),
            max_record: MAX_RECORD,
            intel: None,
        }
    }
}

/// What the matching threads prepare of each finding for the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Nothing: the sink gets the findings with their events.
    None,
    /// The OCSF JSON line, for [`crate::JsonlSink`].
    Jsonl,
    /// The timeline row, for [`crate::TableSink`], [`crate::CsvSink`],
    /// [`crate::HtmlSink`] and [`crate::TimelineSink`].
    Timeline,
}

/// Parses a `--logsource` declaration: `product=..,category=..,service=..` (any subset).
pub fn parse_logsource(s: &str) -> Result<LogSource, HuntError> {
    let (mut p, mut c, mut v) = (None, None, None);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = part
            .split_once('=')
            .ok_or_else(|| HuntError::LogSource(s.into()))?;
        let val = Some(val.trim()).filter(|v| !v.is_empty());
        match k.trim() {
            "product" => p = val,
            "category" => c = val,
            "service" => v = val,
            _ => return Err(HuntError::LogSource(s.into())),
        }
    }
    if p.is_none() && c.is_none() && v.is_none() {
        return Err(HuntError::LogSource(s.into()));
    }
    Ok(LogSource::new(p, c, v))
}
