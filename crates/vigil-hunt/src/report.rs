//! What a hunt tells its caller: findings through a [`Sink`], progress as it goes, and a
//! [`Report`] at the end.

use crate::detection::Detection;
use crate::error::InputError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a hunt reports as it goes, for a progress line.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Files finished.
    pub files_done: usize,
    /// Files in all.
    pub files_total: usize,
    /// Records matched so far.
    pub records: u64,
    /// Bytes of (decompressed) input so far.
    pub bytes: u64,
    /// Findings so far.
    pub findings: u64,
    /// Time since the hunt started.
    pub elapsed: Duration,
}

/// Where findings go.
pub trait Sink {
    /// One finding, as it is made (in no particular order across files).
    fn detection(&mut self, d: &Detection<'_>) -> std::io::Result<()>;
    /// The hunt is over.
    fn finish(&mut self, report: &Report) -> std::io::Result<()>;
}

/// Per-file outcome.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file.
    pub path: Arc<Path>,
    /// Records read from it.
    pub records: u64,
    /// Problems found in it.
    pub errors: usize,
    /// Whether reading it stopped early (unreadable, cut short).
    pub fatal: bool,
}

/// Findings of one rule.
#[derive(Debug, Clone)]
pub struct RuleCount {
    /// Rule title.
    pub title: String,
    /// Rule id.
    pub id: Option<String>,
    /// Level rank (see [`crate::LEVELS`]).
    pub level: usize,
    /// Findings.
    pub count: u64,
}

/// What a hunt did and found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every input file.
    pub files: Vec<FileReport>,
    /// Records matched.
    pub records: u64,
    /// Bytes of (decompressed) input.
    pub bytes: u64,
    /// Findings reported.
    pub findings: u64,
    /// Findings by level rank (informational ..= critical).
    pub by_level: [u64; 5],
    /// Findings by rule, most first.
    pub by_rule: Vec<RuleCount>,
    /// Findings by ATT&CK tactic, most first.
    pub tactics: Vec<(String, u64)>,
    /// Problems with the input, in detail (at most [`crate::HuntConfig::max_errors_per_file`] per
    /// file; [`FileReport::errors`] counts them all).
    pub errors: Vec<InputError>,
    /// JSON records with no logsource of their own while none was declared.
    pub unrouted: u64,
    /// Base findings of correlation rules that went through a temporary file.
    pub correlation_spilled: u64,
    /// Wall time of the hunt.
    pub elapsed: Duration,
}

impl Report {
    /// Whether any input could be read at all: some file gave records or was read
    /// through without a fatal error.
    pub fn any_input_read(&self) -> bool {
        self.files.iter().any(|f| f.records > 0 || !f.fatal)
    }
}
